"""Community calendars: office hours and holidays, read as BusinessCalendar values."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.business_hours import DEFAULT_WEEK, BusinessCalendar
from api.core.clock import utc_now
from api.core.database import UnitOfWork
from api.core.errors import NotFound, ValidationFailed
from api.core.viewer import Permission, Viewer
from api.registry.models import CommunityCalendar


def _from_row(row: CommunityCalendar | None) -> BusinessCalendar:
    if row is None:
        return BusinessCalendar()
    week = {int(day): (int(hours[0]), int(hours[1])) for day, hours in (row.week or {}).items()}
    return BusinessCalendar(week=week, holidays=frozenset(date.fromisoformat(d) for d in row.holidays or []))


async def calendars_for(session: AsyncSession, community_ids: Iterable[int]) -> dict[int, BusinessCalendar]:
    """Each community's calendar; communities that set none get the default office hours."""
    ids = sorted(set(community_ids))
    rows = {
        r.community_id: r
        for r in (await session.scalars(select(CommunityCalendar).where(CommunityCalendar.community_id.in_(ids)))).all()
    }
    return {cid: _from_row(rows.get(cid)) for cid in ids}


async def calendar_for(session: AsyncSession, community_id: int) -> BusinessCalendar:
    return (await calendars_for(session, [community_id]))[community_id]


async def set_calendar(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    community_id: int,
    week: dict[int, tuple[int, int]],
    holidays: Iterable[date],
) -> BusinessCalendar:
    """Set a community's office hours (minutes after midnight per weekday) and holidays.

    Raises Forbidden, ValidationFailed.
    """
    viewer.require(Permission.MANAGE_ROLES, community_id)
    for day, (opens, closes) in week.items():
        if not 0 <= day <= 6:
            raise ValidationFailed("Weekdays run from 0 (Monday) to 6 (Sunday).", field="week")
        if not 0 <= opens < closes <= 24 * 60:
            raise ValidationFailed("Each day opens before it closes, within the day.", field="week")
    if not week:
        raise ValidationFailed("Give the office hours of at least one day.", field="week")
    holiday_list = sorted({d.isoformat() for d in holidays})
    if len(holiday_list) > 400:
        raise ValidationFailed("At most 400 holidays.", field="holidays")
    row = await uow.session.get(CommunityCalendar, community_id)
    if row is None:
        row = CommunityCalendar(community_id=community_id, week={}, holidays=[])
        uow.session.add(row)
    row.week = {str(d): [o, c] for d, (o, c) in sorted(week.items())}
    row.holidays = holiday_list
    row.updated_at = utc_now()
    await uow.session.flush()
    return _from_row(row)


__all__ = ["DEFAULT_WEEK", "NotFound", "calendar_for", "calendars_for", "set_calendar"]
