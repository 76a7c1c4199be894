"""The levels of the 12-digit division code, held once in ``muster.regions``: which prefix
length names which level, the level below and above, and how a township without a name reads."""

from __future__ import annotations

import pytest

from muster.errors import ConfigError
from muster.region_names import describe, region_label, township_label
from muster.regions import (
    CODE_LENGTHS,
    DRILL_LENGTHS,
    LEVEL_NAMES,
    LEVEL_NAMES_EN,
    LEVELS,
    child_length,
    level_of,
    parent_of,
    parse_township,
)

TOWNSHIP = "370902001"
VILLAGE = "370902001002"


def test_each_prefix_length_names_one_level() -> None:
    """The empty prefix is the nation (the ministry), 2 digits a province, 4 a city, 6 a
    county, 9 a township and 12 a village; every level has a Chinese and an English name."""
    assert [level_of(VILLAGE[:n]).key for n in (0, 2, 4, 6, 9, 12)] == [
        "ministry",
        "province",
        "city",
        "county",
        "township",
        "village",
    ]
    assert [level.length for level in LEVELS] == [0, *CODE_LENGTHS]
    assert CODE_LENGTHS == (2, 4, 6, 9, 12)
    assert DRILL_LENGTHS == (2, 4, 6, 9)
    assert [LEVEL_NAMES[k] for k in ("township", "county", "city", "province", "ministry")] == [
        "乡镇",
        "县",
        "市",
        "省",
        "部",
    ]
    assert set(LEVEL_NAMES) == set(LEVEL_NAMES_EN) == {level.key for level in LEVELS}


@pytest.mark.parametrize("code", ["3", "370", "37090", "3709020", "37090200100", "3709020010021"])
def test_a_length_no_level_has_is_refused(code: str) -> None:
    """A prefix of 1, 3, 5, 7, 11 or 13 digits names no level; the error lists the lengths."""
    with pytest.raises(ConfigError, match="2、4、6、9、12"):
        level_of(code)


def test_digits_only() -> None:
    """A code of the right length with a letter in it names no level."""
    with pytest.raises(ConfigError):
        level_of("37a9")


@pytest.mark.parametrize(
    ("prefix", "below"),
    [("", 2), ("3", 2), ("37", 4), ("3709", 6), ("37090", 6), ("370902", 9), (TOWNSHIP, None)],
)
def test_the_drill_down_stops_at_the_township(prefix: str, below: int | None) -> None:
    """The next level down from the nation is the province, ... from a county the township;
    a township has no level below it in the admin pages (nothing is counted by village)."""
    assert child_length(prefix) == below
    assert child_length(VILLAGE) is None


@pytest.mark.parametrize(
    ("code", "parent"),
    [(VILLAGE, TOWNSHIP), (TOWNSHIP, "370902"), ("370902", "3709"), ("3709", "37"), ("37", "")],
)
def test_the_parent_is_the_level_above(code: str, parent: str) -> None:
    """A village's parent is its township, a township's its county, ... a province's the nation."""
    assert parent_of(code) == parent
    assert parent_of("") == ""


def test_going_down_then_up_returns_where_it_started() -> None:
    """parent_of undoes one step of child_length at every level of the drill-down."""
    for n in DRILL_LENGTHS[:-1]:
        prefix = VILLAGE[:n]
        below = child_length(prefix)
        assert below is not None
        assert parent_of(VILLAGE[:below]) == prefix


def test_township_labels() -> None:
    """A township whose name is unknown reads "乡镇 <code>" on its own and "<3 digits> 乡镇"
    after its county; a county the table lacks shows its code."""
    assert township_label(TOWNSHIP) == "乡镇 370902001"
    assert township_label(TOWNSHIP + "000") == "乡镇 370902001"
    assert region_label(TOWNSHIP) == "001 乡镇"
    assert region_label("370902") == "泰山区"
    assert region_label("379999") == "379999"
    assert describe(VILLAGE) == "山东省 泰安市 泰山区 001 乡镇"


def test_a_parsed_township_splits_by_level() -> None:
    """The parts of a township code are its prefixes at each level."""
    region = parse_township(TOWNSHIP)
    assert (region.province, region.city, region.county, region.township) == (
        "37",
        "3709",
        "370902",
        TOWNSHIP,
    )
    assert level_of(region.township).key == "township"
