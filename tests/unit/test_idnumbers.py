"""ID numbers: the one checker (``muster.idnumbers.check_id_number``) that the console's form, the
import, ingest and the card reader all use. Every date is fixed: the checker is told its today."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric

from muster.idnumbers import CardType, birth_date_of, check_id_number, sex_of

TODAY = dt.date(2026, 11, 23)
R, HMT = CardType.RESIDENT, CardType.HMT_RESIDENCE_PERMIT
F17, F23 = CardType.FOREIGN_PERMANENT_2017, CardType.FOREIGN_PERMANENT_2023


def make(body17: str) -> str:
    return body17 + ric.calc_check_digit(body17 + "0")


# number, card type, birth date and sex stated beside it, today, the codes expected (in order).
CASES: list[tuple[str, str, CardType, dt.date | None, str | None, dt.date, tuple[str, ...]]] = [
    # id, number, card type, birth date, sex, today, codes
    ("standard example", "11010519491231002X", R, None, None, TODAY, ()),
    ("lower-case x", "11010519491231002x", R, None, None, TODAY, ()),
    ("agrees with person", "440308199901101512", R, dt.date(1999, 1, 10), "1", TODAY, ()),
    ("old region, 1940", make("37090219400101123"), R, None, None, TODAY, ()),
    ("too short", "11010519491231002", R, None, None, TODAY, ("length",)),
    ("too long", "1101051949123100211", R, None, None, TODAY, ("length",)),
    ("letter inside", "1101051949123A002X", R, None, None, TODAY, ("format",)),
    ("bad last character", "11010519491231002Y", R, None, None, TODAY, ("format",)),
    ("wrong check digit", "110105194912310021", R, None, None, TODAY, ("checksum",)),
    ("document's bad check", "440308199901101513", R, None, None, TODAY, ("checksum",)),
    ("30 February", make("11010519490230002"), R, None, None, TODAY, ("birth_date",)),
    ("bad check and date", "110105194902300021", R, None, None, TODAY, ("checksum", "birth_date")),
    ("born tomorrow", make("11010520261124002"), R, None, None, TODAY, ("future",)),
    ("born tomorrow, a day on", make("11010520261124002"), R, None, None, dt.date(2026, 11, 24), ()),
    ("no such province", make("99010519491231002"), R, None, None, TODAY, ("region",)),
    ("no such county", make("11019919491231002"), R, None, None, TODAY, ("region",)),
    ("province, no county", make("11000119491231002"), R, None, None, TODAY, ("region",)),
    ("abolished before birth", make("11010320200101002"), R, None, None, TODAY, ("region",)),
    ("Hong Kong permit", make("81000019940823002"), HMT, None, None, TODAY, ()),
    ("Macao permit", make("82000019940823002"), HMT, None, None, TODAY, ()),
    ("Taiwan permit", make("83000019940823002"), HMT, None, None, TODAY, ()),
    ("permit, resident region", "11010519491231002X", HMT, None, None, TODAY, ("region",)),
    ("2023 foreigner's card", "911840198506150011", F23, None, None, TODAY, ()),
    ("2023 card not 9", "111840198506150012", F23, None, None, TODAY, ("format",)),
    ("2017 foreigner's card", "USA110085061501", F17, None, None, TODAY, ()),
    ("2017 card too short", "12345", F17, None, None, TODAY, ("format",)),
    ("2017 card digits only", "123110085061501", F17, None, None, TODAY, ("format",)),
    ("birth date differs", "440308199901101512", R, dt.date(1999, 1, 11), "1", TODAY, ("id_birth_date",)),
    ("sex differs", "440308199901101512", R, dt.date(1999, 1, 10), "2", TODAY, ("id_sex",)),
    ("both differ", "440308199901101512", R, dt.date(1999, 1, 11), "2", TODAY, ("id_birth_date", "id_sex")),
    ("sex unspecified", "440308199901101512", R, None, "9", TODAY, ()),
    ("permit sex differs", make("81000019940823002"), HMT, dt.date(1994, 8, 23), "1", TODAY, ("id_sex",)),
    ("bad check, sex differs", "110105194912310021", R, None, "1", TODAY, ("checksum", "id_sex")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("number", "card_type", "birth", "sex", "today", "codes"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_checker_reports_every_problem(
    number: str,
    card_type: CardType,
    birth: dt.date | None,
    sex: str | None,
    today: dt.date,
    codes: tuple[str, ...],
) -> None:
    """Each number gets exactly the problems it has, by stable code, for its document type,
    judged on the day given; valid numbers get none."""
    checked = check_id_number(number, today=today, card_type=card_type, birth_date=birth, sex=sex)
    assert checked.codes == codes
    assert checked.valid is (not codes) or (card_type is F17 and checked.valid is None)


def test_every_problem_has_a_field_and_both_messages() -> None:
    """A clerk reads the Chinese message, a technician the English one; the disagreements are
    placed on the birth date and sex fields, the rest on the number."""
    problems = [
        p
        for case in CASES
        for p in check_id_number(
            case[1], today=case[5], card_type=case[2], birth_date=case[3], sex=case[4]
        ).problems
    ]
    assert {p.code for p in problems} >= {"length", "format", "checksum", "birth_date", "future"}
    for p in problems:
        assert p.zh and p.en and p.zh != p.en
        assert p.field == {"id_birth_date": "birth_date", "id_sex": "sex"}.get(p.code, "id_number")
        assert "号码" in p.zh


def test_the_2017_card_cannot_be_proven_valid() -> None:
    """The 2017 foreigner's card has no published check: a well-formed number is neither valid
    nor invalid (None), so a consumer can tell "unknown" from "good"."""
    assert check_id_number("usa110085061501", today=TODAY, card_type=F17).valid is None


def test_stdnum_alone_would_reject_an_old_veteran() -> None:
    """Why the checker does not call ric.is_valid: it rejects a 1940 birth under a 1985 code."""
    number = make("37090219400101123")
    assert not ric.is_valid(number)
    assert check_id_number(number, today=TODAY).valid is True


def test_birth_date_and_sex_come_from_the_number() -> None:
    """The birth date is digits 7-14; the 17th digit is odd for men and even for women."""
    assert birth_date_of("11010519491231002X") == dt.date(1949, 12, 31)
    assert sex_of("11010519491231002X") == "2"
    assert sex_of(make("37090219400101123")) == "1"


@settings(max_examples=300)
@given(
    st.dates(min_value=dt.date(1900, 1, 1), max_value=TODAY),
    st.integers(min_value=0, max_value=999),
)
def test_any_real_person_number_is_valid_and_agrees(birth: dt.date, sequence: int) -> None:
    """A number built from a real region, any past date and any sequence is valid, agrees with
    that birth date and the sex of its parity, and disagrees with the other sex."""
    number = make(f"110105{birth:%Y%m%d}{sequence:03d}")
    sex = "1" if sequence % 2 else "2"
    assert check_id_number(number, today=TODAY, birth_date=birth, sex=sex).valid is True
    assert (birth_date_of(number), sex_of(number)) == (birth, sex)
    other = "2" if sex == "1" else "1"
    assert check_id_number(number, today=TODAY, sex=other).codes == ("id_sex",)


@settings(max_examples=300)
@given(
    st.dates(min_value=dt.date(1900, 1, 1), max_value=TODAY),
    st.integers(min_value=0, max_value=999),
    st.sampled_from("0123456789X"),
)
def test_any_other_check_character_is_refused(birth: dt.date, sequence: int, last: str) -> None:
    """Changing the check character of a valid number always makes it a checksum problem."""
    number = make(f"110105{birth:%Y%m%d}{sequence:03d}")
    if last != number[-1]:
        assert check_id_number(number[:-1] + last, today=TODAY).codes == ("checksum",)


@settings(max_examples=500)
@given(st.text(alphabet="0123456789X -", max_size=20), st.sampled_from(list(CardType)))
def test_hostile_input_gets_a_verdict_not_a_crash(number: str, card_type: CardType) -> None:
    """Whatever a clerk types or a card holds, the checker answers with problems, never an
    exception (a card read or an import must not fail on a garbled number)."""
    checked = check_id_number(number, today=TODAY, card_type=card_type)
    assert checked.valid is not True or len(checked.number) == 18
