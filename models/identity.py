"""Resident identity numbers (居民身份证号码, GB 11643-1999)."""

from __future__ import annotations

from datetime import date

from models.enums import Sex
from models.errors import InvalidResidentId

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"


def resident_id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit() or not first17.isascii():
        raise InvalidResidentId("need exactly 17 digits to compute a check character")
    total = sum(int(digit) * weight for digit, weight in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def normalise_resident_id(raw: str) -> str:
    """Validate an 18-character resident ID and return it with an upper-case X.

    Checks length, digits, the birth date in positions 7-14 and the check
    character, so a mistyped number is refused at the door rather than
    linking two patients wrongly.
    """
    value = raw.strip().upper()
    if len(value) != 18:
        raise InvalidResidentId(f"resident ID must have 18 characters, got {len(value)}")
    first17, check = value[:17], value[17]
    if not first17.isascii() or not first17.isdigit():
        raise InvalidResidentId("resident ID: the first 17 characters must be digits")
    if check not in "0123456789X":
        raise InvalidResidentId("resident ID: the last character must be a digit or X")
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError as exc:
        raise InvalidResidentId(f"resident ID: invalid birth date {value[6:14]}") from exc
    if born.year < 1880:
        raise InvalidResidentId(f"resident ID: implausible birth year {born.year}")
    expected = resident_id_check_char(first17)
    if check != expected:
        raise InvalidResidentId(f"resident ID: check character is {check}, expected {expected}")
    return value


def birth_date_of(resident_id: str) -> date:
    value = normalise_resident_id(resident_id)
    return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))


def sex_of(resident_id: str) -> Sex:
    """The 17th digit is odd for men and even for women."""
    value = normalise_resident_id(resident_id)
    return Sex.male if int(value[16]) % 2 == 1 else Sex.female


def make_resident_id(area_code: str, born: date, sequence: int, sex: Sex) -> str:
    """Build a valid ID; ``sequence`` (0-99) picks the order code, sex sets its parity."""
    if len(area_code) != 6 or not area_code.isdigit():
        raise InvalidResidentId("area code must be 6 digits")
    if not 0 <= sequence <= 99:
        raise InvalidResidentId("sequence must be within 0..99")
    parity = 1 if sex is Sex.male else 0
    order_code = f"{sequence:02d}{(sequence % 5) * 2 + parity}"
    first17 = f"{area_code}{born:%Y%m%d}{order_code}"
    return first17 + resident_id_check_char(first17)
