"""Each form is compiled once for ingest (one normaliser per field, a fast path for well-formed
values): whatever value it meets, a compiled field gives exactly what the one definition,
``normalise``, gives — the stored value, or the same problem in the same words."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from muster.forms import FORMS
from muster.forms.definitions import FieldDef
from muster.forms.normalise import compile_field, normalise

_FIELDS: list[FieldDef] = sorted(
    {f for form in FORMS.values() for f in form.fields}, key=lambda f: (f.key, f.label)
)


def _near_values(f: FieldDef) -> st.SearchStrategy[object]:
    """Values a record may carry for ``f``: its codes and labels (padded, or inside lists),
    dates in several spellings, numbers at and past the bounds, designations, junk."""
    words = [*f.options, *f.options.values(), "", " ", "陆军", "3师5团", "x师x团", "泰安市"]
    word = st.sampled_from(words) | st.text(max_size=8)
    padded = st.tuples(st.sampled_from(["", " ", "\t"]), word, st.sampled_from(["", " "])).map(
        "".join
    )
    dates = st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31))
    date_text = dates.flatmap(
        lambda d: st.sampled_from(
            [
                d.isoformat(),
                d.isoformat().replace("-", "/"),
                f" {d.isoformat()}",
                d.strftime("%Y%m%d"),
            ]
        )
    )
    numbers = (
        st.integers(-10, 3000)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.sampled_from([True, False, 0, 1, 2000, 2001, 10**400])
    )
    scalars = padded | date_text | numbers | st.none() | st.text(max_size=130)
    long_text = st.text(min_size=f.max_length - 2, max_size=f.max_length + 2)
    return (
        scalars
        | long_text
        | st.lists(word | st.integers(0, 3), max_size=4)
        | st.lists(word, max_size=4).map(tuple)
        | dates
        | st.dictionaries(word, word, max_size=2)
    )


@st.composite
def _field_and_value(draw: st.DrawFn) -> tuple[FieldDef, object]:
    f = draw(st.sampled_from(_FIELDS))
    return f, draw(_near_values(f))


@settings(max_examples=500, deadline=None)
@given(_field_and_value())
def test_a_compiled_field_agrees_with_the_definition(case: tuple[FieldDef, object]) -> None:
    f, raw = case
    try:
        expected: object = normalise(f, raw)
    except Exception as exc:
        expected = type(exc)
    try:
        got: object = compile_field(f)(raw)
    except Exception as exc:
        got = type(exc)
    assert got == expected, (f.key, raw)


def test_every_kind_of_field_is_covered() -> None:
    assert {f.kind for f in _FIELDS} == {
        "text",
        "textarea",
        "date",
        "choice",
        "multi",
        "number",
        "phone",
    }
