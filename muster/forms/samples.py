"""Plausible filled-in forms for the simulators and benchmarks: every value satisfies the form's
rules, so a simulated record takes the same path through validation as a clerk's."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from muster.forms.definitions import FormDefinition

__all__ = ["sample_fields"]

_PLACES = ("泰安市泰山区上高街道", "泰安市泰山区邱家店镇", "泰安市岱岳区满庄镇", "新泰市青云街道")
_EMPLOYERS = ("泰安市供销合作社", "岱岳区人民医院", "泰山区环卫所", "泰安钢铁有限公司")
_UNITS = ("陆军", "海军", "空军", "武警部队", "火箭军")


def _years(d: dt.date, years: int) -> dt.date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def sample_fields(
    form: FormDefinition, rng: random.Random, birth_date: dt.date, today: dt.date
) -> dict[str, Any]:
    """Required fields always, optional ones now and then, dates in a believable order."""
    yesterday = today - dt.timedelta(days=1)
    enlisted = min(
        _years(birth_date, max(form.min_enlistment_age, 18) + rng.randrange(3)), yesterday
    )
    discharged = min(_years(enlisted, 2 + rng.randrange(15)), yesterday)
    dates = {
        "enlistment_date": enlisted,
        "discharge_date": discharged,
        "work_start_date": min(_years(birth_date, 20), yesterday),
        "retirement_date": min(_years(birth_date, 58), yesterday),
        "injury_date": min(_years(birth_date, 25), yesterday),
        "soldier_death_date": yesterday - dt.timedelta(days=rng.randrange(365 * 30)),
        "soldier_enlistment_date": yesterday - dt.timedelta(days=rng.randrange(365 * 5)),
    }
    out: dict[str, Any] = {}
    for f in form.fields:
        if not f.required and rng.random() < 0.5 and f.key not in ("employer", "housing_area"):
            continue
        match f.kind:
            case "date":
                out[f.key] = dates[f.key].isoformat()
            case "choice":
                out[f.key] = rng.choice(list(f.options))
            case "multi":
                out[f.key] = sorted(rng.sample(list(f.options), 2), key=list(f.options).index)
            case "number":
                out[f.key] = rng.randrange(40, 140) if f.key == "housing_area" else 1200
            case "phone":
                out[f.key] = f"1{rng.randrange(3, 10)}{rng.randrange(10**9):09d}"
            case "textarea":
                out[f.key] = ""
            case _:
                out[f.key] = _text(f.key, rng)
    return {k: v for k, v in out.items() if v != ""}


def _text(key: str, rng: random.Random) -> str:
    if key in ("service_unit", "soldier_service"):
        return rng.choice(_UNITS)
    if key in ("employer", "former_employer", "managing_agency"):
        return rng.choice(_EMPLOYERS)
    if key in ("household_registration", "address"):
        return rng.choice(_PLACES)
    if key == "soldier_name" or key == "caregiver":
        return rng.choice(("张", "王", "李", "赵")) + rng.choice(("建国", "国强", "卫东", "志军"))
    return f"{rng.randrange(10**7, 10**8)}"
