"""Property tests of the S-03 filter: hiding characters or separators inside a designation does
not get it through, and ordinary text does not get refused."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from muster.classified import _fold_with_offsets, find_designation, find_designations, fold
from tests.unit.test_classified import ALLOWED, REFUSED

INVISIBLE = [
    "\u200b",
    "\u200c",
    "\u200d",
    "\u200e",
    "\u200f",
    "\u2060",
    "\ufeff",
    "\u00ad",
    "\u180e",
    "\u034f",
    "\u0301",
    "\u0332",
    "\ufe0f",
    "\u2061",
    "\U000e0041",
    "\u3164",
]
SEPARATORS = [
    " ",
    "-",
    "·",
    "_",
    "/",
    ".",
    "、",
    "（",
    "）",
    "(",
    ")",
    "—",
    "\u3000",
    "　-　",
    "  ",
]

NUMBERS = [
    "3",
    "12",
    "38",
    "112",
    "１２",
    "三",
    "十二",
    "三十八",
    "一百二十",
    "叁拾捌",
    "贰",
    "貳",
    "⑫",
    "⑴",
    "Ⅻ",
    "ⅲ",
    "¹²",
    "₃",
    "❸",
    "第五",
    "第12",
    "第陸",
    "x",
    "Ｘ",
    "××",
    "某某",
]
LEVELS = ["师", "師", "旅", "团", "團", "营", "營", "连", "連", "集团军", "支队", "大队", "中队"]
ARMS = ["", "", "装甲", "合成", "特战", "炮兵", "电子对抗", "重型合成"]
AROUND = ["", "曾在", "陆军", "服役于北部战区", "原", "老兵，"]
AFTER = ["", "服役", "任职", "，后转业", "政治部", "的同志"]

invisible = st.sampled_from(INVISIBLE)
separator = st.sampled_from(SEPARATORS)


def _sprinkle(text: str, inserts: list[tuple[int, str]]) -> str:
    """``text`` with each invisible character inserted at its position (from the end)."""
    chars = list(text)
    for pos, ch in sorted(inserts, reverse=True):
        chars.insert(pos % (len(chars) + 1), ch)
    return "".join(chars)


@st.composite
def designations(draw: st.DrawFn) -> str:
    """A designation built from parts — number, separators, arms word, level — in some
    surrounding text, with invisible characters anywhere inside it."""
    number = draw(st.sampled_from(NUMBERS))
    level = draw(st.sampled_from(LEVELS))
    arms = "" if number in ("x", "Ｘ", "××", "某某") else draw(st.sampled_from(ARMS))
    seps = draw(st.lists(separator, min_size=2, max_size=2))
    unit = number + seps[0] + arms + seps[1] + level
    inserts = draw(st.lists(st.tuples(st.integers(0, 40), invisible), max_size=4))
    return draw(st.sampled_from(AROUND)) + _sprinkle(unit, inserts) + draw(st.sampled_from(AFTER))


@settings(deadline=None, max_examples=400)
@given(designations())
def test_built_designations_are_refused(text: str) -> None:
    """Any number form, separator, arms word, level and invisible character combine to a
    designation that is still refused."""
    assert find_designation(text) is not None, repr(text)


@settings(deadline=None, max_examples=400)
@given(
    st.sampled_from(REFUSED),
    st.lists(st.tuples(st.integers(0, 40), invisible), min_size=1, max_size=5),
)
def test_invisible_characters_do_not_hide_a_refused_spelling(
    row: tuple[str, str], inserts: list[tuple[int, str]]
) -> None:
    """Every refused spelling of the table, with invisible characters inserted anywhere, is
    still refused with the same kind, and the quote still lies inside the typed text."""
    text, kind = row
    typed = _sprinkle(text, inserts)
    finding = find_designation(typed)
    assert finding is not None and finding.kind == kind, (repr(typed), finding)
    assert typed[finding.start : finding.end] == finding.text


ORDINARY = [t for t in ALLOWED if t]
JOINERS = ["，", "。", "的", "和", "在", "；", "！"]


@settings(deadline=None, max_examples=400)
@given(
    st.lists(st.sampled_from(ORDINARY), min_size=1, max_size=6),
    st.lists(st.sampled_from(JOINERS), min_size=6, max_size=6),
    st.lists(st.tuples(st.integers(0, 80), invisible), max_size=3),
)
def test_ordinary_text_passes(
    words: list[str], joiners: list[str], inserts: list[tuple[int, str]]
) -> None:
    """Sentences made of ordinary words (services, place names, 师范, 团结, 连续, 三连冠,
    dates, numbers), joined as Chinese text joins them, pass — with invisible characters in
    them too."""
    text = words[0] + "".join(j + w for j, w in zip(joiners, words[1:], strict=False))
    assert find_designation(_sprinkle(text, inserts)) is None, repr(text)


@settings(deadline=None, max_examples=500)
@given(st.text(max_size=60), st.sampled_from(["", "3师", "66017部队", "第\u200b12旅"]))
def test_any_text_folds_one_way_and_quotes_itself(noise: str, unit: str) -> None:
    """For any Unicode text the quick fold and the fold with offsets agree, nothing raises, and
    every finding's quote is the typed text at its offsets."""
    text = noise[: len(noise) // 2] + unit + noise[len(noise) // 2 :]
    assert fold(text) == _fold_with_offsets(text)[0]
    for finding in find_designations(text):
        assert text[finding.start : finding.end] == finding.text
