"""Region codes: the 12-digit statistical division code (province 2, city 2, county 2,
township 3, village 3). A device belongs to one township; admins are scoped by a code prefix.

The levels live here once: a prefix of 2, 4, 6, 9 or 12 digits names a province, city, county,
township or village, and the empty prefix the whole country (the ministry's level). Roles,
review levels and the region tree spell a level by its ``key``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from muster.errors import ConfigError

__all__ = [
    "CITY",
    "CODE_LENGTHS",
    "COUNTY",
    "DRILL_LENGTHS",
    "LEVELS",
    "LEVEL_NAMES",
    "LEVEL_NAMES_EN",
    "NATION",
    "PROVINCE",
    "TOWNSHIP",
    "VILLAGE",
    "Level",
    "RegionCode",
    "child_length",
    "level_of",
    "parent_of",
    "parse_township",
]


@dataclass(frozen=True, slots=True)
class Level:
    """One level of the division code: how many leading digits name a region of it, its key,
    and its name in Chinese and in English."""

    length: int
    key: str
    zh: str
    en: str


NATION = Level(0, "ministry", "部", "ministry")
PROVINCE = Level(2, "province", "省", "province")
CITY = Level(4, "city", "市", "city")
COUNTY = Level(6, "county", "县", "county")
TOWNSHIP = Level(9, "township", "乡镇", "township")
VILLAGE = Level(12, "village", "村", "village")

# From the top down.
LEVELS: tuple[Level, ...] = (NATION, PROVINCE, CITY, COUNTY, TOWNSHIP, VILLAGE)
_BY_LENGTH = {level.length: level for level in LEVELS}
# The lengths a region code (or prefix) may have.
CODE_LENGTHS: tuple[int, ...] = tuple(level.length for level in LEVELS if level.length)
# Province down to township: the levels the admin pages drill through (a device, a person and
# a slice belong to a township, so nothing is counted by village).
DRILL_LENGTHS: tuple[int, ...] = tuple(
    level.length for level in LEVELS if 0 < level.length <= TOWNSHIP.length
)
LEVEL_NAMES: dict[str, str] = {level.key: level.zh for level in LEVELS}
LEVEL_NAMES_EN: dict[str, str] = {level.key: level.en for level in LEVELS}

_TOWNSHIP = re.compile(r"^\d{9}0{3}$|^\d{12}$")


def level_of(code: str) -> Level:
    """The level a code prefix names ("" is the nation); ConfigError for any other length."""
    level = _BY_LENGTH.get(len(code))
    if level is None or not (code.isdigit() or code == ""):
        lengths = "、".join(str(n) for n in CODE_LENGTHS)
        raise ConfigError(f"地区代码 {code!r} 应为 {lengths} 位数字")
    return level


def child_length(prefix: str) -> int | None:
    """How many digits the next level down has, as far as the township (province 2 → city 4
    → county 6 → township 9); None for a township or anything longer."""
    for length in DRILL_LENGTHS:
        if len(prefix) < length:
            return length
    return None


def parent_of(code: str) -> str:
    """The prefix of the level above: a village's township, a township's county, ..., and ""
    (the nation) for a province."""
    above = [length for length in CODE_LENGTHS if length < len(code)]
    return code[: above[-1]] if above else ""


@dataclass(frozen=True, slots=True)
class RegionCode:
    code: str

    @property
    def province(self) -> str:
        return self.code[: PROVINCE.length]

    @property
    def city(self) -> str:
        return self.code[: CITY.length]

    @property
    def county(self) -> str:
        return self.code[: COUNTY.length]

    @property
    def township(self) -> str:
        return self.code[: TOWNSHIP.length]


def parse_township(code: str) -> RegionCode:
    """Accept a township as 9 digits or as the 12-digit code ending in 000."""
    code = code.strip()
    if re.fullmatch(r"\d{9}", code):
        code += "000"
    if not _TOWNSHIP.fullmatch(code) or code[9:] != "000" or code[6:9] == "000":
        raise ConfigError(
            f"township code {code!r} is not a 12-digit township code "
            "(9 digits of province/city/county/township followed by 000, e.g. 370902001000)"
        )
    if code[:2] in {"00"} or code[2:4] == "00":
        raise ConfigError(f"township code {code!r} names no province or city")
    return RegionCode(code)
