"""Import and console apply one set of record rules: a person the centre imports is a person the
console accepts, and the dates the import refuses are the dates the console refuses. Fixed days
and seeded data only: the suite passes on any calendar date."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.console.workflow import check, new_draft
from muster.forms.codelists import POLITICAL_STATUSES, RANK_CLASSES, RELATIONS
from muster.initial_data import InitialPerson, RowRejected, parse_row
from muster.synthetic import dataset_row

TODAY = dt.date(2026, 11, 23)
NOW = dt.datetime(2026, 11, 23, 9, tzinfo=dt.UTC)
TOWNSHIPS = ("370902001000", "110105002000", "440308003000")
DATE_RULES = {"dates_not_future", "service_dates_in_order", "enlistment_age"}


def _console_problems(person: InitialPerson) -> list[tuple[str, str]]:
    """What the console says about the person's imported values when a clerk opens them."""
    draft = new_draft(
        record_id="r", clerk="clerk-a", now=NOW, category=person.category, details=person.details
    )
    filled = {k for k, v in draft.initial.items() if v}
    return [(p.field, p.code) for p in check(draft, TODAY).problems if p.field in filled]


def _rows(count: int) -> list[dict[str, str]]:
    rng = random.Random(2018)
    return [dataset_row(rng, rng.choice(TOWNSHIPS), TODAY) for _ in range(count)]


def test_every_imported_row_is_accepted_by_the_console() -> None:
    """Over 400 seeded synthetic rows: each imports, and the console finds nothing wrong with
    any value the import filled in (ID number, dates, codes), so no clerk is stuck with a
    record the centre sent."""
    stuck = []
    for row in _rows(400):
        person = parse_row(row, today=TODAY)
        if problems := _console_problems(person):
            stuck.append((row, problems))
    assert stuck == []


def test_import_stores_codes_and_accepts_labels_or_codes() -> None:
    """Departments write labels ("士官", "中共党员"); the slice carries the forms' codes, and a
    file that already holds codes imports to the same person."""
    row = next(r for r in _rows(50) if r["rank_class"] and r["political_status"])
    labelled = parse_row(row, today=TODAY)
    assert labelled.details["rank_class"] in RANK_CLASSES
    assert labelled.details["political_status"] in POLITICAL_STATUSES
    coded = parse_row(row | labelled.details | {"sex": row["sex"]}, today=TODAY)
    assert coded.details == labelled.details
    family = next(r for r in _rows(200) if r["relation"])
    assert parse_row(family, today=TODAY).details["relation"] in RELATIONS


def test_an_unknown_label_is_refused_at_import() -> None:
    """A rank class or political status outside the code list is refused with the list to choose
    from, instead of vanishing from the form at the console."""
    row = next(r for r in _rows(50) if r["rank_class"])
    with pytest.raises(RowRejected) as caught:
        parse_row(row | {"rank_class": "将军"}, today=TODAY)
    assert caught.value.code == "rank_class" and "士官" in str(caught.value)
    with pytest.raises(RowRejected) as caught:
        parse_row(row | {"political_status": "党员"}, today=TODAY)
    assert caught.value.code == "political_status" and "中共党员" in str(caught.value)


def _veteran() -> dict[str, str]:
    row = next(r for r in _rows(50) if r["category"] == "退役士兵")
    return row | {"enlistment_date": "", "discharge_date": ""}


def _import_verdict(row: dict[str, str]) -> tuple[bool, InitialPerson | None]:
    try:
        return True, parse_row(row, today=TODAY)
    except RowRejected as exc:
        assert exc.code == "date", exc
        return False, None


def _console_accepts_dates(row: dict[str, str], enlisted: dt.date, left: dt.date) -> bool:
    person = parse_row(row, today=TODAY)  # the row without service dates
    details: dict[str, Any] = person.details | {
        "enlistment_date": enlisted.isoformat(),
        "discharge_date": left.isoformat(),
    }
    opened = InitialPerson(
        person.township_code, person.id_number, person.name, person.category, details
    )
    return not [code for _field, code in _console_problems(opened) if code in DATE_RULES]


@pytest.mark.parametrize(
    ("enlist_after_birth", "serve", "both_accept"),
    [
        (dt.timedelta(0), dt.timedelta(days=700), False),  # enlisted on the day of birth
        (dt.timedelta(days=365 * 18 + 5), dt.timedelta(0), True),  # discharged the same day
        (dt.timedelta(days=365 * 18 + 5), dt.timedelta(days=-1), False),  # left before joining
        (dt.timedelta(days=365 * 9), dt.timedelta(days=700), False),  # a retired soldier of 9
    ],
)
def test_import_and_console_agree_on_the_boundaries(
    enlist_after_birth: dt.timedelta, serve: dt.timedelta, both_accept: bool
) -> None:
    """The cases where import and console used to disagree (enlisting on the birth date was
    imported and then refused at the console) now get one verdict from both."""
    row = _veteran()
    birth = dt.date.fromisoformat(row["birth_date"])
    enlisted = birth + enlist_after_birth
    left = enlisted + serve
    dated = row | {"enlistment_date": enlisted.isoformat(), "discharge_date": left.isoformat()}
    assert _import_verdict(dated)[0] is both_accept
    assert _console_accepts_dates(row, enlisted, left) is both_accept


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=-400, max_value=365 * 70),
    st.integers(min_value=-400, max_value=365 * 40),
)
def test_import_refuses_exactly_the_service_dates_the_console_refuses(
    enlist_days: int, serve_days: int
) -> None:
    """For any enlistment and discharge dates around a veteran's birth (before it, on it, at
    any age, in the future), the import accepts the row exactly when the console's form rules
    accept the same dates."""
    row = _veteran()
    birth = dt.date.fromisoformat(row["birth_date"])
    enlisted = birth + dt.timedelta(days=enlist_days)
    left = enlisted + dt.timedelta(days=serve_days)
    dated = row | {"enlistment_date": enlisted.isoformat(), "discharge_date": left.isoformat()}
    imported, _person = _import_verdict(dated)
    assert imported == _console_accepts_dates(row, enlisted, left)
