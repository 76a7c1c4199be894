"""Checking a form's fields: types, code lists, required fields, the classified-term filter
(S-03) and the cross-field rules. Sans-I/O: values in, normalised values and problems out.

The console calls :func:`validate_fields` on what a clerk typed (strings from an HTML form) and
shows every problem next to its field; ingest calls it on the opened record (JSON values) and
rejects with the first. Both get the same normalised values, so a record that passed the
console passes the controller.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from muster.forms import date_rules
from muster.forms.codelists import RELATIONS
from muster.forms.definitions import FormDefinition
from muster.forms.normalise import compiled as compiled_form
from muster.forms.problems import Problem
from muster.idnumbers import check_id_number

__all__ = ["PersonFacts", "Problem", "Validated", "person_problems", "validate_fields"]


@dataclass(frozen=True, slots=True)
class PersonFacts:
    """What the envelope says about the person; the rules check the form against it."""

    id_number: str
    sex: str
    birth_date: dt.date


@dataclass(frozen=True, slots=True)
class Validated:
    values: dict[str, Any]
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


# --- cross-field rules -------------------------------------------------------------------------

Rule = Callable[[FormDefinition, dict[str, Any], PersonFacts, dt.date], list[Problem]]


def _date(values: Mapping[str, Any], key: str) -> dt.date | None:
    value = values.get(key)
    return dt.date.fromisoformat(value) if isinstance(value, str) else None


def _label(form: FormDefinition, key: str) -> str:
    return form.by_key[key].label


# The date rules themselves live in muster.forms.date_rules, shared with the import.


def _dates_not_future(
    form: FormDefinition, values: dict[str, Any], person: PersonFacts, today: dt.date
) -> list[Problem]:
    found = (
        date_rules.not_after_today(f.key, f.label, d, today)
        for f in form.fields
        if f.kind == "date" and (d := _date(values, f.key)) is not None
    )
    return [p for p in found if p is not None]


def _service_labels(form: FormDefinition) -> tuple[str, str]:
    return (
        _label(form, "enlistment_date") if "enlistment_date" in form.by_key else "入伍时间",
        _label(form, "discharge_date") if "discharge_date" in form.by_key else "退役时间",
    )


def _service_dates_in_order(
    form: FormDefinition, values: dict[str, Any], person: PersonFacts, today: dt.date
) -> list[Problem]:
    return date_rules.service_dates(
        birth=person.birth_date,
        enlisted=_date(values, "enlistment_date"),
        discharged=_date(values, "discharge_date"),
        labels=_service_labels(form),
    )


def _enlistment_age(
    form: FormDefinition, values: dict[str, Any], person: PersonFacts, today: dt.date
) -> list[Problem]:
    enlisted = _date(values, "enlistment_date")
    if enlisted is None:
        return []
    problem = date_rules.enlistment_age(
        "enlistment_date",
        enlisted,
        person.birth_date,
        form.min_enlistment_age,
        _service_labels(form)[0],
    )
    return [problem] if problem else []


def _work_dates_in_order(
    form: FormDefinition, values: dict[str, Any], person: PersonFacts, today: dt.date
) -> list[Problem]:
    start = _date(values, "work_start_date")
    end = _date(values, "retirement_date")
    rule = "work_dates_in_order"
    found = [
        date_rules.after_birth(key, _label(form, key), d, person.birth_date, rule=rule)
        for key, d in (("work_start_date", start), ("retirement_date", end))
        if d is not None
    ]
    if start is not None and end is not None:
        found.append(
            date_rules.not_before(
                "retirement_date",
                _label(form, "retirement_date"),
                end,
                _label(form, "work_start_date"),
                start,
                rule=rule,
            )
        )
    return [p for p in found if p is not None]


def _injury_after_birth(
    form: FormDefinition, values: dict[str, Any], person: PersonFacts, today: dt.date
) -> list[Problem]:
    injured = _date(values, "injury_date")
    if injured is None:
        return []
    problem = date_rules.after_birth(
        "injury_date",
        _label(form, "injury_date"),
        injured,
        person.birth_date,
        rule="injury_after_birth",
    )
    return [problem] if problem else []


_EMPLOYED: Final = frozenset({"government", "enterprise", "public_welfare"})


def _employer_when_employed(
    form: FormDefinition, values: dict[str, Any], person: PersonFacts, today: dt.date
) -> list[Problem]:
    if values.get("employment_status") in _EMPLOYED and not values.get("employer"):
        return [
            Problem(
                "employer",
                "employer_when_employed",
                "在职人员须填写“工作单位”（如“泰安市某某公司”）",
            )
        ]
    return []


def _housing_area_when_owned(
    form: FormDefinition, values: dict[str, Any], person: PersonFacts, today: dt.date
) -> list[Problem]:
    if values.get("housing") == "own" and values.get("housing_area") is None:
        return [Problem("housing_area", "housing_area_when_owned", "有自有住房的须填写“住房面积”")]
    return []


RULES: Final[dict[str, Rule]] = {
    "dates_not_future": _dates_not_future,
    "service_dates_in_order": _service_dates_in_order,
    "enlistment_age": _enlistment_age,
    "work_dates_in_order": _work_dates_in_order,
    "injury_after_birth": _injury_after_birth,
    "employer_when_employed": _employer_when_employed,
    "housing_area_when_owned": _housing_area_when_owned,
}


def person_problems(person: PersonFacts, *, today: dt.date) -> list[Problem]:
    """The ID number as of ``today``, and against the birth date and sex the clerk (or the
    card) gave. A problem of the number itself is on ``id_number`` with code ``id_number``;
    a disagreement is on ``birth_date`` (``id_birth_date``) or ``sex`` (``id_sex``)."""
    checked = check_id_number(
        person.id_number, today=today, birth_date=person.birth_date, sex=person.sex
    )
    return [
        Problem(p.field, "id_number" if p.field == "id_number" else p.code, p.zh)
        for p in checked.problems
    ]


def validate_fields(
    form: FormDefinition,
    raw: Mapping[str, object],
    *,
    person: PersonFacts,
    relation: str | None,
    today: dt.date,
) -> Validated:
    """Every problem with ``raw`` against ``form``; values normalised (codes, ISO dates)."""
    compiled = compiled_form(form)
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for key in raw:
        if key not in compiled.keys:
            problems.append(
                Problem(key, "unknown", f"表单“{form.title}”第 {form.version} 版没有字段 {key}")
            )
    get = raw.get
    for key, label, required, normalise in compiled.fields:
        given = get(key)
        # An absent field is empty whatever its kind (as ``normalise`` says); most are absent.
        value, problem = (None, None) if given is None else normalise(given)
        if problem is not None:
            problems.append(problem)
        elif value is None:
            if required:
                problems.append(Problem(key, "required", f"“{label}”必须填写"))
        else:
            values[key] = value
    if form.relation_required:
        if relation not in RELATIONS:
            problems.append(
                Problem(
                    "relation",
                    "relation",
                    f"遗属和家属类别必须填写与军人的关系：{'、'.join(RELATIONS.values())} 之一",
                )
            )
    elif relation:
        problems.append(Problem("relation", "relation", "只有遗属和家属类别填写与军人的关系"))
    problems.extend(person_problems(person, today=today))
    failed = {p.field for p in problems}
    for name in form.rules:
        for problem in RULES[name](form, values, person, today):
            if problem.field not in failed:
                problems.append(problem)
    return Validated(values=values, problems=tuple(problems))
