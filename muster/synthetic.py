"""Synthetic people for the demo, the tests and the benchmarks: valid resident ID numbers from
real county codes, plausible names, categories in realistic proportions. Deterministic for a
given ``random.Random``."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from stdnum.cn import ric

from muster.records import Category

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
RELATIONS = ("父母", "配偶", "子女", "兄弟姐妹", "抚养人")


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
        relation=rng.choice(RELATIONS) if category.value.endswith("_family") else None,
    )
