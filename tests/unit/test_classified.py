"""S-03: unit designations never enter the system; big-unit names do, and the refusal says what
to write instead."""

from __future__ import annotations

import pytest

from muster.classified import ADVICE, find_designation, scan_fields

REFUSED = [
    ("3师5团2连", "designation"),
    ("x师x团x连", "designation"),
    ("第三十八集团军", "designation"),
    ("陆军第12装甲师", "designation"),
    ("空军第5航空旅", "designation"),
    ("二营", "designation"),
    ("十二中队", "designation"),
    ("66017部队", "cover_number"),
    ("６６０１７部队", "cover_number"),
    ("六六零一七部队", "cover_number"),
    ("部队番号不详", "designation"),
]
ALLOWED = [
    "陆军",
    "海军",
    "空军",
    "火箭军",
    "武警部队",
    "北部战区陆军",
    "某部",
    "海军航空兵",
    "营业员",
    "连续服役十二年",
    "排长",
    "1985年入伍",
    "",
]


@pytest.mark.parametrize(("text", "kind"), REFUSED)
def test_designations_are_found(text: str, kind: str) -> None:
    """Every form of designation the plans forbid is caught, with its kind."""
    finding = find_designation(text, "服役单位")
    assert finding is not None
    assert finding.kind == kind
    assert ADVICE in finding.message and "服役单位" in finding.message


@pytest.mark.parametrize("text", ALLOWED)
def test_service_and_large_unit_names_pass(text: str) -> None:
    """What a clerk is told to write instead (service, theatre, large unit) is not refused,
    nor are ordinary words that happen to contain a level character."""
    assert find_designation(text) is None


def test_scan_reaches_nested_fields() -> None:
    """A designation hidden in a nested form field is found and named by its path."""
    found = scan_fields({"service": {"units": ["陆军", "3师"]}, "name": "张三"})
    assert [f.field for f in found] == ["service.units[1]"]
