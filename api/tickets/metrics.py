"""Answer metrics (件件有回声): is every report answered, how fast, and how well — in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Integer, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.tickets.models import Ticket, TicketCategory


@dataclass(frozen=True, slots=True)
class AnswerMetrics:
    category_id: int | None
    category_name: str | None
    tickets: int
    answered: int  # first contact made
    answered_on_time: int  # first contact before the call-back target
    resolved: int
    reopened: int
    rated: int
    average_rating: float | None
    median_minutes_to_first_contact: float | None
    median_minutes_to_resolution: float | None

    @property
    def answered_on_time_rate(self) -> float | None:
        return self.answered_on_time / self.tickets if self.tickets else None

    @property
    def reopen_rate(self) -> float | None:
        return self.reopened / self.resolved if self.resolved else None


def _minutes(dialect: str, later: Any, earlier: Any) -> Any:
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier) / 60.0
    return (func.julianday(later) - func.julianday(earlier)) * 1440.0


async def answer_metrics(
    session: AsyncSession, *, community_id: int, since: datetime, until: datetime
) -> tuple[AnswerMetrics, list[AnswerMetrics]]:
    """Metrics for tickets created in [since, until): the whole community and per category."""
    dialect = session.get_bind().dialect.name
    to_contact = _minutes(dialect, Ticket.acknowledged_at, Ticket.created_at)
    to_resolve = _minutes(dialect, Ticket.resolved_at, Ticket.created_at)

    def count_if(cond: Any) -> Any:
        return func.coalesce(func.sum(case((cond, 1), else_=0)), 0).cast(Integer)

    measures = [
        func.count(Ticket.id).label("tickets"),
        count_if(Ticket.acknowledged_at.is_not(None)).label("answered"),
        count_if(Ticket.acknowledged_at <= Ticket.callback_due_at).label("answered_on_time"),
        count_if(Ticket.resolved_at.is_not(None) | (Ticket.cycle > 1)).label("resolved"),
        count_if(Ticket.cycle > 1).label("reopened"),
        count_if(Ticket.rating.is_not(None)).label("rated"),
        func.avg(cast(Ticket.rating, Float)).label("average_rating"),
    ]
    window = (Ticket.community_id == community_id, Ticket.created_at >= since, Ticket.created_at < until)

    async def medians(group: Any | None) -> dict[Any, tuple[float | None, float | None]]:
        """Medians: percentile_cont on PostgreSQL; on SQLite the middle value, found in Python."""
        keys = [group] if group is not None else []
        if dialect == "postgresql":
            stmt = select(
                *keys,
                func.percentile_cont(0.5).within_group(to_contact).label("contact"),
                func.percentile_cont(0.5).within_group(to_resolve).label("resolve"),
            ).where(*window)
            if group is not None:
                stmt = stmt.group_by(group)
            rows = (await session.execute(stmt)).all()
            return {(r[0] if group is not None else None): (_f(r[-2]), _f(r[-1])) for r in rows}
        stmt2 = select(*keys, to_contact.label("contact"), to_resolve.label("resolve")).where(*window)
        values: dict[Any, tuple[list[float], list[float]]] = {}
        for r in (await session.execute(stmt2)).all():
            key = r[0] if group is not None else None
            contact, resolve = values.setdefault(key, ([], []))
            if r[-2] is not None:
                contact.append(float(r[-2]))
            if r[-1] is not None:
                resolve.append(float(r[-1]))
        return {k: (_median(c), _median(v)) for k, (c, v) in values.items()}

    total_row = (await session.execute(select(*measures).where(*window))).one()
    total_medians = (await medians(None)).get(None, (None, None))
    per_rows = (
        await session.execute(
            select(TicketCategory.id, TicketCategory.name, *measures)
            .join(TicketCategory, TicketCategory.id == Ticket.category_id)
            .where(*window)
            .group_by(TicketCategory.id, TicketCategory.name)
            .order_by(TicketCategory.id)
        )
    ).all()
    per_medians = await medians(Ticket.category_id)
    total = _metrics(None, None, total_row, total_medians)
    per = [_metrics(r[0], r[1], r[2:], per_medians.get(r[0], (None, None))) for r in per_rows]
    return total, per


def _f(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return round(ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2, 1)


def _metrics(
    category_id: int | None, name: str | None, row: Any, meds: tuple[float | None, float | None]
) -> AnswerMetrics:
    tickets, answered, on_time, resolved, reopened, rated, avg = row
    return AnswerMetrics(
        category_id=category_id,
        category_name=name,
        tickets=int(tickets),
        answered=int(answered),
        answered_on_time=int(on_time),
        resolved=int(resolved),
        reopened=int(reopened),
        rated=int(rated),
        average_rating=None if avg is None else round(float(avg), 2),
        median_minutes_to_first_contact=meds[0],
        median_minutes_to_resolution=meds[1],
    )
