"""The ageing survey (老龄化调查): elders and circumstances per building and unit, in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Integer, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import years_before
from api.registry.models import Building, Compound, Household, Resident, ResidentTag, ResidentTagLink


@dataclass(frozen=True, slots=True)
class SurveyRow:
    compound_id: int | None
    compound_name: str | None
    building_id: int | None
    building_name: str | None
    unit: int | None
    residents: int
    aged_60_plus: int
    aged_80_plus: int
    elders_living_alone: int
    elders_without_family_support: int
    disabled: int
    low_income: int

    @property
    def ageing_rate(self) -> float:
        return self.aged_60_plus / self.residents if self.residents else 0.0


@dataclass(frozen=True, slots=True)
class AgeingSurvey:
    as_of: date
    total: SurveyRow
    buildings: list[SurveyRow]
    units: list[SurveyRow]


def _flags() -> Any:
    """One row per tagged resident with a 0/1 column per tag (a pivot of resident_tag)."""

    def has(tag: ResidentTag) -> Any:
        return func.max(case((ResidentTagLink.tag == tag.value, 1), else_=0)).label(tag.value)

    return (
        select(ResidentTagLink.resident_id, *(has(t) for t in ResidentTag))
        .group_by(ResidentTagLink.resident_id)
        .subquery("flags")
    )


async def ageing_survey(session: AsyncSession, *, community_id: int, today: date) -> AgeingSurvey:
    """Count residents with a household, grouped per unit, per building and in total."""
    flags = _flags()
    born_60 = years_before(today, 60)
    born_80 = years_before(today, 80)
    elder = Resident.birth_date <= born_60

    def flag(tag: ResidentTag) -> Any:
        return func.coalesce(flags.c[tag.value], 0)

    def total(cond: Any) -> Any:
        return func.coalesce(func.sum(case((cond, 1), else_=0)), 0).cast(Integer)

    measures = [
        func.count(Resident.id).label("residents"),
        total(elder).label("aged_60_plus"),
        total(Resident.birth_date <= born_80).label("aged_80_plus"),
        total(elder & (flag(ResidentTag.LIVES_ALONE) == 1)).label("elders_living_alone"),
        total(elder & (flag(ResidentTag.NO_FAMILY_SUPPORT) == 1)).label("elders_without_family_support"),
        total(flag(ResidentTag.DISABLED) == 1).label("disabled"),
        total(flag(ResidentTag.LOW_INCOME) == 1).label("low_income"),
    ]
    base = (
        select()
        .select_from(Resident)
        .join(Household, Household.id == Resident.household_id)
        .join(Building, Building.id == Household.building_id)
        .join(Compound, Compound.id == Building.compound_id)
        .outerjoin(flags, flags.c.resident_id == Resident.id)
        .where(Resident.community_id == community_id)
    )

    async def rows(*keys: Any) -> list[SurveyRow]:
        stmt = base.add_columns(*keys, *measures)
        if keys:
            stmt = stmt.group_by(*keys).order_by(*keys)
        result = await session.execute(stmt)
        out = []
        for r in result.mappings().all():
            out.append(
                SurveyRow(
                    compound_id=r.get("compound_id"),
                    compound_name=r.get("compound_name"),
                    building_id=r.get("building_id"),
                    building_name=r.get("building_name"),
                    unit=r.get("unit"),
                    residents=int(r["residents"]),
                    aged_60_plus=int(r["aged_60_plus"]),
                    aged_80_plus=int(r["aged_80_plus"]),
                    elders_living_alone=int(r["elders_living_alone"]),
                    elders_without_family_support=int(r["elders_without_family_support"]),
                    disabled=int(r["disabled"]),
                    low_income=int(r["low_income"]),
                )
            )
        return out

    building_keys = (
        Compound.id.label("compound_id"),
        Compound.name.label("compound_name"),
        Building.id.label("building_id"),
        Building.name.label("building_name"),
    )
    totals = await rows()
    buildings = await rows(*building_keys)
    units = await rows(*building_keys, Household.unit.label("unit"))
    return AgeingSurvey(as_of=today, total=totals[0], buildings=buildings, units=units)
