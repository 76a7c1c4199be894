"""A correction starts from the sealed record's values, typed as the form holds what a clerk
types, so the second clerk's 复核 lists only what the correction really changed."""

from __future__ import annotations

import datetime as dt

from edge.console.workflow import changes_against_initial, correction_draft, edit

NOW = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)
SEALED = {
    "person": {"name": "张三", "id_number": "370902198001011234", "sex": "1"},
    "category": "retired_soldier",
    "relation": "",
    # As sealing normalises them: a number, a list of codes, text.
    "fields": {"housing_area": 86, "insurances": ["a", "b"], "phone": "13905381234"},
}


def test_unchanged_sealed_values_are_no_change() -> None:
    draft = correction_draft(
        record_id="r-2", clerk="li.li", now=NOW, values=SEALED, note="县级退回：电话有误"
    )
    assert draft.fields["housing_area"] == "86"
    assert changes_against_initial(draft) == {}
    # The form posts back what it shows, as text; only the phone was corrected.
    typed = {**draft.fields, "phone": "13905389876"}
    corrected = edit(draft, clerk="li.li", now=NOW, fields=typed)
    assert changes_against_initial(corrected) == {"phone": ("13905381234", "13905389876")}


def test_hostile_earlier_values_do_not_break_the_correction() -> None:
    """Values of the wrong shape from the wire are dropped, never raised or shown."""
    values = {"fields": {"housing_area": None, "phone": {"x": 1}, "unknown": "x"}, "person": 3}
    draft = correction_draft(record_id="r-3", clerk="li.li", now=NOW, values=values, note="")
    assert draft.fields == {}
    assert draft.person["name"] == ""
