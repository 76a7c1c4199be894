"""Checking ID numbers (GB 11643 via stdnum.cn.ric) and cross-checking them with the card."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric

from edge.drivers.sam.idnumber import IdProblem, check_card, check_number
from edge.drivers.sam.textblock import CardType, Sex
from edge.simulators.idcard import CARDS_DIR, load_card
from muster.idnumbers import id_number_problem_code


@pytest.mark.parametrize("number", ["11010519491231002X", "440308199901101512"])
def test_document_numbers_are_valid(number: str) -> None:
    """The protocol document's valid examples pass."""
    check = check_number(number)
    assert check.valid is True and check.problems == ()


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("440308199901101513", IdProblem.CHECKSUM),  # the document's bad check digit
        ("11010519491231002Y", IdProblem.FORMAT),
        ("1101051949123100", IdProblem.FORMAT),
        ("110105194902300021", IdProblem.BIRTH_DATE),  # 30 February
        ("990105194912310029", IdProblem.REGION),  # no region 990105
    ],
)
def test_invalid_numbers_name_their_problem(number: str, problem: IdProblem) -> None:
    """A bad check character, an impossible date and an unknown region are each reported."""
    check = check_number(number)
    assert check.valid is False
    assert problem in check.problems


def test_impossible_date_with_a_correct_check_character() -> None:
    """A number whose check character is right but whose date does not exist is still invalid."""
    body = "11010519490230002"
    number = body + ric.calc_check_digit(body + "0")
    check = check_number(number)
    assert check.problems == (IdProblem.BIRTH_DATE,)


def test_unknown_region_with_a_correct_check_character() -> None:
    """A region code that never existed fails even when the arithmetic is right."""
    body = "99010519491231002"
    number = body + ric.calc_check_digit(body + "0")
    assert check_number(number).problems == (IdProblem.REGION,)


def test_birth_date_and_sex_must_agree_with_the_card() -> None:
    """The number's birth date and sequence parity are compared with the card's own fields."""
    number = "440308199901101512"  # born 1999-01-10, sequence 151: male
    assert check_number(number, birth_date=dt.date(1999, 1, 10), sex=Sex.MALE).valid
    wrong_day = check_number(number, birth_date=dt.date(1999, 1, 11), sex=Sex.MALE)
    assert wrong_day.problems == (IdProblem.BIRTH_MISMATCH,)
    wrong_sex = check_number(number, birth_date=dt.date(1999, 1, 10), sex=Sex.FEMALE)
    assert wrong_sex.problems == (IdProblem.SEX_MISMATCH,)
    # An unspecified sex on the card gives nothing to compare against.
    assert check_number(number, sex=Sex.UNSPECIFIED).valid


def test_residence_permit_regions() -> None:
    """Residence permits use 810000/820000/830000, which stdnum's table lacks for Taiwan."""
    for region in ("810000", "820000", "830000"):
        body = region + "19940823002"
        number = body + ric.calc_check_digit(body + "0")
        assert check_number(number, card_type=CardType.HMT_RESIDENCE_PERMIT).valid
    assert not check_number("11010519491231002X", card_type=CardType.HMT_RESIDENCE_PERMIT).valid


def test_foreigner_cards() -> None:
    """The 2023 card's number starts with 9 and carries a GB 11643 check; the 2017 card's has no
    published check, so only its shape is verified and validity is left open (None)."""
    assert check_number("911840198506150011", card_type=CardType.FOREIGN_PERMANENT_2023).valid
    assert not check_number("111840198506150012", card_type=CardType.FOREIGN_PERMANENT_2023).valid
    assert check_number("USA110085061501", card_type=CardType.FOREIGN_PERMANENT_2017).valid is None
    assert check_number("12345", card_type=CardType.FOREIGN_PERMANENT_2017).valid is False


@pytest.mark.parametrize("path", sorted(CARDS_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_sample_cards_are_self_consistent(path: Path) -> None:
    """Every shipped sample card's number agrees with its own birth date and sex."""
    check = check_card(load_card(path).text)
    assert check.valid is not False, check.problems


def test_known_province_with_unknown_county_is_a_region_problem() -> None:
    """110001 has a province but no county in stdnum's table, where stdnum itself fails with
    KeyError; the check reports an unknown region instead of crashing the card read."""
    body = "11000119491231002"
    number = body + ric.calc_check_digit(body + "0")
    with pytest.raises(KeyError):
        ric.is_valid(number)
    assert check_number(number).problems == (IdProblem.REGION,)


def test_region_created_after_birth_is_accepted() -> None:
    """A veteran born in 1940 registered in Taishan district (370902, created 1985) holds a
    real number that stdnum alone rejects; the card check follows the project's rule."""
    body = "37090219400315001"
    number = body + ric.calc_check_digit(body + "0")
    assert not ric.is_valid(number)
    assert check_number(number, birth_date=dt.date(1940, 3, 15), sex=Sex.MALE).valid


@given(st.text(alphabet="0123456789X", min_size=18, max_size=18))
def test_resident_verdict_agrees_with_the_record_model(number: str) -> None:
    """For any 18-character number the card check and the record model's rule agree."""
    assert check_number(number).valid == (id_number_problem_code(number) is None)


@given(
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date.today()),
    st.integers(min_value=0, max_value=999),
)
def test_generated_valid_numbers_pass(birth: dt.date, sequence: int) -> None:
    """A number built from a real region, any real date and any sequence is valid and its sex
    is read from the sequence's parity."""
    body = f"110105{birth:%Y%m%d}{sequence:03d}"
    number = body + ric.calc_check_digit(body + "0")
    sex = Sex.MALE if sequence % 2 else Sex.FEMALE
    assert check_number(number, birth_date=birth, sex=sex).valid
