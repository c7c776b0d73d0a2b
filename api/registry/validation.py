"""Validation of national ID numbers (GB 11643-1999), mainland mobile numbers and birth dates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from api.core.errors import ValidationFailed

# Province-level codes (first two digits) in GB/T 2260.
PROVINCE_CODES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
     50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82}
)  # fmt: skip
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
# ASCII only: \d alone also matches other scripts' digits (e.g. fullwidth), which would be stored
# as given and hash differently from the same number in ASCII.
_ID_PATTERN = re.compile(r"^\d{17}[\dX]$", re.ASCII)
_MOBILE_PATTERN = re.compile(r"^1[3-9]\d{9}$", re.ASCII)
OLDEST_AGE_YEARS = 130


class InvalidNationalId(ValidationFailed):
    code = "INVALID_NATIONAL_ID"


class InvalidPhone(ValidationFailed):
    code = "INVALID_PHONE"


class InvalidBirthDate(ValidationFailed):
    code = "INVALID_BIRTH_DATE"


@dataclass(frozen=True, slots=True)
class NationalId:
    value: str
    birth_date: date
    gender: str  # "male" | "female", from the 17th digit's parity


def check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def parse_national_id(raw: str, *, today: date, field: str = "nationalId") -> NationalId:
    """Validate and normalise an 18-character ID number. Raises InvalidNationalId."""
    value = raw.strip().upper()
    if not _ID_PATTERN.match(value):
        raise InvalidNationalId("An ID number has 17 digits followed by a digit or X.", field=field)
    if check_char(value[:17]) != value[17]:
        raise InvalidNationalId("The ID number's check digit is wrong; please check it again.", field=field)
    if int(value[:2]) not in PROVINCE_CODES:
        raise InvalidNationalId("The ID number's region code is not a province of China.", field=field)
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise InvalidNationalId("The ID number holds an impossible birth date.", field=field) from None
    validate_birth_date(born, today=today, field=field, error=InvalidNationalId)
    return NationalId(value=value, birth_date=born, gender="male" if int(value[16]) % 2 else "female")


def validate_birth_date(
    born: date, *, today: date, field: str = "birthDate", error: type[ValidationFailed] = InvalidBirthDate
) -> date:
    """A birth date lies in the past and within a human lifetime. Raises InvalidBirthDate."""
    if born > today:
        raise error("The birth date is in the future.", field=field)
    # More than 130 years ago: the 130th birthday lies before today (not just 130 calendar years).
    if (born.year + OLDEST_AGE_YEARS, born.month, born.day) < (today.year, today.month, today.day):
        raise error(f"The birth date is more than {OLDEST_AGE_YEARS} years ago.", field=field)
    return born


def normalise_phone(raw: str, *, field: str = "phone") -> str:
    """Return the 11-digit mainland mobile number. Raises InvalidPhone."""
    digits = re.sub(r"[\s\-()]", "", raw)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    if not _MOBILE_PATTERN.match(digits):
        raise InvalidPhone("Give a mainland China mobile number: 11 digits starting with 13–19.", field=field)
    return digits
