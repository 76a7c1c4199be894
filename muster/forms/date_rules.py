"""The rules a person's dates obey, written once: the import of the initial data
(:mod:`muster.initial_data`) and the forms' cross-field rules (:mod:`muster.forms.validation`)
both call these, so a row that imports is a row the console accepts. Sans-I/O and clock-free:
``today`` is a parameter.

- a date of the person's life (enlistment, discharge, work, injury) is strictly *after* the
  birth date: nobody enlists on the day they are born;
- an end (discharge, retirement) is not *before* its start (enlistment, work): the same day is
  allowed;
- no date is after ``today``;
- age at enlistment is between the form's minimum and :data:`MAX_ENLISTMENT_AGE`.

Each rule returns a :class:`~muster.forms.problems.Problem` naming the field and the rule, or
None.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from muster.forms.problems import Problem

__all__ = [
    "MAX_ENLISTMENT_AGE",
    "after_birth",
    "age_on",
    "enlistment_age",
    "not_after_today",
    "not_before",
    "service_dates",
]

MAX_ENLISTMENT_AGE: Final = 50
SERVICE_ORDER: Final = "service_dates_in_order"


def age_on(day: dt.date, birth: dt.date) -> int:
    """Completed years of age on ``day``."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def not_after_today(field: str, label: str, when: dt.date, today: dt.date) -> Problem | None:
    if when > today:
        return Problem(field, "dates_not_future", f"“{label}”晚于今天，请核对")
    return None


def after_birth(
    field: str, label: str, when: dt.date, birth: dt.date, *, rule: str
) -> Problem | None:
    if when <= birth:
        return Problem(field, rule, f"“{label}”应晚于出生日期，请核对")
    return None


def not_before(
    field: str, label: str, when: dt.date, start_label: str, start: dt.date, *, rule: str
) -> Problem | None:
    if when < start:
        return Problem(field, rule, f"“{label}”早于“{start_label}”，请核对")
    return None


def enlistment_age(
    field: str, enlisted: dt.date, birth: dt.date, minimum: int, label: str
) -> Problem | None:
    """Age at enlistment within ``minimum``–50. Silent when enlistment is not after birth:
    :func:`after_birth` reports that."""
    if enlisted <= birth:
        return None
    age = age_on(enlisted, birth)
    if minimum <= age <= MAX_ENLISTMENT_AGE:
        return None
    return Problem(
        field,
        "enlistment_age",
        f"按出生日期，入伍时年龄为 {age} 岁，不在 {minimum}–{MAX_ENLISTMENT_AGE} 岁之间："
        f"请核对“{label}”和公民身份号码",
    )


def service_dates(
    *,
    birth: dt.date,
    enlisted: dt.date | None,
    discharged: dt.date | None,
    labels: tuple[str, str] = ("入伍时间", "退役时间"),
    min_enlistment_age: int | None = None,
) -> list[Problem]:
    """Enlistment and discharge after birth, discharge not before enlistment and, when the form
    asks (``min_enlistment_age``), a plausible age at enlistment. ``labels`` name the two
    fields as the reader sees them (a form's labels, an import file's headers)."""
    enlisted_label, discharged_label = labels
    found = [
        after_birth("enlistment_date", enlisted_label, enlisted, birth, rule=SERVICE_ORDER)
        if enlisted is not None
        else None,
        after_birth("discharge_date", discharged_label, discharged, birth, rule=SERVICE_ORDER)
        if discharged is not None and enlisted is None
        else None,
        not_before(
            "discharge_date",
            discharged_label,
            discharged,
            enlisted_label,
            enlisted,
            rule=SERVICE_ORDER,
        )
        if enlisted is not None and discharged is not None
        else None,
        enlistment_age("enlistment_date", enlisted, birth, min_enlistment_age, enlisted_label)
        if enlisted is not None and min_enlistment_age is not None
        else None,
    ]
    return [p for p in found if p is not None]
