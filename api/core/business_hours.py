"""Business-hours arithmetic for SLA clocks: add working minutes, count working minutes between times."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from api.core.clock import CHINA_TZ

# 居委会 office hours by default: Monday to Saturday, 08:30–17:30 (China time).
DEFAULT_WEEK: dict[int, tuple[int, int]] = dict.fromkeys(range(6), (8 * 60 + 30, 17 * 60 + 30))
MAX_DAYS_SCANNED = 3 * 366


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Opening minutes per weekday (0 = Monday) in China time, minus holidays."""

    week: Mapping[int, tuple[int, int]] = field(default_factory=lambda: dict(DEFAULT_WEEK))
    holidays: frozenset[date] = frozenset()
    always_open: bool = False  # e.g. 24-hour emergency categories

    def _window(self, day: date) -> tuple[datetime, datetime] | None:
        if day in self.holidays:
            return None
        hours = self.week.get(day.weekday())
        if hours is None or hours[0] >= hours[1]:
            return None
        start = datetime.combine(day, time(), CHINA_TZ) + timedelta(minutes=hours[0])
        end = datetime.combine(day, time(), CHINA_TZ) + timedelta(minutes=hours[1])
        return start, end

    def add(self, start: datetime, minutes: float) -> datetime:
        """The moment `minutes` working minutes after `start` (returned in UTC)."""
        if self.always_open:
            return (start + timedelta(minutes=minutes)).astimezone(UTC)
        remaining = timedelta(minutes=minutes)
        local = start.astimezone(CHINA_TZ)
        day = local.date()
        for _ in range(MAX_DAYS_SCANNED):
            window = self._window(day)
            if window is not None:
                open_at, close_at = window
                begin = max(open_at, local)
                if begin < close_at:
                    available = close_at - begin
                    if remaining <= available:
                        return (begin + remaining).astimezone(UTC)
                    remaining -= available
            day += timedelta(days=1)
        raise ValueError("the calendar has no working time in the next three years")

    def between(self, start: datetime, end: datetime) -> float:
        """Working minutes between two moments (0 when end <= start)."""
        if end <= start:
            return 0.0
        if self.always_open:
            return (end - start).total_seconds() / 60
        total = timedelta()
        local_start, local_end = start.astimezone(CHINA_TZ), end.astimezone(CHINA_TZ)
        day = local_start.date()
        while day <= local_end.date():
            window = self._window(day)
            if window is not None:
                begin, finish = max(window[0], local_start), min(window[1], local_end)
                if begin < finish:
                    total += finish - begin
            day += timedelta(days=1)
        return total.total_seconds() / 60
