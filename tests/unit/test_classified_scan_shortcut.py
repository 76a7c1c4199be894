"""The scan of a whole payload first asks whether any of its strings holds a designation (a
walk without paths, short texts' verdicts kept) and builds paths only then: it finds exactly
what the full walk finds, in the same order, and a kept verdict never outlives its text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from muster.classified import _findings, _strings, scan_text_values

_WORDS = st.sampled_from(
    ["", "clerk-a", "entered", "陆军", "3师5团2连", "66017部队", "Unit 66017", "x师x团", "师范"]
)
_TEXT = _WORDS | st.text(max_size=12) | st.text(min_size=195, max_size=210)
_VALUES = st.recursive(
    _TEXT | st.integers() | st.none(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(_TEXT, inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(_VALUES)
def test_the_shortcut_finds_what_the_full_walk_finds(value: object) -> None:
    full = [f for where, text in _strings(value, "记录") for f in _findings(text, where)]
    assert scan_text_values(value, "记录") == full
    assert scan_text_values(value, "记录") == full  # again, from the kept verdicts


def test_a_kept_clean_verdict_does_not_hide_a_designation_elsewhere() -> None:
    assert scan_text_values({"note": "clerk-a"}) == []
    found = scan_text_values({"note": "clerk-a", "changes": {"service_unit": ["陆军", "3师5团"]}})
    assert [(f.field, f.text) for f in found] == [("changes.service_unit[1]", "3师5团")]
