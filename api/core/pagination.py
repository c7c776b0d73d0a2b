"""Keyset pagination by id: one page of a query, or one page per parent in a single statement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from api.core.db import Base, read_plain

T = TypeVar("T", bound=Base)

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


@dataclass(frozen=True, slots=True)
class PageArgs:
    """`first` rows after the row with id `after` (ordered by id)."""

    first: int = DEFAULT_PAGE_SIZE
    after: int | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_next: bool
    has_previous: bool


async def fetch_page(
    session: AsyncSession, stmt: Select[T], id_col: Any, args: PageArgs, *, plain: bool = False
) -> Page[T]:
    """Run `stmt` (selecting one entity) as a keyset page ordered by `id_col`.

    `plain=True` returns rows with the entity's columns instead of ORM objects (api.core.db.read_plain),
    for pages that are only displayed.
    """
    if args.after is not None:
        stmt = stmt.where(id_col > args.after)
    stmt = stmt.order_by(id_col).limit(args.first + 1)
    rows = await read_plain(session, stmt) if plain else list((await session.scalars(stmt)).all())
    return Page(rows[: args.first], len(rows) > args.first, args.after is not None)


async def count_of(session: AsyncSession, stmt: Select[Any]) -> int:
    """Count the rows `stmt` would return."""
    return int(await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0)


async def fetch_pages_by_parent(
    session: AsyncSession,
    model: type[T],
    parent_col: InstrumentedAttribute[Any],
    parent_ids: Sequence[int],
    args: PageArgs,
    *where: Any,
) -> dict[int, Page[T]]:
    """One page of children for each parent, in one statement (ROW_NUMBER per parent)."""
    id_col = model.id  # type: ignore[attr-defined]
    rn = func.row_number().over(partition_by=parent_col, order_by=id_col).label("rn")
    inner = select(model, rn).where(parent_col.in_(parent_ids), *where)
    if args.after is not None:
        inner = inner.where(id_col > args.after)
    sub = inner.subquery()
    child = aliased(model, sub)
    stmt = select(child).where(sub.c.rn <= args.first + 1).order_by(sub.c[parent_col.key], sub.c.id)
    grouped: dict[int, list[T]] = {pid: [] for pid in parent_ids}
    for row in (await session.scalars(stmt)).all():
        grouped[getattr(row, parent_col.key)].append(row)
    return {
        pid: Page(rows[: args.first], len(rows) > args.first, args.after is not None) for pid, rows in grouped.items()
    }


async def count_by_parent(
    session: AsyncSession, parent_col: InstrumentedAttribute[Any], parent_ids: Sequence[int], *where: Any
) -> dict[int, int]:
    """Child counts per parent id, in one statement."""
    rows = await session.execute(
        select(parent_col, func.count()).where(parent_col.in_(parent_ids), *where).group_by(parent_col)
    )
    counts = dict.fromkeys(parent_ids, 0)
    counts.update({int(pid): int(n) for pid, n in rows.all()})
    return counts
