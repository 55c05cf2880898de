from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.enums import Sex
from models.errors import InvalidResidentId
from models.identity import (
    birth_date_of,
    make_resident_id,
    normalise_resident_id,
    resident_id_check_char,
    sex_of,
)

# The worked examples printed in GB 11643-1999 and repeated in its commentaries.
STANDARD_EXAMPLES = ["11010519491231002X", "440524188001010014"]


@pytest.mark.parametrize("resident_id", STANDARD_EXAMPLES)
def test_standard_examples_are_valid(resident_id: str) -> None:
    assert normalise_resident_id(resident_id) == resident_id


def test_lower_case_x_and_spaces_are_normalised() -> None:
    assert normalise_resident_id(" 11010519491231002x ") == "11010519491231002X"


def test_birth_date_and_sex_come_from_the_number() -> None:
    assert birth_date_of("11010519491231002X") == date(1949, 12, 31)
    assert sex_of("11010519491231002X") is Sex.female  # 17th digit 2 is even
    assert sex_of("440524188001010014") is Sex.male  # 17th digit 1 is odd


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("11010519491231002", "18 characters"),
        ("110105194912310021X", "18 characters"),
        ("11010519491231002Y", "last character"),
        ("1101051949123100AX", "must be digits"),
        ("110105194913310027", "birth date"),
        ("110105194902300027", "birth date"),
        ("110105194912310021", "check character is 1, expected X"),
        ("１１０１０５１９４９１２３１００２X", "digits"),
    ],
)
def test_invalid_numbers_are_refused_with_the_reason(value: str, message: str) -> None:
    with pytest.raises(InvalidResidentId, match=message):
        normalise_resident_id(value)


@given(
    born=st.dates(min_value=date(1900, 1, 1), max_value=date(2026, 12, 31)),
    sequence=st.integers(0, 99),
    sex=st.sampled_from([Sex.male, Sex.female]),
)
def test_made_numbers_are_valid_and_keep_birth_date_and_sex(
    born: date, sequence: int, sex: Sex
) -> None:
    value = make_resident_id("390521", born, sequence, sex)
    assert normalise_resident_id(value) == value
    assert birth_date_of(value) == born
    assert sex_of(value) is sex


@given(
    born=st.dates(min_value=date(1900, 1, 1), max_value=date(2026, 12, 31)),
    position=st.integers(0, 16),
    delta=st.integers(1, 9),
)
def test_any_single_digit_error_is_detected(born: date, position: int, delta: int) -> None:
    """MOD 11-2 catches every single-digit substitution."""
    value = make_resident_id("390521", born, 7, Sex.male)
    digits = list(value)
    digits[position] = str((int(digits[position]) + delta) % 10)
    mutated = "".join(digits)
    first17 = mutated[:17]
    assert resident_id_check_char(first17) != mutated[17]
