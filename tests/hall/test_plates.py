"""Plate validation (GA 36-2018) and working-day time limits: pure functions, property-tested."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.core.business_hours import BusinessCalendar
from api.core.clock import CHINA_TZ
from api.hall.plates import (
    DIGITS,
    LETTERS,
    PROVINCES,
    SUFFIXES,
    InvalidPlate,
    PlateKind,
    check_plate,
    is_valid_plate,
    normalise_plate,
    plate_kind,
)
from api.hall.time_limits import time_limit, working_days_after

province = st.sampled_from(PROVINCES)
office = st.sampled_from(LETTERS)
alnum = st.sampled_from(LETTERS + DIGITS)
digit = st.sampled_from(DIGITS)
energy = st.sampled_from("DF")


@st.composite
def ordinary_plates(draw: st.DrawFn) -> str:
    body = "".join(draw(st.lists(alnum, min_size=5, max_size=5)))
    if draw(st.booleans()):
        body = body[:4] + draw(st.sampled_from(SUFFIXES))
    return draw(province) + draw(office) + body


@st.composite
def new_energy_plates(draw: st.DrawFn) -> str:
    if draw(st.booleans()):  # small vehicles: D/F first, a letter or digit, 4 digits
        body = draw(energy) + draw(alnum) + "".join(draw(st.lists(digit, min_size=4, max_size=4)))
    else:  # large vehicles: 5 digits, D/F last
        body = "".join(draw(st.lists(digit, min_size=5, max_size=5))) + draw(energy)
    return draw(province) + draw(office) + body


@given(ordinary_plates())
def test_every_ordinary_plate_is_valid_and_7_characters(plate: str) -> None:
    assert len(plate) == 7
    assert plate_kind(plate) is PlateKind.ORDINARY
    assert check_plate(plate, vehicle_kind="car") == (plate, PlateKind.ORDINARY)


@given(new_energy_plates())
def test_every_new_energy_plate_is_valid_and_8_characters(plate: str) -> None:
    assert len(plate) == 8
    assert plate_kind(plate) is PlateKind.NEW_ENERGY
    assert check_plate(plate, vehicle_kind="new_energy_car") == (plate, PlateKind.NEW_ENERGY)
    with pytest.raises(InvalidPlate):
        check_plate(plate, vehicle_kind="car")


@given(st.one_of(ordinary_plates(), new_energy_plates()), st.data())
def test_normalising_undoes_case_spaces_dots_and_full_width(plate: str, data: st.DataObject) -> None:
    messy = "".join(
        data.draw(st.sampled_from([ch, ch.lower(), f" {ch}", f"{ch}·", f"{ch}.", chr(ord(ch) + 0xFEE0)]))
        if ch.isascii()
        else ch
        for ch in plate
    )
    assert normalise_plate(messy) == plate
    assert is_valid_plate(messy)


@given(st.one_of(ordinary_plates(), new_energy_plates()), st.sampled_from("IO"), st.integers(1, 6))
def test_i_and_o_are_never_valid(plate: str, bad: str, position: int) -> None:
    position = min(position, len(plate) - 1)
    assert not is_valid_plate(plate[:position] + bad + plate[position + 1 :])


@given(st.text(alphabet=LETTERS + DIGITS, min_size=6, max_size=7))
def test_no_province_is_never_a_plate(rest: str) -> None:
    with pytest.raises(InvalidPlate, match="province"):
        check_plate(rest, vehicle_kind="car")


@given(ordinary_plates(), st.integers(1, 3))
def test_wrong_lengths_are_refused(plate: str, cut: int) -> None:
    assert not is_valid_plate(plate[:-cut])
    assert not is_valid_plate(plate + "1" * (cut + 1))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("冀A·12345", "冀A12345"), ("粤b 5d1f2", "粤B5D1F2"), ("京ＡＤ１２３４５", "京AD12345"),
        ("沪A12345F", "沪A12345F"), ("苏E1234学", "苏E1234学"), ("川A1234警", "川A1234警"),
    ],
)  # fmt: skip
def test_known_plates(raw: str, expected: str) -> None:
    assert normalise_plate(raw) == expected
    assert is_valid_plate(raw)


@pytest.mark.parametrize("raw", ["冀I12345", "冀A1234", "冀A1234567", "A12345", "台A12345", "京AD1234X", "京A12D345F"])
def test_known_bad_plates(raw: str) -> None:
    assert not is_valid_plate(raw)


def test_e_bikes_take_a_local_plate() -> None:
    assert check_plate("石家庄 12345", vehicle_kind="e_bike") == ("石家庄12345", PlateKind.LOCAL)
    with pytest.raises(InvalidPlate):
        check_plate("12", vehicle_kind="e_bike")


# -- working days ---------------------------------------------------------------------------------------

WEEKDAYS = BusinessCalendar(week=dict.fromkeys(range(5), (9 * 60, 17 * 60)))  # Monday to Friday 9–17


def china(y: int, m: int, d: int, h: int = 10) -> datetime:
    return datetime(y, m, d, h, tzinfo=CHINA_TZ).astimezone(UTC)


def test_the_limit_counts_from_the_next_working_day_and_ends_at_closing_time() -> None:
    # received Friday 2026-11-27: 3 working days are Mon 30, Tue 1, Wed 2
    limit = time_limit(WEEKDAYS, china(2026, 11, 27), 3)
    assert limit.due_at == datetime(2026, 12, 2, 17, tzinfo=CHINA_TZ)
    assert limit.warn_at == datetime(2026, 12, 2, 9, tzinfo=CHINA_TZ)


def test_holidays_do_not_count() -> None:
    national_day = BusinessCalendar(
        week=dict.fromkeys(range(5), (9 * 60, 17 * 60)),
        holidays=frozenset(date(2026, 10, d) for d in range(1, 9)),
    )
    limit = time_limit(national_day, china(2026, 9, 30), 1)
    assert limit.due_at == datetime(2026, 10, 9, 17, tzinfo=CHINA_TZ)


@given(st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)), st.integers(1, 30))
def test_working_days_are_weekdays_in_order(day: date, n: int) -> None:
    days = working_days_after(WEEKDAYS, day, n)
    assert len(days) == n
    assert all(d.weekday() < 5 for d in days)
    assert days == sorted(set(days))
    assert days[0] > day
    assert (days[-1] - day).days <= n + 2 * (n // 5 + 2)
