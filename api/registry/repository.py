"""Registry reads: scoped lookups by id, filtered resident queries and batched child pages."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import Select, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import years_before
from api.core.db import Base
from api.registry.models import (
    Building,
    Community,
    Compound,
    ConsentRecord,
    Household,
    Resident,
    ResidentTag,
    ResidentTagLink,
)

M = TypeVar("M", bound=Base)


@dataclass(frozen=True, slots=True)
class ResidentFilter:
    """Filters a client may combine; all given conditions must hold."""

    min_age: int | None = None
    max_age: int | None = None
    tags: tuple[ResidentTag, ...] = ()
    compound_id: int | None = None
    building_id: int | None = None
    unit: int | None = None
    household_id: int | None = None
    name: str | None = None


def resident_conditions(f: ResidentFilter, *, today: date) -> list[Any]:
    """SQL conditions for a filter; ages become birth-date bounds so the index serves them."""
    conds: list[Any] = []
    if f.min_age is not None:
        conds.append(Resident.birth_date <= years_before(today, f.min_age))
    if f.max_age is not None:
        # Younger than max_age + 1 years: born after that many years ago.
        conds.append(Resident.birth_date > years_before(today, f.max_age + 1))
    for tag in f.tags:
        conds.append(exists().where(ResidentTagLink.resident_id == Resident.id, ResidentTagLink.tag == tag.value))
    if f.household_id is not None:
        conds.append(Resident.household_id == f.household_id)
    if f.building_id is not None or f.unit is not None or f.compound_id is not None:
        hh = select(Household.id)
        if f.building_id is not None:
            hh = hh.where(Household.building_id == f.building_id)
        if f.unit is not None:
            hh = hh.where(Household.unit == f.unit)
        if f.compound_id is not None:
            hh = hh.where(Household.building_id.in_(select(Building.id).where(Building.compound_id == f.compound_id)))
        conds.append(Resident.household_id.in_(hh))
    if f.name:
        escaped = f.name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append(Resident.name.like(f"%{escaped}%", escape="\\"))
    return conds


def residents_query(community_ids: Collection[int], f: ResidentFilter, *, today: date) -> Select[Resident]:
    return select(Resident).where(Resident.community_id.in_(community_ids), *resident_conditions(f, today=today))


def scoped(model: type[M], community_ids: Collection[int]) -> Select[M]:
    """All rows of a tenant table that exist for a viewer of these communities."""
    if model is Community:
        return select(model).where(Community.id.in_(community_ids))
    return select(model).where(model.community_id.in_(community_ids))  # type: ignore[attr-defined]


async def get_many(
    session: AsyncSession, model: type[M], ids: Sequence[int], community_ids: Collection[int]
) -> dict[int, M]:
    """Rows by id, limited to the viewer's communities (others simply do not exist)."""
    if not ids:
        return {}
    id_col = model.id  # type: ignore[attr-defined]
    rows = (await session.scalars(scoped(model, community_ids).where(id_col.in_(ids)))).all()
    return {row.id: row for row in rows}  # type: ignore[attr-defined]


async def get_one(session: AsyncSession, model: type[M], id_: int, community_ids: Collection[int]) -> M | None:
    return (await get_many(session, model, [id_], community_ids)).get(id_)


async def tags_for(session: AsyncSession, resident_ids: Sequence[int]) -> dict[int, list[ResidentTag]]:
    rows = await session.execute(
        select(ResidentTagLink.resident_id, ResidentTagLink.tag)
        .where(ResidentTagLink.resident_id.in_(resident_ids))
        .order_by(ResidentTagLink.resident_id, ResidentTagLink.tag)
    )
    out: dict[int, list[ResidentTag]] = {rid: [] for rid in resident_ids}
    for rid, tag in rows.all():
        out[rid].append(ResidentTag(tag))
    return out


async def latest_consents(session: AsyncSession, resident_ids: Sequence[int]) -> dict[int, list[ConsentRecord]]:
    """Consent records per resident, newest first."""
    rows = (
        await session.scalars(
            select(ConsentRecord)
            .where(ConsentRecord.resident_id.in_(resident_ids))
            .order_by(ConsentRecord.resident_id, ConsentRecord.id.desc())
        )
    ).all()
    out: dict[int, list[ConsentRecord]] = {rid: [] for rid in resident_ids}
    for row in rows:
        out[row.resident_id].append(row)
    return out


__all__ = [
    "Building",
    "Community",
    "Compound",
    "Household",
    "Resident",
    "ResidentFilter",
    "get_many",
    "get_one",
    "residents_query",
    "scoped",
]
