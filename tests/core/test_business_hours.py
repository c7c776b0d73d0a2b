"""Business-hours arithmetic: office hours 08:30–17:30 China time, Monday to Saturday, minus holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.core.business_hours import BusinessCalendar
from api.core.clock import CHINA_TZ

office = BusinessCalendar()
NATIONAL_DAY = date(2024, 10, 1)  # a Tuesday


def cst(day: str, hhmm: str) -> datetime:
    """A moment in China time, e.g. cst("2024-03-04", "09:00") (2024-03-04 is a Monday)."""
    return datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=CHINA_TZ)


# -- add ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "minutes", "expected"),
    [
        pytest.param(cst("2024-03-04", "09:00"), 30, cst("2024-03-04", "09:30"), id="within-the-day"),
        pytest.param(cst("2024-03-04", "11:45"), 60, cst("2024-03-04", "12:45"), id="no-lunch-break"),
        pytest.param(cst("2024-03-04", "08:30"), 540, cst("2024-03-04", "17:30"), id="a-whole-day-ends-at-close"),
        pytest.param(cst("2024-03-04", "17:00"), 60, cst("2024-03-05", "09:00"), id="across-the-close"),
        pytest.param(cst("2024-03-04", "20:00"), 30, cst("2024-03-05", "09:00"), id="from-the-evening"),
        pytest.param(cst("2024-03-05", "06:00"), 30, cst("2024-03-05", "09:00"), id="before-opening"),
        pytest.param(cst("2024-03-09", "17:00"), 60, cst("2024-03-11", "09:00"), id="saturday-open-sunday-closed"),
        pytest.param(cst("2024-03-10", "10:00"), 15, cst("2024-03-11", "08:45"), id="from-a-sunday"),
        pytest.param(cst("2024-03-04", "09:00"), 3 * 540, cst("2024-03-07", "09:00"), id="three-days"),
        pytest.param(cst("2024-03-04", "09:00"), 0, cst("2024-03-04", "09:00"), id="zero-in-hours"),
        pytest.param(cst("2024-03-04", "09:00"), 0.5, cst("2024-03-04", "09:00") + timedelta(seconds=30), id="frac"),
    ],
)
def test_add_counts_only_office_minutes(start: datetime, minutes: float, expected: datetime):
    # when
    due = office.add(start, minutes)
    # then
    assert due == expected
    assert due.tzinfo is UTC


def test_add_skips_holidays():
    # given: Sunday 30 Sep, then the National Day holiday on Tuesday 1 Oct 2024
    calendar = BusinessCalendar(holidays=frozenset({NATIONAL_DAY, date(2024, 10, 2)}))
    # when / then
    assert calendar.add(cst("2024-09-30", "17:00"), 60) == cst("2024-10-03", "09:00")
    assert calendar.add(cst("2024-09-29", "12:00"), 15) == cst("2024-09-30", "08:45")


def test_add_works_on_utc_input_and_china_has_no_daylight_saving():
    # given: the weekend when Europe moves its clocks (31 March 2024); China time stays UTC+8
    start = datetime(2024, 3, 30, 9, 0, tzinfo=UTC)  # Saturday 17:00 in China
    # when
    due = office.add(start, 60)
    # then: Monday 09:00 China time is 01:00 UTC
    assert due == datetime(2024, 4, 1, 1, 0, tzinfo=UTC)
    assert office.between(start, due) == 60


def test_always_open_counts_every_minute():
    calendar = BusinessCalendar(always_open=True)
    start = cst("2024-03-09", "23:00")  # Saturday night
    assert calendar.add(start, 24 * 60 + 120) == cst("2024-03-11", "01:00")
    assert calendar.between(start, cst("2024-03-11", "01:00")) == 26 * 60


def test_a_custom_week():
    # given: open on Mondays 09:00–12:00 only
    calendar = BusinessCalendar(week={0: (9 * 60, 12 * 60)})
    assert calendar.add(cst("2024-03-04", "11:00"), 120) == cst("2024-03-11", "10:00")
    assert calendar.between(cst("2024-03-04", "00:00"), cst("2024-03-12", "00:00")) == 360


def test_a_calendar_that_never_opens_refuses():
    with pytest.raises(ValueError, match="no working time"):
        BusinessCalendar(week={}).add(cst("2024-03-04", "09:00"), 1)


# -- between -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "minutes"),
    [
        pytest.param(cst("2024-03-04", "09:00"), cst("2024-03-04", "09:30"), 30, id="within"),
        pytest.param(cst("2024-03-04", "17:00"), cst("2024-03-05", "09:00"), 60, id="overnight"),
        pytest.param(cst("2024-03-04", "18:00"), cst("2024-03-05", "08:00"), 0, id="all-closed"),
        pytest.param(cst("2024-03-09", "17:00"), cst("2024-03-11", "09:00"), 60, id="over-sunday"),
        pytest.param(cst("2024-03-04", "00:00"), cst("2024-03-11", "00:00"), 6 * 540, id="a-week"),
        pytest.param(cst("2024-03-04", "10:00"), cst("2024-03-04", "09:00"), 0, id="backwards"),
        pytest.param(cst("2024-03-04", "10:00"), cst("2024-03-04", "10:00"), 0, id="empty"),
    ],
)
def test_between_counts_office_minutes(start: datetime, end: datetime, minutes: float):
    assert office.between(start, end) == minutes


def test_between_skips_holidays():
    calendar = BusinessCalendar(holidays=frozenset({NATIONAL_DAY}))
    assert calendar.between(cst("2024-09-30", "17:00"), cst("2024-10-02", "09:00")) == 60


# -- properties --------------------------------------------------------------------------------

# hypothesis takes naive bounds and attaches the zone itself
FIRST, LAST = datetime(2024, 1, 1), datetime(2025, 12, 31)  # noqa: DTZ001
moments = st.datetimes(min_value=FIRST, max_value=LAST, timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))
calendars = st.builds(
    BusinessCalendar,
    holidays=st.frozensets(st.dates(min_value=date(2024, 1, 1), max_value=date(2026, 1, 31)), max_size=40),
)


@settings(max_examples=150, deadline=None)
@given(calendar=calendars, start=moments, minutes=st.integers(0, 10 * 540))
def test_between_undoes_add(calendar: BusinessCalendar, start: datetime, minutes: int):
    assert calendar.between(start, calendar.add(start, minutes)) == minutes


@settings(max_examples=150, deadline=None)
@given(start=moments, a=st.integers(0, 3000), b=st.integers(0, 3000))
def test_add_is_monotone_and_composes(start: datetime, a: int, b: int):
    low, high = sorted((a, b))
    assert office.add(start, low) <= office.add(start, high)
    assert office.add(office.add(start, a), b) == office.add(start, a + b) or b == 0


@settings(max_examples=150, deadline=None)
@given(a=moments, b=moments, c=moments)
def test_between_adds_up_over_consecutive_spans(a: datetime, b: datetime, c: datetime):
    first, middle, last = sorted((a, b, c))
    assert office.between(first, last) == pytest.approx(office.between(first, middle) + office.between(middle, last))
