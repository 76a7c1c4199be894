"""Checking a form's fields: types, code lists, required fields, the classified-term filter
(S-03) and the cross-field rules. Sans-I/O: values in, normalised values and problems out.

The console calls :func:`validate_fields` on what a clerk typed (strings from an HTML form) and
shows every problem next to its field; ingest calls it on the opened record (JSON values) and
rejects with the first. Both get the same normalised values, so a record that passed the
console passes the controller.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from muster.classified import ClassifiedFinding, find_designation
from muster.forms import date_rules
from muster.forms.codelists import RELATIONS, code_for
from muster.forms.definitions import FieldDef, FormDefinition
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


_PHONE = re.compile(r"(?:1[3-9]\d{9}|0\d{2,3}-?\d{7,8})")


def _normalise(f: FieldDef, raw: object) -> tuple[Any, Problem | None]:
    """One value in its stored form, or the problem with it. Empty is None."""
    if f.kind == "multi":
        if raw is None:
            return None, None
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple):
            return None, Problem(f.key, "type", f"“{f.label}”应为选项列表")
        chosen: set[str] = set()
        for item in items:
            if not isinstance(item, str):
                return None, Problem(f.key, "type", f"“{f.label}”应为选项列表")
            if not item:
                continue
            code = _code(f, item)
            if code is None:
                return None, Problem(f.key, "code", f"“{f.label}”的“{item}”不是可选项")
            chosen.add(code)
        ordered = [c for c in f.options if c in chosen]
        return (ordered or None), None
    if isinstance(raw, bool) or raw is None:
        return None, (Problem(f.key, "type", f"“{f.label}”的值无效") if raw is not None else None)
    if f.kind == "number":
        if isinstance(raw, int | float):
            number: float = raw
        elif isinstance(raw, str):
            if not raw.strip():
                return None, None
            try:
                number = float(raw.strip())
            except ValueError:
                return None, Problem(f.key, "type", f"“{f.label}”应为数字，如 85")
        else:
            return None, Problem(f.key, "type", f"“{f.label}”应为数字")
        # JSON parsers and float() both accept NaN and Infinity; neither is a measurement.
        if not math.isfinite(number):
            return None, Problem(f.key, "type", f"“{f.label}”应为数字，如 85")
        if (f.minimum is not None and number < f.minimum) or (
            f.maximum is not None and number > f.maximum
        ):
            return None, Problem(
                f.key, "range", f"“{f.label}”应在 {f.minimum:g} 到 {f.maximum:g} 之间，请核对"
            )
        return (int(number) if number == int(number) else round(number, 2)), None
    if not isinstance(raw, str):
        if f.kind == "date" and isinstance(raw, dt.date):
            raw = raw.isoformat()
        else:
            return None, Problem(f.key, "type", f"“{f.label}”应为文字")
    text = raw.strip()
    if not text:
        return None, None
    if f.kind == "date":
        try:
            return dt.date.fromisoformat(text.replace("/", "-")).isoformat(), None
        except ValueError:
            return None, Problem(f.key, "type", f"“{f.label}”应写成 YYYY-MM-DD，如 1978-03-01")
    if f.kind == "choice":
        code = _code(f, text)
        if code is None:
            return None, Problem(f.key, "code", f"“{f.label}”的“{text}”不是可选项，请从列表中选择")
        return code, None
    if f.kind == "phone":
        if not _PHONE.fullmatch(text.replace(" ", "")):
            return None, Problem(
                f.key, "type", f"“{f.label}”应为11位手机号或带区号的固定电话，如 0538-8221234"
            )
        return text.replace(" ", ""), None
    if len(text) > f.max_length:
        return None, Problem(f.key, "length", f"“{f.label}”最多 {f.max_length} 个字，请精简")
    finding = _designation(text, f.label)
    if finding is not None:
        return None, Problem(f.key, "classified", finding.message)
    return text, None


def _code(f: FieldDef, value: str) -> str | None:
    return code_for(f.options, value)


# A township's records repeat most of their texts (陆军, the street, the employer): the verdict
# on a short text is kept. Long texts are rarely repeated and would make the cache large.
_CACHED_TEXT = 200
_find_cached = functools.lru_cache(maxsize=8192)(find_designation)


def _designation(text: str, label: str) -> ClassifiedFinding | None:
    if len(text) <= _CACHED_TEXT:
        return _find_cached(text, label)
    return find_designation(text, label)


# --- each form compiled once -------------------------------------------------------------------
#
# Ingest validates thousands of records a second against a handful of forms. Each field gets a
# normaliser made for its kind once; it takes the values a well-formed record carries (a code,
# a label, an ISO date, a clean text, a number in range) straight to their stored form, and
# hands anything else to ``_normalise``, the one definition of what a value means and of every
# problem's wording. Fast path and ``_normalise`` agree on every value the fast path accepts.

_Normaliser = Callable[[object], tuple[Any, Problem | None]]
_UNSET: Final = object()


def _labels_to_codes(options: Mapping[str, str]) -> dict[str, str]:
    """``code_for`` as one dictionary: each code is itself, a label the first code it labels."""
    table: dict[str, str] = {}
    for code, label in options.items():
        table.setdefault(label, code)
    table.update({code: code for code in options})
    table.pop("", None)  # an empty value is no choice: ``_normalise`` says what it is
    return table


def _compile_field(f: FieldDef) -> _Normaliser:
    def slow(raw: object) -> tuple[Any, Problem | None]:
        return _normalise(f, raw)

    if f.kind in ("text", "textarea"):
        limit, label = f.max_length, f.label

        def text(raw: object) -> tuple[Any, Problem | None]:
            if type(raw) is not str:
                return _normalise(f, raw)
            value = raw.strip()
            if not value:
                return None, None
            if len(value) > limit or _designation(value, label) is not None:
                return _normalise(f, raw)
            return value, None

        return text
    if f.kind == "choice":
        codes = _labels_to_codes(f.options)

        def choice(raw: object) -> tuple[Any, Problem | None]:
            if type(raw) is str:
                code = codes.get(raw.strip(), _UNSET)
                if code is not _UNSET:
                    return code, None
            return _normalise(f, raw)

        return choice
    if f.kind == "multi":
        codes = _labels_to_codes(f.options)
        order = {code: i for i, code in enumerate(f.options)}

        def multi(raw: object) -> tuple[Any, Problem | None]:
            if type(raw) is list and all(type(item) is str and item in codes for item in raw):
                chosen = {codes[item] for item in raw}
                return (sorted(chosen, key=order.__getitem__) or None), None
            return _normalise(f, raw)

        return multi
    if f.kind == "date":

        def date(raw: object) -> tuple[Any, Problem | None]:
            if type(raw) is str and len(raw) == 10 and raw[4] == "-" and raw[7] == "-":
                try:
                    return dt.date.fromisoformat(raw).isoformat(), None
                except ValueError:
                    pass
            return _normalise(f, raw)

        return date
    if f.kind == "number" and f.minimum is not None and f.maximum is not None:
        low, high = f.minimum, f.maximum

        def number(raw: object) -> tuple[Any, Problem | None]:
            if type(raw) is int and low <= raw <= high:
                return raw, None
            return _normalise(f, raw)

        return number
    return slow


@dataclass(frozen=True, slots=True)
class _CompiledForm:
    form: FormDefinition
    fields: tuple[tuple[str, str, bool, _Normaliser], ...]  # key, label, required, normaliser
    keys: frozenset[str]


_COMPILED: dict[int, _CompiledForm] = {}


def _compiled(form: FormDefinition) -> _CompiledForm:
    """The form's normalisers, made on its first record (the form is kept to pin its id)."""
    done = _COMPILED.get(id(form))
    if done is not None and done.form is form:
        return done
    done = _CompiledForm(
        form,
        tuple((f.key, f.label, f.required, _compile_field(f)) for f in form.fields),
        frozenset(form.by_key),
    )
    if len(_COMPILED) > 256:  # forms made on the fly (tests) must not pile up
        _COMPILED.clear()
    _COMPILED[id(form)] = done
    return done


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
    compiled = _compiled(form)
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
        # An absent field is empty whatever its kind (as ``_normalise`` says); most are absent.
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
