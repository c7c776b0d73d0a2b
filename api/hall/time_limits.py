"""Time limits in working days (办理时限): pure arithmetic over a community's office calendar.

A working day is a day the community's office is open (its weekly hours, minus its holidays:
the public holidays staff enter in the community calendar). The day an application is received
does not count (次日起算); the limit runs out when the office closes on the last working day, and
the warning is due when that day's office opens, i.e. with one working day left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from api.core.business_hours import BusinessCalendar
from api.core.clock import CHINA_TZ

MAX_DAYS_SCANNED = 3 * 366


@dataclass(frozen=True, slots=True)
class TimeLimit:
    warn_at: datetime  # the office opens on the last working day
    due_at: datetime  # the office closes on the last working day


def _hours(calendar: BusinessCalendar, day: date) -> tuple[int, int] | None:
    if day in calendar.holidays:
        return None
    hours = calendar.week.get(day.weekday())
    if hours is None or hours[0] >= hours[1]:
        return None
    return hours


def is_working_day(calendar: BusinessCalendar, day: date) -> bool:
    return _hours(calendar, day) is not None


def working_days_after(calendar: BusinessCalendar, day: date, count: int) -> list[date]:
    """The first `count` working days strictly after `day`."""
    out: list[date] = []
    current = day
    for _ in range(MAX_DAYS_SCANNED):
        if len(out) >= count:
            return out
        current += timedelta(days=1)
        if is_working_day(calendar, current):
            out.append(current)
    raise ValueError("the calendar has no working day in the next three years")


def time_limit(calendar: BusinessCalendar, received_at: datetime, working_days: int) -> TimeLimit:
    """When an application received at `received_at` with a limit of `working_days` lapses."""
    if working_days < 1:
        raise ValueError("a time limit is at least one working day")
    last = working_days_after(calendar, received_at.astimezone(CHINA_TZ).date(), working_days)[-1]
    hours = _hours(calendar, last)
    assert hours is not None
    midnight = datetime.combine(last, time(), CHINA_TZ)
    return TimeLimit(
        warn_at=(midnight + timedelta(minutes=hours[0])).astimezone(UTC),
        due_at=(midnight + timedelta(minutes=hours[1])).astimezone(UTC),
    )
