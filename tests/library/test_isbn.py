"""ISBN-10 and ISBN-13 validation and normalisation: examples and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.library.isbn import InvalidIsbn, isbn10_check, isbn13_check, isbn13_to_10, normalise_isbn

digits = st.text(alphabet="0123456789", min_size=9, max_size=9)
twelve = st.tuples(st.sampled_from(["978", "979"]), st.text(alphabet="0123456789", min_size=9, max_size=9)).map("".join)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0-306-40615-2", "9780306406157"),  # the ISBN-10 → ISBN-13 example of ISO 2108
        ("978-0-306-40615-7", "9780306406157"),
        ("ISBN 978-7-02-000220-7", "9787020002207"),
        ("ISBN-10: 7-5442-1124-X", "9787544211246"),
        ("7-5442-1124-x", "9787544211246"),  # a lower-case check character
        ("  9787020002207 ", "9787020002207"),
        ("979-10-90636-07-1", "9791090636071"),  # 979: no ISBN-10 form
    ],
)
def test_valid_isbns_normalise_to_isbn13(raw: str, expected: str) -> None:
    assert normalise_isbn(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("0-306-40615-3", "check digit"),
        ("978-0-306-40615-8", "check digit"),
        ("977-0-306-40615-7", "978 or 979"),
        ("12345", "10 or 13"),
        ("030640615X2", "10 or 13"),
        ("X-306-40615-2", "nine digits"),
        ("９７８０３０６４０６１５７", "13 digits"),  # fullwidth digits are not ASCII digits
        ("", "10 or 13"),
    ],
)
def test_invalid_isbns_are_refused_with_a_typed_error(raw: str, message: str) -> None:
    with pytest.raises(InvalidIsbn) as caught:
        normalise_isbn(raw)
    assert message in caught.value.message
    assert caught.value.code == "INVALID_ISBN"
    assert caught.value.field == "isbn"


@given(digits)
def test_every_isbn10_normalises_to_the_isbn13_with_the_same_core(first9: str) -> None:
    isbn10 = first9 + isbn10_check(first9)
    isbn13 = normalise_isbn(isbn10)
    assert isbn13[:12] == "978" + first9
    assert isbn13_check(isbn13[:12]) == isbn13[12]
    assert isbn13_to_10(isbn13) == isbn10
    assert normalise_isbn(isbn13) == isbn13  # idempotent


@given(twelve, st.lists(st.integers(min_value=1, max_value=12), max_size=4, unique=True))
def test_hyphens_and_spaces_do_not_matter(first12: str, cuts: list[int]) -> None:
    isbn13 = first12 + isbn13_check(first12)
    grouped = isbn13
    for cut in sorted(cuts, reverse=True):
        grouped = grouped[:cut] + ("-" if cut % 2 else " ") + grouped[cut:]
    assert normalise_isbn(grouped) == isbn13


@given(digits, st.integers(min_value=0, max_value=9), st.integers(min_value=1, max_value=9))
def test_isbn10_catches_every_single_digit_error(first9: str, position: int, shift: int) -> None:
    isbn10 = first9 + isbn10_check(first9)
    digit = isbn10[position]
    if digit == "X":
        return
    wrong = isbn10[:position] + str((int(digit) + shift) % 10) + isbn10[position + 1 :]
    with pytest.raises(InvalidIsbn):
        normalise_isbn(wrong)


@given(digits, st.integers(min_value=0, max_value=8))
def test_isbn10_catches_every_transposition_of_adjacent_digits(first9: str, position: int) -> None:
    isbn10 = first9 + isbn10_check(first9)
    a, b = isbn10[position], isbn10[position + 1]
    if a == b:
        return
    swapped = isbn10[:position] + b + a + isbn10[position + 2 :]
    with pytest.raises(InvalidIsbn):
        normalise_isbn(swapped)


@given(twelve, st.integers(min_value=3, max_value=12), st.integers(min_value=1, max_value=9))
def test_isbn13_catches_every_single_digit_error(first12: str, position: int, shift: int) -> None:
    isbn13 = first12 + isbn13_check(first12)
    wrong = isbn13[:position] + str((int(isbn13[position]) + shift) % 10) + isbn13[position + 1 :]
    with pytest.raises(InvalidIsbn):
        normalise_isbn(wrong)
