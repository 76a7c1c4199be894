"""ID numbers (GB 11643) and the documents that carry them: one checker for the whole project.

python-stdnum (``stdnum.cn.ric``) does the arithmetic (check character) and holds the region
table; the rules on top are ours. Sans-I/O and clock-free: the caller passes ``today``.

stdnum accepts a region code only if it existed in the holder's *birth* year. Numbers were first
issued in 1984-85 with the code of the place of registration *then*, so a veteran born in 1940
in Tai'an's Taishan district (code 370902, created 1985) holds a perfectly real 370902-1940...
number that stdnum rejects. We accept a region code that existed at any time since the birth
year, which is what the issuing rules allow.

On top of the resident number the checker knows the other documents an ID-card reader meets:
HK/Macao/Taiwan residence permits (regions 810000/820000/830000), the 2023 foreigner's permanent
residence card (18 characters starting with 9, GB 11643 check) and the 2017 one (3 letters and
12 digits, no published check: only its shape is verified). Given the birth date and sex the
person (or the card's chip) states, it also says whether the number agrees with them.

:func:`check_id_number` reports every problem found, each an :class:`IdProblem` with a stable
``code``, the ``field`` it concerns and a Chinese and an English message.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import re
from dataclasses import dataclass
from typing import Final

from stdnum import numdb
from stdnum.cn import ric

__all__ = [
    "CardType",
    "IdCheck",
    "IdProblem",
    "birth_date_of",
    "check_id_number",
    "compact",
    "preload",
    "sex_of",
]


class CardType(enum.Enum):
    """Which document a number comes from. The values are the chip's card-type flag (byte 248
    of the text block: a space for the resident card)."""

    RESIDENT = " "
    HMT_RESIDENCE_PERMIT = "J"
    FOREIGN_PERMANENT_2017 = "I"
    FOREIGN_PERMANENT_2023 = "Y"

    @property
    def label(self) -> str:
        return _CARD_TYPE_LABELS[self]


_CARD_TYPE_LABELS: Final[dict[CardType, str]] = {
    CardType.RESIDENT: "居民身份证",
    CardType.HMT_RESIDENCE_PERMIT: "港澳台居民居住证",
    CardType.FOREIGN_PERMANENT_2017: "外国人永久居留身份证（2017版）",
    CardType.FOREIGN_PERMANENT_2023: "外国人永久居留身份证（2023版）",
}

# What the number is called on each document, for the messages.
_NUMBER_NAME: Final[dict[CardType, tuple[str, str]]] = {
    CardType.RESIDENT: ("公民身份号码", "ID number"),
    CardType.HMT_RESIDENCE_PERMIT: ("公民身份号码", "ID number"),
    CardType.FOREIGN_PERMANENT_2017: ("永久居留身份证号码", "permanent residence number"),
    CardType.FOREIGN_PERMANENT_2023: ("永久居留身份证号码", "permanent residence number"),
}

PERMIT_REGIONS: Final = frozenset({"810000", "820000", "830000"})


@dataclass(frozen=True, slots=True)
class IdProblem:
    """One thing wrong with a number. ``code`` is stable; ``field`` is the person's field the
    problem is about (``id_number``, or ``birth_date``/``sex`` when they disagree with it)."""

    code: str
    field: str
    zh: str
    en: str

    def __str__(self) -> str:
        return self.zh


# code -> (field, zh template, en template); {n} is the number's name on its document.
_PROBLEMS: Final[dict[str, tuple[str, str, str]]] = {
    "length": ("id_number", "{n}应为18位", "the {n} must have 18 characters"),
    "format": (
        "id_number",
        "{n}前17位须为数字，末位为数字或X",
        "the {n} must be 17 digits and a digit or X",
    ),
    "format_2017": (
        "id_number",
        "{n}应为3个字母加12位数字",
        "the {n} must be 3 letters and 12 digits",
    ),
    "format_2023": ("id_number", "{n}应以9开头", "the {n} must start with 9"),
    "checksum": (
        "id_number",
        "{n}校验位错误，请核对后重新输入",
        "wrong check character in the {n}; check it and type it again",
    ),
    "birth_date": (
        "id_number",
        "{n}中的出生日期无效",
        "the birth date in the {n} does not exist",
    ),
    "future": (
        "id_number",
        "{n}中的出生日期晚于今天",
        "the birth date in the {n} is after today",
    ),
    "region": (
        "id_number",
        "{n}前6位不是有效的行政区划代码",
        "the first 6 digits of the {n} are not a known region code",
    ),
    "region_permit": (
        "id_number",
        "港澳台居民居住证的{n}前6位应为810000、820000或830000",
        "a residence permit's {n} starts with 810000, 820000 or 830000",
    ),
    "id_birth_date": (
        "birth_date",
        "出生日期与{n}中的出生日期不一致，请核对",
        "the birth date differs from the one in the {n}",
    ),
    "id_sex": ("sex", "性别与{n}不一致，请核对", "the sex differs from the one in the {n}"),
}
# Variants of a message share the stable code of what is wrong.
_CODE: Final = {"format_2017": "format", "format_2023": "format", "region_permit": "region"}


@functools.cache
def _problem(kind: str, card_type: CardType) -> IdProblem:
    field, zh, en = _PROBLEMS[kind]
    name_zh, name_en = _NUMBER_NAME[card_type]
    return IdProblem(_CODE.get(kind, kind), field, zh.format(n=name_zh), en.format(n=name_en))


@dataclass(frozen=True, slots=True)
class IdCheck:
    """The verdict on a number: every problem found. ``valid`` is None when there is no problem
    but also no public rule to check the number by (the 2017 foreigner's card)."""

    number: str  # compacted: no spaces or dashes, upper case
    card_type: CardType
    problems: tuple[IdProblem, ...] = ()
    checkable: bool = True

    @property
    def valid(self) -> bool | None:
        if self.problems:
            return False
        return True if self.checkable else None

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(p.code for p in self.problems)


# Ingest checks thousands of numbers a second from a few thousand region codes; the table
# lookup dominates without a cache.
@functools.lru_cache(maxsize=65536)
def _region_existed_since(region: str, year: int) -> bool:
    results = numdb.get("cn/loc").info(region)
    info = {k: v for _part, props in results for k, v in props.items()}
    if "county" not in info:
        return False
    for name in info["county"].split(","):
        if not name.startswith("["):
            return True
        span = name[1:].split("]")[0]
        _start, end = span.split("-")
        if not end or int(end) >= year:
            return True
    return False


_COMPACT = re.compile(r"[0-9]{17}[0-9X]")
_FOREIGN_2017 = re.compile(r"[A-Z]{3}[0-9]{12}")


def compact(number: str) -> str:
    """``ric.compact`` with a fast path: ingest meets mostly numbers that are already compact."""
    return number if _COMPACT.fullmatch(number) else str(ric.compact(number))


def _birth(number: str) -> dt.date:
    # ric.get_birth_date cleans the number again on every call; ingest does this per record.
    return dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))


def birth_date_of(number: str) -> dt.date:
    """The birth date digits 7-14 of an 18-character number; ValueError if there is none."""
    return _birth(compact(number))


def sex_of(number: str) -> str:
    """GB/T 2261.1 sex code from the 17th character: odd is male ("1"), even female ("2")."""
    return "1" if int(compact(number)[16]) % 2 else "2"


def check_id_number(
    number: str,
    *,
    today: dt.date,
    card_type: CardType = CardType.RESIDENT,
    birth_date: dt.date | None = None,
    sex: str | None = None,
) -> IdCheck:
    """Every problem with ``number`` as issued on a ``card_type``, judged on ``today``.

    With ``birth_date`` and ``sex`` (a GB/T 2261.1 code: "1" male, "2" female; anything else is
    not compared), also whether the number agrees with them. The shape is checked first; a
    number of the wrong shape gets that one problem, since nothing else can be read from it.
    """
    number = compact(number)
    try:
        return _check_cached(number, today, card_type, birth_date, sex)
    except TypeError:  # an unhashable argument from a careless caller: judged, not cached
        return _check(number, today, card_type, birth_date, sex)


def _check(
    number: str,
    today: dt.date,
    card_type: CardType,
    birth_date: dt.date | None,
    sex: str | None,
) -> IdCheck:
    if card_type is CardType.FOREIGN_PERMANENT_2017:
        if _FOREIGN_2017.fullmatch(number):
            return IdCheck(number, card_type, checkable=False)
        return IdCheck(number, card_type, (_problem("format_2017", card_type),))
    if len(number) != 18:
        return IdCheck(number, card_type, (_problem("length", card_type),))
    if not _COMPACT.fullmatch(number):
        return IdCheck(number, card_type, (_problem("format", card_type),))
    found: list[str] = []
    if card_type is CardType.FOREIGN_PERMANENT_2023 and number[0] != "9":
        found.append("format_2023")
    if ric.calc_check_digit(number) != number[-1]:
        found.append("checksum")
    try:
        born: dt.date | None = _birth(number)
    except ValueError:
        born = None
        found.append("birth_date")
    if born is not None and born > today:
        found.append("future")
    if card_type is CardType.RESIDENT:
        # With no readable birth year, a code that ever existed is the most we can ask.
        if not _region_existed_since(number[:6], born.year if born else 0):
            found.append("region")
    elif card_type is CardType.HMT_RESIDENCE_PERMIT and number[:6] not in PERMIT_REGIONS:
        found.append("region_permit")
    found.extend(_disagreements(number, card_type, born, birth_date, sex))
    return IdCheck(number, card_type, tuple(_problem(kind, card_type) for kind in found))


# Ingest checks each record's number twice (the record's own rule, then the form's person
# rule) and a township's batch repeats numbers when records are resent or corrected; the verdict
# is immutable and depends on nothing but the arguments.
_check_cached = functools.lru_cache(maxsize=8192)(_check)


def preload() -> None:
    """Load python-stdnum's region table now (it takes a good part of a second) rather than
    on the first number checked: a long-running process calls this at start-up."""
    numdb.get("cn/loc")


def _disagreements(
    number: str,
    card_type: CardType,
    in_number: dt.date | None,
    birth_date: dt.date | None,
    sex: str | None,
) -> list[str]:
    """The number against the birth date and sex stated beside it: the one place this is
    checked, for the console's form, the import, ingest and the card reader."""
    out: list[str] = []
    if birth_date is not None and in_number is not None and in_number != birth_date:
        out.append("id_birth_date")
    # The sequence's parity carries sex on resident cards and residence permits; the 2023
    # foreigner's card has no published rule for it.
    parity_sex = "1" if int(number[16]) % 2 else "2"
    if card_type is not CardType.FOREIGN_PERMANENT_2023 and sex in ("1", "2") and parity_sex != sex:
        out.append("id_sex")
    return out
