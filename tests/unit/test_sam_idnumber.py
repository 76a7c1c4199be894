"""The card adapter: a card as read is judged by the project's one checker, with its own card
type, birth date and sex, on the day the consumer gives."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from edge.drivers.sam.idnumber import check_card
from edge.drivers.sam.textblock import CardType, Sex
from edge.simulators.idcard import CARDS_DIR, load_card

TODAY = dt.date(2026, 11, 23)


@pytest.mark.parametrize("path", sorted(CARDS_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_sample_cards_are_self_consistent(path: Path) -> None:
    """Every shipped sample card's number agrees with its own birth date and sex."""
    check = check_card(load_card(path).text, today=TODAY)
    assert check.valid is not False, check.problems


def test_the_cards_own_fields_are_compared() -> None:
    """A chip whose printed birth date or sex differs from its number is reported so, and a
    card of another type is judged by that type's rules."""
    resident = load_card(CARDS_DIR / "resident.json").text
    other_sex = Sex.MALE if resident.sex is Sex.FEMALE else Sex.FEMALE
    wrong = dataclasses.replace(
        resident, birth_date=resident.birth_date + dt.timedelta(days=1), sex=other_sex
    )
    assert check_card(wrong, today=TODAY).codes == ("id_birth_date", "id_sex")
    as_permit = dataclasses.replace(resident, card_type=CardType.HMT_RESIDENCE_PERMIT)
    assert check_card(as_permit, today=TODAY).codes == ("region",)


def test_the_consumers_today_decides_the_future() -> None:
    """The adapter has no clock: a card read before its holder's birth date (a device clock
    set years back) is judged "born in the future" by that day, valid by the real one."""
    card = load_card(CARDS_DIR / "resident.json").text
    assert check_card(card, today=card.birth_date - dt.timedelta(days=1)).codes == ("future",)
    assert check_card(card, today=TODAY).valid is True
