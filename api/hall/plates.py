"""Chinese licence plates (GA 36-2018): normalise, validate and classify; pure functions.

- Ordinary plates: 7 characters, a province abbreviation, the issuing office's letter (A–Z
  without I and O), then 5 letters (without I and O) or digits; the last may instead be one of
  学 (driving school), 警 (police), 港/澳 (Hong Kong/Macau), 挂 (trailer) or 领 (consulate).
- New-energy plates: 8 characters, province, office letter, then 6: small vehicles put D (pure
  electric) or F (other new energy) first, then a letter or digit, then 4 digits; large vehicles
  have 5 digits and D or F last.
- Electric bicycles carry local plates whose form differs by city: for them only the character set
  and length are checked.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

from api.core.errors import ValidationFailed

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I, no O (they read as 1 and 0)
DIGITS = "0123456789"
SUFFIXES = "学警港澳挂领"

_P = f"[{PROVINCES}]"
_L = f"[{LETTERS}]"
_A = f"[{LETTERS}{DIGITS}]"
ORDINARY = re.compile(f"^{_P}{_L}(?:{_A}{{5}}|{_A}{{4}}[{SUFFIXES}])$")
NEW_ENERGY = re.compile(f"^{_P}{_L}(?:[DF]{_A}[0-9]{{4}}|[0-9]{{5}}[DF])$")
LOCAL = re.compile(r"^[\u4e00-\u9fffA-Z0-9]{4,10}$")
# Spaces (ASCII and ideographic) and the dots people type between the office letter and the number.
_SEPARATORS = re.compile(r"[\s.·•・\-_]+")


class PlateKind(StrEnum):
    ORDINARY = "ordinary"  # 7 characters
    NEW_ENERGY = "new_energy"  # 8 characters
    LOCAL = "local"  # an e-bike's local plate


class InvalidPlate(ValidationFailed):
    """The plate is not a valid Chinese plate for this kind of vehicle."""

    code = "INVALID_PLATE"


def normalise_plate(raw: str) -> str:
    """Upper case, full-width characters folded to ASCII, spaces and dots removed."""
    folded = unicodedata.normalize("NFKC", raw)
    return _SEPARATORS.sub("", folded).upper()


def plate_kind(plate: str) -> PlateKind | None:
    """The kind of a normalised national plate, or None when it is not one."""
    if ORDINARY.match(plate):
        return PlateKind.ORDINARY
    if NEW_ENERGY.match(plate):
        return PlateKind.NEW_ENERGY
    return None


def is_valid_plate(raw: str) -> bool:
    """True when `raw` normalises to an ordinary or new-energy national plate."""
    return plate_kind(normalise_plate(raw)) is not None


def check_plate(raw: str, *, vehicle_kind: str, field: str = "plate") -> tuple[str, PlateKind]:
    """The normalised plate and its kind for a vehicle of `vehicle_kind`. Raises InvalidPlate."""
    plate = normalise_plate(raw)
    if not plate:
        raise InvalidPlate("Please give the plate number.", field=field)
    if vehicle_kind == "e_bike":
        if not LOCAL.match(plate):
            raise InvalidPlate("An e-bike plate has 4 to 10 letters, digits or Chinese characters.", field=field)
        return plate, PlateKind.LOCAL
    kind = plate_kind(plate)
    if kind is None:
        if plate[0] not in PROVINCES:
            raise InvalidPlate(f"「{plate}」 does not start with a province abbreviation (京, 冀, 粤 …).", field=field)
        if len(plate) not in (7, 8):
            raise InvalidPlate(
                f"「{plate}」 has {len(plate)} characters: ordinary plates have 7, new-energy plates 8.", field=field
            )
        raise InvalidPlate(f"「{plate}」 is not a valid plate (GA 36-2018).", field=field)
    if vehicle_kind == "new_energy_car" and kind is not PlateKind.NEW_ENERGY:
        raise InvalidPlate("A new-energy car has an 8-character green plate (D or F in it).", field=field)
    if vehicle_kind in ("car", "motorcycle") and kind is PlateKind.NEW_ENERGY:
        raise InvalidPlate("That is a new-energy plate: register the vehicle as a new-energy car.", field=field)
    return plate, kind
