"""Synthetic people for the demo, the tests and the benchmarks: valid resident ID numbers from
real county codes, plausible names, categories in realistic proportions. Deterministic for a
given ``random.Random``."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from stdnum.cn import ric

from muster.forms.codelists import POLITICAL_STATUSES, RANK_CLASSES, RELATIONS
from muster.records import CATEGORY_NAMES, Category

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国文辉鹏玉兰红梅志新海波宁斌福春生德山林成保忠祥荣"

# Rough shares of the beneficiary population: retired soldiers dominate (S-01, S-12).
CATEGORY_WEIGHTS: dict[Category, float] = {
    Category.RETIRED_SOLDIER: 0.52,
    Category.DEMOBILISED_SOLDIER: 0.08,
    Category.TRANSFERRED_OFFICER: 0.05,
    Category.RETIRED_CADRE: 0.03,
    Category.NON_MILITARY_STAFF: 0.01,
    Category.RED_ARMY_VETERAN: 0.001,
    Category.DISABLED_SOLDIER: 0.06,
    Category.DISABLED_MILITIA: 0.01,
    Category.MARTYR_FAMILY: 0.03,
    Category.DUTY_DEATH_FAMILY: 0.015,
    Category.ILLNESS_DEATH_FAMILY: 0.025,
    Category.SERVING_SOLDIER_FAMILY: 0.169,
}


@dataclass(frozen=True, slots=True)
class SyntheticPerson:
    name: str
    id_number: str
    sex: str
    birth_date: date
    category: Category
    relation: str | None


def id_number(rng: random.Random, county: str, birth: date, sex: str) -> str:
    sequence = rng.randrange(0, 100) * 10 + rng.choice(
        (1, 3, 5, 7, 9) if sex == "1" else (0, 2, 4, 6, 8)
    )
    body = f"{county}{birth:%Y%m%d}{sequence:03d}"
    return body + ric.calc_check_digit(body + "0")


def person(rng: random.Random, county: str) -> SyntheticPerson:
    category = rng.choices(list(CATEGORY_WEIGHTS), weights=list(CATEGORY_WEIGHTS.values()))[0]
    oldest = 1925 if category is Category.RED_ARMY_VETERAN else 1935
    birth = date(oldest, 1, 1) + timedelta(days=rng.randrange(0, 365 * (1998 - oldest)))
    sex = "1" if rng.random() < 0.85 or category is Category.RED_ARMY_VETERAN else "2"
    given = "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
    return SyntheticPerson(
        name=rng.choice(SURNAMES) + given,
        id_number=id_number(rng, county, birth, sex),
        sex=sex,
        birth_date=birth,
        category=category,
        relation=rng.choice(tuple(RELATIONS)) if category.value.endswith("_family") else None,
    )


def current_counties() -> list[str]:
    """County-level codes in use today, from python-stdnum's region table (``cn/loc``)."""
    from stdnum import numdb

    counties: list[str] = []
    for _l, province, _h, _p, children in numdb.get("cn/loc").prefixes:
        for _l2, rest, _h2, props, _c in children:
            code = province + rest
            names = props.get("county", "").split(",")
            current = any(not n.startswith("[") or n.split("]")[0].endswith("-") for n in names)
            # xx00 is a city or prefecture, xx01 the city's "市辖区" placeholder: not counties.
            if current and code[4:] not in ("00", "01") and code[2:4] != "00":
                counties.append(code)
    return counties


def townships(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct 12-digit township codes: a real county and a township number."""
    counties = current_counties()
    per_county = -(-count // len(counties))
    chosen: list[str] = []
    pool = counties if count >= len(counties) else rng.sample(counties, count)
    for county in pool:
        for n in range(1, per_county + 1):
            chosen.append(f"{county}{n:03d}000")
            if len(chosen) == count:
                return chosen
    return chosen


SERVICE_UNITS = ("陆军", "海军", "空军", "火箭军", "武警部队", "战略支援部队", "联勤保障部队")
# Labels, as the departments write them in the import files (the import turns them into codes).
POLITICAL = tuple(POLITICAL_STATUSES[code] for code in ("01", "01", "13", "03"))
RANKS = tuple(RANK_CLASSES[code] for code in ("conscript", "nco", "officer"))
HOUSEHOLD = ("本乡镇", "本县城区", "外省")


def dataset_row(rng: random.Random, township: str, today: date) -> dict[str, str]:
    """One row of the initial-data import format (``muster.initial_data.COLUMNS``); service dates
    never fall after ``today``, the day the data is imported."""
    p = person(rng, township[:6])
    family = p.relation is not None
    row = {
        "township_code": township,
        "name": p.name,
        "id_number": p.id_number,
        "sex": "男" if p.sex == "1" else "女",
        "ethnicity": "01" if rng.random() < 0.9 else f"{rng.randrange(2, 57):02d}",
        "birth_date": p.birth_date.isoformat(),
        "category": CATEGORY_NAMES[p.category],
        "relation": p.relation or "",
        "political_status": rng.choice(POLITICAL),
        "enlistment_date": "",
        "discharge_date": "",
        "rank_class": "",
        "service_unit": "",
        "service_number": "",
        "household_registration": rng.choice(HOUSEHOLD),
    }
    if not family:
        enlist = p.birth_date + timedelta(days=365 * 18 + rng.randrange(0, 365 * 4))
        discharge = enlist + timedelta(days=365 * rng.choice((2, 3, 5, 8, 12, 16)))
        row |= {
            "enlistment_date": min(enlist, today).isoformat(),
            "discharge_date": min(discharge, today).isoformat(),
            "rank_class": rng.choices(RANKS, weights=(6, 3, 1))[0],
            "service_unit": rng.choice(SERVICE_UNITS),
        }
    return row
