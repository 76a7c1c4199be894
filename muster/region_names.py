"""Names of provinces, cities and counties by code, from the division-code table that
python-stdnum ships (``stdnum/cn/loc.dat``). Townships are not in it: a township shows its code.

The table keeps history: ``[1985-1999]郊区,[2000-]岱岳区`` means the name changed in 2000. The
current name is the one whose period is still open; codes that no longer exist keep their last.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import stdnum

from muster.regions import COUNTY, DRILL_LENGTHS, TOWNSHIP

_PERIOD = re.compile(r"^\[(\d*)-(\d*)\](.*)$")
# Placeholder rows in the table ("municipal districts", "counties") that name no real place.
_PLACEHOLDERS = frozenset({"市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划"})


def _current(value: str) -> tuple[str, bool]:
    """(name, still in use) from a possibly historical value."""
    best, current = value, True
    for part in value.split(","):
        match = _PERIOD.match(part.strip())
        if match is None:
            return part.strip(), True
        best, current = match.group(3), match.group(2) == ""
        if current:
            return best, True
    return best, current


@functools.cache
def _table() -> tuple[dict[str, str], tuple[str, ...]]:
    """(code -> name for 2, 4 and 6 digit codes, current real counties in code order)."""
    path = Path(stdnum.__file__).parent / "cn" / "loc.dat"
    names: dict[str, str] = {}
    counties: list[str] = []
    province = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if not line.startswith(" "):
            code, _, rest = line.partition(" ")
            province = code
            names[code] = rest.split('"')[1]
            continue
        code, _, rest = line.strip().partition(" ")
        name, current = _current(rest.split('"')[1])
        full = province + code
        if code.endswith("00"):
            if code != "0000":
                # Municipalities list their districts under a placeholder "city".
                label = names[province] + name if name in _PLACEHOLDERS else name
                names.setdefault(full[:4], label)
            continue
        if name in _PLACEHOLDERS:
            continue
        if current or full not in names:
            names[full] = name
        if current:
            counties.append(full)
    return names, tuple(sorted(set(counties)))


def region_name(code: str) -> str:
    """The name of a province (2 digits), city (4) or county (6); "" when unknown."""
    return _table()[0].get(code, "")


def current_counties() -> tuple[str, ...]:
    """Every county-level code in use today, in code order (about 2,800)."""
    return _table()[1]


def township_label(code: str) -> str:
    """A township whose name is not known, shown on its own: "乡镇 370902001"."""
    return f"{TOWNSHIP.zh} {code[: TOWNSHIP.length]}"


def region_label(code: str) -> str:
    """One step of a region path: a province, city or county by its name (its code when the
    table lacks it); a township, below its county, by its own three digits: "001 乡镇"."""
    if len(code) <= COUNTY.length:
        return region_name(code) or code
    return f"{code[COUNTY.length : TOWNSHIP.length]} {TOWNSHIP.zh}"


def describe(code: str) -> str:
    """A readable path for a region code prefix: 山东省 泰安市 泰山区 001 乡镇."""
    return " ".join(region_label(code[:length]) for length in DRILL_LENGTHS if len(code) >= length)


__all__ = ["current_counties", "describe", "region_label", "region_name", "township_label"]
