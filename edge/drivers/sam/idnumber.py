"""Checking the number on a card (GB 11643) and whether it agrees with the card's own fields.

The arithmetic and the region table are ``stdnum.cn.ric``'s. For resident cards the verdict on
the region is :mod:`muster.idnumbers`', so a card the device reads and the record the
controller ingests are judged by one rule (it accepts a region code created after the holder's
birth, as numbers first issued in 1984-85 carry). This module adds what a reader knows and
neither of those does: which document the number came from (residence permits use the
810000/820000/830000 regions, the 2023 foreigner's card starts with 9, the 2017 card has no
published check), and the birth date and sex printed on the same chip.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Final

from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from edge.drivers.sam.textblock import CardText, CardType, Sex
from muster.idnumbers import id_number_problem_code

_PERMIT_REGIONS: Final = frozenset({"810000", "820000", "830000"})


class IdProblem(enum.Enum):
    """One thing wrong with a number, with the message an operator reads."""

    FORMAT = "号码格式错误（应为 17 位数字加校验位）/ not 17 digits and a check character"
    CHECKSUM = "校验位错误 / wrong check character"
    BIRTH_DATE = "号码中的出生日期不存在 / impossible birth date in the number"
    REGION = "号码中的地区码不存在 / unknown region code"
    BIRTH_MISMATCH = "号码中的出生日期与证件不符 / birth date differs from the card's"
    SEX_MISMATCH = "号码中的性别与证件不符 / sex differs from the card's"


@dataclass(frozen=True)
class IdNumberCheck:
    """The verdict on a number. ``valid`` is None where no public rule exists to check it."""

    number: str
    valid: bool | None
    problems: tuple[IdProblem, ...] = ()


def _birth_date(number: str) -> dt.date | None:
    try:
        date: dt.date = ric.get_birth_date(number)
    except (ValidationError, ValueError):
        return None
    return date


def check_number(
    number: str,
    *,
    card_type: CardType = CardType.RESIDENT,
    birth_date: dt.date | None = None,
    sex: Sex | None = None,
) -> IdNumberCheck:
    """Check ``number`` as issued on a ``card_type``; cross-check the card's birth date and sex
    when given. Every problem found is reported, not only the first."""
    number = number.strip().upper()
    if card_type is CardType.FOREIGN_PERMANENT_2017:
        # 3 letters of nationality and 12 digits; no check algorithm has been published.
        well_formed = len(number) == 15 and number[:3].isalpha() and number[3:].isdigit()
        return IdNumberCheck(number, None if well_formed else False,
                             () if well_formed else (IdProblem.FORMAT,))  # fmt: skip
    if not (len(number) == 18 and number[:17].isdigit() and number[17] in "0123456789X"):
        return IdNumberCheck(number, False, (IdProblem.FORMAT,))

    problems: list[IdProblem] = []
    if ric.calc_check_digit(number) != number[-1]:
        problems.append(IdProblem.CHECKSUM)
    in_number = _birth_date(number)
    if in_number is None:
        problems.append(IdProblem.BIRTH_DATE)
    if card_type is CardType.RESIDENT:
        if in_number is not None:
            # The record model reports only its first problem; with the check character put
            # right, what is left for it to say is about the date or the region.
            code = id_number_problem_code(number[:17] + ric.calc_check_digit(number))
            if code == "region":
                problems.append(IdProblem.REGION)
            elif code == "future":
                problems.append(IdProblem.BIRTH_DATE)
    elif card_type is CardType.HMT_RESIDENCE_PERMIT:
        if number[:6] not in _PERMIT_REGIONS:
            problems.append(IdProblem.REGION)
    elif number[0] != "9":
        problems.append(IdProblem.FORMAT)
    if birth_date is not None and in_number is not None and in_number != birth_date:
        problems.append(IdProblem.BIRTH_MISMATCH)
    # The sequence's parity carries sex on resident cards and residence permits.
    if card_type is not CardType.FOREIGN_PERMANENT_2023 and sex in (Sex.MALE, Sex.FEMALE):
        number_sex = Sex.MALE if int(number[16]) % 2 else Sex.FEMALE
        if number_sex is not sex:
            problems.append(IdProblem.SEX_MISMATCH)
    return IdNumberCheck(number, not problems, tuple(problems))


def check_card(card: CardText) -> IdNumberCheck:
    """Check the number on ``card`` against its own birth date and sex."""
    return check_number(
        card.id_number, card_type=card.card_type, birth_date=card.birth_date, sex=card.sex
    )
