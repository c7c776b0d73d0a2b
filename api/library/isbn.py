"""ISBN-10 and ISBN-13: check digits, validation and normalisation to ISBN-13."""

from __future__ import annotations

import re

from api.core.errors import ValidationFailed


class InvalidIsbn(ValidationFailed):
    code = "INVALID_ISBN"


# "ISBN", "ISBN-13:", "ISBN 10" ... in front of the number.
_PREFIX = re.compile(r"^ISBN(?:[-\s]?1[03])?:?", re.ASCII)
# Spaces and the hyphens (ASCII and Unicode) that group an ISBN's parts.
_SEPARATORS = re.compile(r"[\s\-\u2010\u2011\u2012\u2013\u2014\u2212]")
_ISBN10 = re.compile(r"^\d{9}[\dX]$", re.ASCII)
_ISBN13 = re.compile(r"^\d{13}$", re.ASCII)


def isbn10_check(first9: str) -> str:
    """The ISBN-10 check character (mod 11, weights 10..2; 10 is written X)."""
    total = sum((10 - i) * int(d) for i, d in enumerate(first9))
    check = (11 - total % 11) % 11
    return "X" if check == 10 else str(check)


def isbn13_check(first12: str) -> str:
    """The ISBN-13 (EAN-13) check digit (mod 10, weights 1 and 3 alternating)."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return str((10 - total % 10) % 10)


def normalise_isbn(raw: str, *, field: str = "isbn") -> str:
    """The 13-digit ISBN for an ISBN-10 or ISBN-13, with or without hyphens. Raises InvalidIsbn."""
    value = _SEPARATORS.sub("", _PREFIX.sub("", raw.strip().upper()))
    if len(value) == 10:
        if not _ISBN10.match(value):
            raise InvalidIsbn("An ISBN-10 has nine digits and a check digit (0–9 or X).", field=field)
        if isbn10_check(value[:9]) != value[9]:
            raise InvalidIsbn("The ISBN's check digit is wrong; please check the number.", field=field)
        core = "978" + value[:9]
        return core + isbn13_check(core)
    if len(value) == 13:
        if not _ISBN13.match(value):
            raise InvalidIsbn("An ISBN-13 has 13 digits.", field=field)
        if not value.startswith(("978", "979")):
            raise InvalidIsbn("An ISBN-13 starts with 978 or 979.", field=field)
        if isbn13_check(value[:12]) != value[12]:
            raise InvalidIsbn("The ISBN's check digit is wrong; please check the number.", field=field)
        return value
    raise InvalidIsbn("An ISBN has 10 or 13 digits.", field=field)


def looks_like_isbn(raw: str) -> bool:
    """True when `raw` is a valid ISBN (a catalogue search then matches it exactly)."""
    try:
        normalise_isbn(raw)
    except InvalidIsbn:
        return False
    return True


def isbn13_to_10(isbn13: str) -> str | None:
    """The ISBN-10 form of a 978 ISBN-13; None for 979 (they have none)."""
    if not isbn13.startswith("978"):
        return None
    return isbn13[3:12] + isbn10_check(isbn13[3:12])
