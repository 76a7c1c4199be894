"""The 12 forms (S-01, S-02) as data: every definition loads and validates a filled form,
cross-field rules catch what a clerk gets wrong, every free-text field refuses unit designations
(S-03), and the controller's record check applies the same definitions."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from edge.simulators.collector import simulated_record
from muster.classified import ADVICE
from muster.forms import FORMS, PersonFacts, current_form, validate_fields
from muster.forms.samples import sample_fields
from muster.records import CATEGORY_NAMES, Category, RecordError, parse_record

TODAY = dt.date(2018, 10, 1)


def _id_with_check(body: str) -> str:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


# A man born 1960-05-04 in Tai'an's Taishan district.
PERSON = PersonFacts(_id_with_check("37090219600504001"), "1", dt.date(1960, 5, 4))


def _valid(category: str, seed: int = 0) -> dict[str, object]:
    return sample_fields(current_form(category), random.Random(seed), PERSON.birth_date, TODAY)


def _check(category: str, fields: dict[str, object], relation: str | None = None) -> list[str]:
    form = current_form(category)
    if relation is None and form.relation_required:
        relation = "配偶"
    result = validate_fields(form, fields, person=PERSON, relation=relation, today=TODAY)
    return [f"{p.field}:{p.code}" for p in result.problems]


def test_one_form_per_category_with_field_counts() -> None:
    """Each of the 12 categories has exactly one current form, titled, with sections and fields;
    the family categories (and only they) require the relation."""
    assert {c for c, _v in FORMS} == {c.value for c in Category}
    for category in Category:
        form = current_form(category.value)
        assert form.title.endswith("信息采集表")
        assert len(form.fields) >= 14
        assert len({f.key for f in form.fields}) == len(form.fields), "field keys are unique"
        assert form.relation_required == category.value.endswith("_family")
        for f in form.fields:
            assert (f.kind in ("choice", "multi")) == bool(f.options), f.key


@pytest.mark.parametrize("category", [c.value for c in Category])
def test_every_form_accepts_a_filled_form(category: str) -> None:
    """A plausibly filled form of every category validates, across many seeds."""
    for seed in range(30):
        assert _check(category, _valid(category, seed)) == []


def test_required_fields_and_codes() -> None:
    """Missing required fields, values outside the code list and malformed values are named."""
    fields = _valid("retired_soldier")
    del fields["political_status"]
    fields["rank_class"] = "将军"
    fields["phone"] = "12345"
    fields["housing_area"] = "很大"
    problems = _check("retired_soldier", fields)
    assert "political_status:required" in problems
    assert "rank_class:code" in problems
    assert "phone:type" in problems
    assert "housing_area:type" in problems


def test_labels_are_accepted_as_codes() -> None:
    """A label (as the initial data writes it) is stored as its code."""
    fields = _valid("retired_soldier") | {"rank_class": "士官", "insurances": ["新型农村合作医疗"]}
    result = validate_fields(
        current_form("retired_soldier"), fields, person=PERSON, relation=None, today=TODAY
    )
    assert result.ok
    assert result.values["rank_class"] == "nco"
    assert result.values["insurances"] == ["rural_medical"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"enlistment_date": "1959-01-01"}, "enlistment_date:service_dates_in_order"),
        ({"enlistment_date": "1970-01-01"}, "enlistment_date:enlistment_age"),  # aged 9
        (
            {"enlistment_date": "1980-01-01", "discharge_date": "1979-01-01"},
            "discharge_date:service_dates_in_order",
        ),
        ({"discharge_date": "2019-01-01"}, "discharge_date:dates_not_future"),
        ({"employment_status": "enterprise", "employer": ""}, "employer:employer_when_employed"),
        ({"housing": "own", "housing_area": ""}, "housing_area:housing_area_when_owned"),
        ({"housing_area": 5000}, "housing_area:range"),
    ],
)
def test_cross_field_rules(change: dict[str, object], expected: str) -> None:
    """Dates in order, age at enlistment, nothing in the future, dependent fields."""
    fields = _valid("retired_soldier") | {
        "enlistment_date": "1978-03-01",
        "discharge_date": "1982-10-01",
    }
    assert _check("retired_soldier", fields) == []
    assert expected in _check("retired_soldier", fields | change)


def test_red_army_veterans_enlisted_young() -> None:
    """A Red Army soldier who joined at 12 is plausible; a retired soldier who did is not."""
    young = {"enlistment_date": "1972-06-01"}
    assert "enlistment_date:enlistment_age" not in _check(
        "red_army_veteran", _valid("red_army_veteran") | young
    )
    assert "enlistment_date:enlistment_age" in _check(
        "retired_soldier", _valid("retired_soldier") | young
    )


def test_id_number_against_birth_date_and_sex() -> None:
    """The ID number must agree with the birth date and sex given for the person."""
    form = current_form("demobilised_soldier")
    wrong = PersonFacts(PERSON.id_number, "2", dt.date(1960, 5, 5))
    result = validate_fields(
        form, _valid("demobilised_soldier"), person=wrong, relation=None, today=TODAY
    )
    codes = {p.code for p in result.problems}
    assert {"id_birth_date", "id_sex"} <= codes


def test_relation_only_for_family_categories() -> None:
    """Family forms need the relation; other forms refuse one."""
    assert "relation:relation" in _check("martyr_family", _valid("martyr_family"), relation="")
    assert "relation:relation" in _check(
        "retired_soldier", _valid("retired_soldier"), relation="配偶"
    )


def test_unknown_fields_are_refused() -> None:
    """A field the form version does not have is named, not silently stored."""
    assert "shoe_size:unknown" in _check(
        "retired_soldier", _valid("retired_soldier") | {"shoe_size": "42"}
    )


# S-03: every free-text field of every form refuses these, with the advice what to write.
CLASSIFIED = [
    "3师5团2连",
    "x师x团x连",
    "66017部队",
    "第三十八集团军",
    "原某师某团",
    "陆军第12装甲师一营",
]
ALLOWED = ["陆军", "武警部队", "北部战区陆军", "泰安市供销合作社", "营业员", "连续工作十年"]


@pytest.mark.parametrize("category", [c.value for c in Category])
def test_every_free_text_field_refuses_designations(category: str) -> None:
    """Not only the service unit: any free-text field (requests, employer, addresses...) refuses
    a designation with the advice, and accepts ordinary text."""
    form = current_form(category)
    for f in form.fields:
        if not f.free_text:
            continue
        for text in CLASSIFIED:
            result = validate_fields(
                form,
                _valid(category) | {f.key: f"曾在{text}服役"[: f.max_length]},
                person=PERSON,
                relation="配偶" if form.relation_required else None,
                today=TODAY,
            )
            refused = [p for p in result.problems if p.code == "classified"]
            assert [p.field for p in refused] == [f.key], (f.key, text)
            assert ADVICE in refused[0].message and f.label in refused[0].message
        for text in ALLOWED:
            assert _check(category, _valid(category) | {f.key: text}) == [], (f.key, text)


def test_controller_validates_against_the_same_forms() -> None:
    """parse_record (used by ingest) refuses a record whose fields break its form, an unknown
    form version, and a designation, each with a stable code and a Chinese reason."""
    now = dt.datetime(2018, 10, 1, 9, tzinfo=dt.UTC)
    record = simulated_record(random.Random(3), "370902001000", now)
    assert parse_record(record.to_bytes(), today=now.date()).record_id == record.record_id
    cases = {
        "form": record.model_copy(update={"fields": {}}),
        "form_unknown": record.model_copy(update={"form_version": "99"}),
        "classified": record.model_copy(
            update={"fields": record.fields | {"main_requests": "我在66017部队服役"}}
        ),
    }
    for code, bad in cases.items():
        with pytest.raises(RecordError) as caught:
            parse_record(bad.to_bytes(), today=now.date())
        assert caught.value.code == code
        assert str(caught.value)


def test_ingest_judges_the_id_number_by_the_receivers_day() -> None:
    """A record is checked as of the controller's today, not the device's collected_at: a
    person "born" after the controller's day is refused (code ``id_number``), the same record
    passes once that day has come, and a number that disagrees with the birth date is named."""
    collected = dt.datetime(2018, 10, 1, 9, tzinfo=dt.UTC)
    record = simulated_record(random.Random(3), "370902001000", collected)
    birth = dt.date(2018, 10, 5)
    number = _id_with_check(f"370902{birth:%Y%m%d}001")
    person = record.person.model_copy(update={"id_number": number, "birth_date": birth})
    young = record.model_copy(update={"person": person, "fields": {}})
    with pytest.raises(RecordError) as caught:
        parse_record(young.to_bytes(), today=dt.date(2018, 10, 4))
    assert caught.value.code == "id_number" and "晚于今天" in str(caught.value)
    with pytest.raises(RecordError) as caught:
        parse_record(young.to_bytes(), today=dt.date(2018, 10, 5))
    assert caught.value.code == "form"  # past the ID check; the empty form is what is wrong
    other_day = record.person.model_copy(update={"birth_date": dt.date(1900, 1, 1)})
    with pytest.raises(RecordError) as caught:
        parse_record(record.model_copy(update={"person": other_day}).to_bytes(), today=TODAY)
    assert caught.value.code == "id_birth_date"


def test_the_form_judges_the_id_number_by_the_day_it_is_given() -> None:
    """validate_fields passes its today to the ID check: a birth date in the number later than
    that day is a problem on the number, whatever the wall clock says."""
    form = current_form("demobilised_soldier")
    birth = dt.date(2018, 10, 2)
    later = PersonFacts(_id_with_check(f"370902{birth:%Y%m%d}001"), "1", birth)
    fields = _valid("demobilised_soldier")
    result = validate_fields(form, fields, person=later, relation=None, today=TODAY)
    assert ("id_number", "id_number") in {(p.field, p.code) for p in result.problems}
    result = validate_fields(form, fields, person=later, relation=None, today=birth)
    assert "id_number" not in {p.code for p in result.problems}


def test_category_names_cover_forms() -> None:
    """Every form's category has its Chinese name for the console's lists."""
    assert {c.value for c in CATEGORY_NAMES} == {c for c, _v in FORMS}
