"""Checking a form's fields: types, code lists, required fields, the classified-term filter
(S-03) and the cross-field rules. Sans-I/O: values in, normalised values and problems out.

The console calls :func:`validate_fields` on what a clerk typed (strings from an HTML form) and
shows every problem next to its field; ingest calls it on the opened record (JSON values) and
rejects with the first. Both get the same normalised values, so a record that passed the
console passes the controller.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from muster.classified import find_designation
from muster.forms.codelists import RELATIONS
from muster.forms.definitions import FieldDef, FormDefinition
from muster.idnumbers import birth_date_of, id_number_problem, sex_of

__all__ = ["PersonFacts", "Problem", "Validated", "validate_fields"]


@dataclass(frozen=True, slots=True)
class PersonFacts:
    """What the envelope says about the person; the rules check the form against it."""

    id_number: str
    sex: str
    birth_date: dt.date


@dataclass(frozen=True, slots=True)
class Problem:
    field: str  # a field key, or "" for the record as a whole
    code: str  # stable: "required", "type", "code", "range", "length", "classified", a rule name
    message: str  # Simplified Chinese, says what to do


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
    finding = find_designation(text, f.label)
    if finding is not None:
        return None, Problem(f.key, "classified", finding.message)
    return text, None


def _code(f: FieldDef, value: str) -> str | None:
    if value in f.options:
        return value
    for code, label in f.options.items():
        if value == label:
            return code
    return None


# --- cross-field rules -------------------------------------------------------------------------

Rule = Callable[[FormDefinition, dict[str, Any], PersonFacts, dt.date], list[Problem]]


def _date(values: Mapping[str, Any], key: str) -> dt.date | None:
    value = values.get(key)
    return dt.date.fromisoformat(value) if isinstance(value, str) else None


def _label(form: FormDefinition, key: str) -> str:
    return form.by_key[key].label


def _dates_not_future(
    form: FormDefinition, values: dict[str, Any], person: PersonFacts, today: dt.date
) -> list[Problem]:
    return [
        Problem(f.key, "dates_not_future", f"“{f.label}”晚于今天，请核对")
        for f in form.fields
        if f.kind == "date" and (d := _date(values, f.key)) is not None and d > today
    ]


def _service_dates_in_order(
    form: FormDefinition, values: dict[str, Any], person: PersonFacts, today: dt.date
) -> list[Problem]:
    out: list[Problem] = []
    enlisted = _date(values, "enlistment_date")
    left = _date(values, "discharge_date")
    if enlisted is not None and enlisted <= person.birth_date:
        out.append(
            Problem(
                "enlistment_date",
                "service_dates_in_order",
                f"“{_label(form, 'enlistment_date')}”早于出生日期，请核对",
            )
        )
    if enlisted is not None and left is not None and left < enlisted:
        out.append(
            Problem(
                "discharge_date",
                "service_dates_in_order",
                f"“{_label(form, 'discharge_date')}”早于“{_label(form, 'enlistment_date')}”，请核对",
            )
        )
    return out


def _enlistment_age(
    form: FormDefinition, values: dict[str, Any], person: PersonFacts, today: dt.date
) -> list[Problem]:
    enlisted = _date(values, "enlistment_date")
    if enlisted is None or enlisted <= person.birth_date:
        return []
    born = person.birth_date
    age = enlisted.year - born.year - ((enlisted.month, enlisted.day) < (born.month, born.day))
    if form.min_enlistment_age <= age <= 50:
        return []
    return [
        Problem(
            "enlistment_date",
            "enlistment_age",
            f"按出生日期，入伍时年龄为 {age} 岁，不在 {form.min_enlistment_age}–50 岁之间："
            "请核对“入伍时间”和公民身份号码",
        )
    ]


def _work_dates_in_order(
    form: FormDefinition, values: dict[str, Any], person: PersonFacts, today: dt.date
) -> list[Problem]:
    start = _date(values, "work_start_date")
    end = _date(values, "retirement_date")
    out: list[Problem] = []
    for key, d in (("work_start_date", start), ("retirement_date", end)):
        if d is not None and d <= person.birth_date:
            out.append(Problem(key, "work_dates_in_order", f"“{_label(form, key)}”早于出生日期"))
    if start is not None and end is not None and end < start:
        out.append(
            Problem("retirement_date", "work_dates_in_order", "“退休退职时间”早于“参加工作时间”")
        )
    return out


def _injury_after_birth(
    form: FormDefinition, values: dict[str, Any], person: PersonFacts, today: dt.date
) -> list[Problem]:
    injured = _date(values, "injury_date")
    if injured is not None and injured <= person.birth_date:
        return [Problem("injury_date", "injury_after_birth", "“致残时间”早于出生日期，请核对")]
    return []


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


def person_problems(person: PersonFacts) -> list[Problem]:
    """The ID number against the birth date and sex the clerk (or the card) gave."""
    problem = id_number_problem(person.id_number)
    if problem:
        return [Problem("id_number", "id_number", problem)]
    out: list[Problem] = []
    if birth_date_of(person.id_number) != person.birth_date:
        out.append(Problem("birth_date", "id_birth_date", "出生日期与公民身份号码不一致，请核对"))
    if sex_of(person.id_number) != person.sex:
        out.append(Problem("sex", "id_sex", "性别与公民身份号码不一致，请核对"))
    return out


def validate_fields(
    form: FormDefinition,
    raw: Mapping[str, object],
    *,
    person: PersonFacts,
    relation: str | None,
    today: dt.date,
) -> Validated:
    """Every problem with ``raw`` against ``form``; values normalised (codes, ISO dates)."""
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for key in raw:
        if key not in form.by_key:
            problems.append(
                Problem(key, "unknown", f"表单“{form.title}”第 {form.version} 版没有字段 {key}")
            )
    for f in form.fields:
        value, problem = _normalise(f, raw.get(f.key))
        if problem is not None:
            problems.append(problem)
        elif value is None:
            if f.required:
                problems.append(Problem(f.key, "required", f"“{f.label}”必须填写"))
        else:
            values[f.key] = value
    if form.relation_required:
        if relation not in RELATIONS:
            problems.append(
                Problem(
                    "relation",
                    "relation",
                    "遗属和家属类别必须填写与军人的关系：父母、抚养人、配偶、子女或兄弟姐妹",
                )
            )
    elif relation:
        problems.append(Problem("relation", "relation", "只有遗属和家属类别填写与军人的关系"))
    problems.extend(person_problems(person))
    failed = {p.field for p in problems}
    for name in form.rules:
        for problem in RULES[name](form, values, person, today):
            if problem.field not in failed:
                problems.append(problem)
    return Validated(values=values, problems=tuple(problems))
