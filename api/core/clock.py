"""The one source of the current time (always timezone-aware UTC)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

# Communities run on China Standard Time; dates such as "today" for ages use it.
CHINA_TZ = timezone(timedelta(hours=8), name="Asia/Shanghai")


def utc_now() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


def local_today() -> date:
    """Return today's date in China Standard Time."""
    return utc_now().astimezone(CHINA_TZ).date()


def years_before(day: date, years: int) -> date:
    """Return the date `years` years before `day` (29 Feb maps to 28 Feb)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def age_on(birth_date: date, day: date) -> int:
    """Return the age in whole years on `day`."""
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))
