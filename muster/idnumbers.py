"""Resident ID numbers (GB 11643): python-stdnum for the format, the birth date, the check
character and the region table; one rule of our own on top.

stdnum accepts a region code only if it existed in the holder's *birth* year. Numbers were first
issued in 1984-85 with the code of the place of registration *then*, so a veteran born in 1940
in Tai'an's Taishan district (code 370902, created 1985) holds a perfectly real 370902-1940...
number that stdnum rejects. We accept a region code that existed at any time since the birth
year, which is what the issuing rules allow.
"""

from __future__ import annotations

import datetime as dt
import functools
import re

from stdnum import numdb
from stdnum.cn import ric
from stdnum.exceptions import InvalidChecksum
from stdnum.util import isdigits

PROBLEMS = {
    "length": "公民身份号码应为18位",
    "format": "公民身份号码前17位须为数字，末位为数字或X",
    "birth_date": "公民身份号码中的出生日期无效",
    "future": "公民身份号码中的出生日期晚于今天",
    "checksum": "公民身份号码校验位错误，请核对后重新输入",
    "region": "公民身份号码前6位不是有效的行政区划代码",
}


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


def compact(number: str) -> str:
    """``ric.compact`` with a fast path: ingest meets mostly numbers that are already compact."""
    return number if _COMPACT.fullmatch(number) else str(ric.compact(number))


def id_number_problem_code(number: str, *, today: dt.date | None = None) -> str | None:
    """The code of what is wrong with ``number`` (a key of ``PROBLEMS``), or None if it is valid."""
    number = compact(number)
    if len(number) != 18:
        return "length"
    if not isdigits(number[:-1]) or not (isdigits(number[-1]) or number[-1] == "X"):
        return "format"
    try:
        birth = _birth(number)
    except ValueError:
        return "birth_date"
    if birth > (today or dt.date.today()):
        return "future"
    try:
        if ric.calc_check_digit(number) != number[-1]:
            raise InvalidChecksum
    except (InvalidChecksum, ValueError):
        return "checksum"
    if not _region_existed_since(number[:6], birth.year):
        return "region"
    return None


def id_number_problem(number: str, *, today: dt.date | None = None) -> str | None:
    """Why a resident ID number is wrong, in the clerk's words, or None when it is valid."""
    code = id_number_problem_code(number, today=today)
    return PROBLEMS[code] if code else None


def _birth(number: str) -> dt.date:
    # ric.get_birth_date cleans the number again on every call; ingest does this per record.
    return dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))


def birth_date_of(number: str) -> dt.date:
    return _birth(compact(number))


def sex_of(number: str) -> str:
    """GB/T 2261.1 sex code from the 17th character: odd is male ("1"), even female ("2")."""
    return "1" if int(compact(number)[16]) % 2 else "2"
