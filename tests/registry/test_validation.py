from __future__ import annotations

import re
import string
from datetime import date, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from api.core.clock import local_today
from api.registry.validation import (
    PROVINCE_CODES,
    InvalidBirthDate,
    InvalidNationalId,
    InvalidPhone,
    check_char,
    normalise_phone,
    parse_national_id,
    validate_birth_date,
)

TODAY = local_today()
ID_CHARS = "0123456789X"

digits = st.text(alphabet=string.digits, min_size=1, max_size=1)
provinces = st.sampled_from(sorted(PROVINCE_CODES))
birth_dates = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)


def digit_strings(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=string.digits, min_size=n, max_size=n)


@st.composite
def valid_ids(draw: st.DrawFn) -> tuple[str, date, str]:
    """A valid ID number, with the birth date and gender it encodes."""
    province = draw(provinces)
    area = draw(digit_strings(4))
    born = draw(birth_dates)
    sequence = draw(digit_strings(3))
    first17 = f"{province:02d}{area}{born:%Y%m%d}{sequence}"
    return first17 + check_char(first17), born, "male" if int(sequence[-1]) % 2 else "female"


# -- national ID numbers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "11010519491231002X",  # the example of GB 11643-1999
        "440524188001010014",
        "34052419800101001X",
    ],
)
def test_published_examples_have_the_right_check_character(value: str) -> None:
    assert check_char(value[:17]) == value[17]


@given(example=valid_ids())
def test_valid_ids_are_accepted_and_parse_back_to_their_birth_date_and_gender(example: tuple[str, date, str]) -> None:
    # given
    value, born, gender = example
    # when
    parsed = parse_national_id(value, today=TODAY)
    # then
    assert parsed.value == value
    assert parsed.birth_date == born
    assert parsed.gender == gender


@given(example=valid_ids())
def test_every_single_character_change_is_rejected(example: tuple[str, date, str]) -> None:
    # given
    value, _, _ = example
    rejected = 0
    for position in range(18):
        for char in ID_CHARS:
            if char == value[position]:
                continue
            changed = value[:position] + char + value[position + 1 :]
            # when / then
            with pytest.raises(InvalidNationalId):
                parse_national_id(changed, today=TODAY)
            rejected += 1
    assert rejected == 18 * 10


@given(example=valid_ids(), pad=st.sampled_from(["", " ", "\t", "  \n"]))
def test_lowercase_x_is_accepted_and_normalised(example: tuple[str, date, str], pad: str) -> None:
    # given: an ID number whose check character is X, typed in lowercase
    value, _, _ = example
    first16 = value[:16]
    candidates = [first16 + d for d in string.digits if check_char(first16 + d) == "X"]
    assume(candidates)
    upper = candidates[0] + "X"
    # when
    parsed = parse_national_id(pad + upper.lower() + pad, today=TODAY)
    # then
    assert parsed.value == upper


def test_wrong_check_digit_has_its_own_message() -> None:
    with pytest.raises(InvalidNationalId, match="check digit is wrong") as caught:
        parse_national_id("110105194912310020", today=TODAY)
    assert caught.value.field == "nationalId"
    assert caught.value.code == "INVALID_NATIONAL_ID"


@given(region=st.integers(min_value=0, max_value=99).filter(lambda code: code not in PROVINCE_CODES))
def test_an_unknown_province_is_rejected_even_with_a_right_check_digit(region: int) -> None:
    first17 = f"{region:02d}010519491231002"
    with pytest.raises(InvalidNationalId, match="region code"):
        parse_national_id(first17 + check_char(first17), today=TODAY)


@pytest.mark.parametrize("birth", ["19800230", "19810229", "19801301", "19800000", "20001131"])
def test_an_impossible_birth_date_is_rejected_even_with_a_right_check_digit(birth: str) -> None:
    first17 = f"110105{birth}002"
    with pytest.raises(InvalidNationalId, match="impossible birth date"):
        parse_national_id(first17 + check_char(first17), today=TODAY)


@given(days=st.integers(min_value=1, max_value=3650))
def test_an_id_with_a_future_birth_date_is_rejected(days: int) -> None:
    born = TODAY + timedelta(days=days)
    first17 = f"110105{born:%Y%m%d}002"
    with pytest.raises(InvalidNationalId, match="in the future"):
        parse_national_id(first17 + check_char(first17), today=TODAY)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "11010519491231002",  # 17 characters
        "11010519491231002X1",  # 19 characters
        "1101051949123100 2X",
        "11010519491231X02X",
        "110105-19491231-002X",
        # other scripts' digits are digits to \d, but not to an ID number
        "１１０１０５１９４９１２３１００２Ｘ",  # fullwidth
        "110105１９４９１２３１００２X",
        "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X",  # Arabic-Indic
    ],
)
def test_malformed_ids_are_rejected(value: str) -> None:
    with pytest.raises(InvalidNationalId, match="17 digits followed by a digit or X"):
        parse_national_id(value, today=TODAY)


# -- mobile numbers ----------------------------------------------------------------------------


@st.composite
def mobiles(draw: st.DrawFn) -> str:
    return "1" + draw(st.sampled_from("3456789")) + draw(digit_strings(9))


@st.composite
def written_forms(draw: st.DrawFn, number: str) -> str:
    """`number` as people write it: a country prefix, and spaces or dashes between digits."""
    prefix = draw(st.sampled_from(["", "+86", "0086", "+86 ", "0086 ", "+86-", "(+86) "]))
    out = []
    for ch in number:
        out.append(draw(st.sampled_from(["", "", "", " ", "-"])))
        out.append(ch)
    return prefix + "".join(out).lstrip(" -") + draw(st.sampled_from(["", " "]))


@given(data=st.data(), number=mobiles())
def test_valid_mobile_numbers_are_accepted_and_normalised(data: st.DataObject, number: str) -> None:
    # given
    written = data.draw(written_forms(number))
    # when
    normalised = normalise_phone(written)
    # then
    assert normalised == number


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("13812345678", "13812345678"),
        ("+86 138 1234 5678", "13812345678"),
        ("0086-138-1234-5678", "13812345678"),
        ("+8619912345678", "19912345678"),
        (" 138-1234-5678 ", "13812345678"),
    ],
)
def test_mobile_number_examples(written: str, normalised: str) -> None:
    assert normalise_phone(written) == normalised


@given(number=digit_strings(11).filter(lambda n: not re.fullmatch(r"1[3-9]\d{9}", n)))
def test_eleven_digits_that_are_not_a_mobile_number_are_rejected(number: str) -> None:
    with pytest.raises(InvalidPhone):
        normalise_phone(number)


@given(number=st.text(alphabet=string.digits, max_size=20).filter(lambda n: len(n) not in (11, 15)))
def test_digit_strings_of_the_wrong_length_are_rejected(number: str) -> None:
    with pytest.raises(InvalidPhone):
        normalise_phone(number)


@given(number=mobiles(), prefix=st.sampled_from(["+85", "+1", "86", "+086", "086", "+", "0"]))
def test_other_prefixes_are_rejected(number: str, prefix: str) -> None:
    with pytest.raises(InvalidPhone):
        normalise_phone(prefix + number)


any_digits = st.characters(categories=["Nd"])  # every script's decimal digits


@given(
    raw=st.one_of(
        st.text(max_size=25),
        st.builds(
            lambda second, rest: "1" + second + rest,
            st.sampled_from("3456789"),
            st.text(any_digits, min_size=9, max_size=9),
        ),
    )
)
def test_whatever_is_accepted_comes_back_as_eleven_ascii_digits(raw: str) -> None:
    try:
        normalised = normalise_phone(raw)
    except InvalidPhone:
        return
    assert re.fullmatch(r"1[3-9][0-9]{9}", normalised, re.ASCII)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "1381234567a",
        "138.1234.5678",
        "010-12345678",  # a landline
        "12812345678",
        "23812345678",
        "１３８１２３４５６７８",  # fullwidth
        "13８１２３４５６７８",
        "13٨١٢٣٤٥٦٧٨",  # Arabic-Indic
    ],
)
def test_phone_examples_that_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalise_phone(raw)
    assert caught.value.code == "INVALID_PHONE"
    assert caught.value.field == "phone"


# -- birth dates -------------------------------------------------------------------------------


def anniversary(born: date, years: int) -> tuple[int, int, int]:
    """The day `born` turns `years` old, as (year, month, day) so that 29 Feb stays comparable."""
    return born.year + years, born.month, born.day


def as_tuple(day: date) -> tuple[int, int, int]:
    return day.year, day.month, day.day


@given(today=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)), days=st.integers(1, 20_000))
def test_a_birth_date_in_the_future_is_rejected(today: date, days: int) -> None:
    with pytest.raises(InvalidBirthDate, match="in the future"):
        validate_birth_date(today + timedelta(days=days), today=today)


@given(today=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)), data=st.data())
def test_a_birth_date_is_accepted_exactly_when_it_is_at_most_130_years_ago(today: date, data: st.DataObject) -> None:
    # given: a date around the 130-year limit (within two years either side of it)
    born = data.draw(
        st.dates(min_value=date(today.year - 132, 1, 1), max_value=date(today.year - 128, 12, 31)), label="born"
    )
    too_old = anniversary(born, 130) < as_tuple(today)
    # when / then
    if too_old:
        with pytest.raises(InvalidBirthDate, match="more than 130 years ago"):
            validate_birth_date(born, today=today)
    else:
        assert validate_birth_date(born, today=today) == born


@pytest.mark.parametrize(
    ("born", "today", "accepted"),
    [
        (date(1896, 6, 15), date(2026, 6, 15), True),  # 130 today
        (date(1896, 6, 14), date(2026, 6, 15), False),  # 130 and a day
        (date(1896, 1, 1), date(2026, 12, 31), False),  # 130 and almost a year
        (date(1896, 12, 31), date(2026, 1, 1), True),  # 129 and a day
        (date(1896, 2, 29), date(2026, 2, 28), True),
        (date(1896, 2, 29), date(2026, 3, 1), False),
        (date(1900, 1, 1), date(2026, 6, 15), True),
        (date(2026, 6, 15), date(2026, 6, 15), True),  # born today
    ],
)
def test_birth_date_limit_examples(born: date, today: date, accepted: bool) -> None:
    if accepted:
        assert validate_birth_date(born, today=today) == born
    else:
        with pytest.raises(InvalidBirthDate) as caught:
            validate_birth_date(born, today=today)
        assert caught.value.field == "birthDate"
        assert caught.value.message == "The birth date is more than 130 years ago."


@given(born=st.dates(min_value=date(1850, 1, 1), max_value=date(1880, 12, 31)))
def test_an_id_with_a_birth_date_more_than_130_years_ago_is_rejected(born: date) -> None:
    first17 = f"110105{born:%Y%m%d}002"
    with pytest.raises(InvalidNationalId, match="more than 130 years ago"):
        parse_national_id(first17 + check_char(first17), today=date(2026, 6, 15))
