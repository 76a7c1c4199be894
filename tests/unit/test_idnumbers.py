"""Resident ID numbers: what is valid, and a clerk-readable reason for everything that is not."""

from __future__ import annotations

import datetime as dt

import pytest
from stdnum.cn import ric

from muster.idnumbers import birth_date_of, id_number_problem, id_number_problem_code, sex_of


def make(body17: str) -> str:
    return body17 + ric.calc_check_digit(body17 + "0")


@pytest.mark.parametrize(
    "number",
    [
        "11010519491231002X",  # the standard's own example
        make("37090219400101123"),  # Taishan district code (1985) for a man born in 1940
        make("37090219850615002"),
    ],
)
def test_valid_numbers(number: str) -> None:
    """Valid numbers pass, including old veterans whose county code is younger than they are."""
    assert id_number_problem(number) is None


def test_stdnum_alone_would_reject_an_old_veteran() -> None:
    """Why we do not call ric.is_valid directly: it rejects a 1940 birth under a 1985 code."""
    number = make("37090219400101123")
    assert not ric.is_valid(number)
    assert id_number_problem(number) is None


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("11010519491231002", "length"),
        ("1101051949123100211", "length"),
        ("1101051949123A002X", "format"),
        ("11010519491231002Y", "format"),
        ("110105194912310021", "checksum"),  # bad check character
        (make("11010519490230002"), "birth_date"),  # 30 February
        (make("11010520991231002"), "future"),
        (make("99010519491231002"), "region"),  # no such province
        (make("11019919491231002"), "region"),  # no such county
        (make("11010320200101002"), "region"),  # Chongwen district, abolished 2010
    ],
)
def test_invalid_numbers_name_the_problem(number: str, code: str) -> None:
    """Each kind of error gets its own code and a Chinese message a clerk can act on."""
    assert id_number_problem_code(number, today=dt.date(2026, 11, 23)) == code
    message = id_number_problem(number, today=dt.date(2026, 11, 23))
    assert message and "公民身份号码" in message


def test_birth_date_and_sex_come_from_the_number() -> None:
    """The birth date is digits 7-14; the 17th digit is odd for men and even for women."""
    assert birth_date_of("11010519491231002X") == dt.date(1949, 12, 31)
    assert sex_of("11010519491231002X") == "2"
    assert sex_of(make("37090219400101123")) == "1"
