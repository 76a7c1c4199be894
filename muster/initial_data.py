"""The initial data (S-04): one row per person, as the centre imports it from the merged public
security and military records and as the slices carry it to the township's devices.

Sans-I/O: a row (a mapping of column to text) in, an ``InitialPerson`` or a ``RowRejected``
naming the column and what to fix out. Columns are the basic fields of S-02, the category
(S-01) and the township; headers may be the Chinese ones or the English keys.

Values from a code list (ethnicity, political status, rank class, relation) may be written as
the label departments use ("士官", "中共党员") or as the form's code ("nco", "01"); the row is
normalised to the form's codes here, once, so slices carry codes and the console fills its
forms from them as they are. The ID number and the dates obey the same rules as the console's
forms (:func:`muster.idnumbers.check_id_number`, :mod:`muster.forms.date_rules`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from muster.classified import find_designation
from muster.errors import MusterError
from muster.forms import current_form, date_rules
from muster.forms.codelists import (
    ETHNICITIES,
    POLITICAL_STATUSES,
    RANK_CLASSES,
    RELATIONS,
    code_for,
)
from muster.idnumbers import check_id_number, compact
from muster.records import CATEGORY_NAMES, FAMILY_CATEGORIES, Category
from muster.regions import parse_township

__all__ = [
    "COLUMNS",
    "HEADERS",
    "InitialPerson",
    "RowRejected",
    "parse_date",
    "parse_row",
]


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    header: str  # the Chinese header of the import template
    required: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("township_code", "乡镇代码", required=True),
    Column("name", "姓名", required=True),
    Column("id_number", "公民身份号码", required=True),
    Column("sex", "性别", required=True),
    Column("ethnicity", "民族"),
    Column("birth_date", "出生日期", required=True),
    Column("category", "优抚对象类别", required=True),
    Column("relation", "与军人关系"),
    Column("political_status", "政治面貌"),
    Column("enlistment_date", "入伍时间"),
    Column("discharge_date", "退役时间"),
    Column("rank_class", "服役期间级别"),
    Column("service_unit", "服役单位"),
    Column("service_number", "军人证件号"),
    Column("household_registration", "户籍地"),
)
HEADERS: dict[str, str] = {c.header: c.key for c in COLUMNS} | {c.key: c.key for c in COLUMNS}

_CATEGORY_BY_NAME = {name: category for category, name in CATEGORY_NAMES.items()}
_HEADERS = {c.key: c.header for c in COLUMNS}


class RowRejected(MusterError):
    """A row of the initial data cannot be imported; ``code`` is stable, the message names the
    column and what to write instead."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class InitialPerson:
    township_code: str
    id_number: str
    name: str
    category: str
    details: dict[str, str]

    @property
    def content_hash(self) -> str:
        """Identity of the row's content: re-importing the same person changes nothing."""
        canonical = json.dumps(
            [self.township_code, self.details], ensure_ascii=False, sort_keys=True
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def _date(value: str, column: str) -> dt.date:
    text = value.strip().replace("/", "-").replace(".", "-")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        try:
            return dt.datetime.strptime(text, "%Y%m%d").date()
        except ValueError:
            raise RowRejected(
                "date", f"“{column}”的日期“{value}”无法识别：请写成 YYYY-MM-DD，如 1968-07-01"
            ) from None


# A date cell as the imports of tables read it (ISO, slashes, dots or YYYYMMDD).
parse_date = _date


def _category(value: str) -> Category:
    text = value.strip()
    if text in _CATEGORY_BY_NAME:
        return _CATEGORY_BY_NAME[text]
    try:
        return Category(text)
    except ValueError:
        known = "、".join(CATEGORY_NAMES.values())
        raise RowRejected(
            "category", f"“优抚对象类别”的“{value}”不是12类之一：请填写其中之一：{known}"
        ) from None


def _coded(value: str, codes: Mapping[str, str], key: str, header: str, hint: str = "") -> str:
    """A code-list value as its form code ("" when blank); a label is accepted as its code."""
    if not value:
        return ""
    code = code_for(codes, value)
    if code is None:
        hint = hint or f"请填写 {'、'.join(codes.values())} 之一"
        raise RowRejected(key, f"“{header}”的“{value}”无效：{hint}")
    return code


_SERVICE_COLUMNS = (("enlistment_date", "入伍时间"), ("discharge_date", "退役时间"))


def _service_dates(
    row: Mapping[str, str], category: Category, birth: dt.date, today: dt.date
) -> dict[str, dt.date]:
    """Enlistment and discharge by the forms' date rules (:mod:`muster.forms.date_rules`); the
    age at enlistment by the category's form, as the console will check it."""
    dates = {key: _date(row[key], header) for key, header in _SERVICE_COLUMNS if row.get(key)}
    found = [
        date_rules.not_after_today(key, header, dates[key], today)
        for key, header in _SERVICE_COLUMNS
        if key in dates
    ]
    form = current_form(category.value)
    ages = "enlistment_age" in form.rules and "enlistment_date" in form.by_key
    found += date_rules.service_dates(
        birth=birth,
        enlisted=dates.get("enlistment_date"),
        discharged=dates.get("discharge_date"),
        labels=(_SERVICE_COLUMNS[0][1], _SERVICE_COLUMNS[1][1]),
        min_enlistment_age=form.min_enlistment_age if ages else None,
    )
    problems = [p for p in found if p is not None]
    if problems:
        raise RowRejected("date", problems[0].message)
    return dates


def parse_row(raw: Mapping[str, object], *, today: dt.date) -> InitialPerson:
    """Check one row; raises ``RowRejected`` with the first problem found."""
    row: dict[str, str] = {}
    for header, value in raw.items():
        key = HEADERS.get(str(header).strip()) if header is not None else None
        if key is None:
            continue
        if isinstance(value, dt.datetime):
            value = value.date()
        text = value.isoformat() if isinstance(value, dt.date) else str(value or "").strip()
        row[key] = text
    for column in COLUMNS:
        if column.required and not row.get(column.key):
            raise RowRejected("missing", f"缺少“{column.header}”：该列必须填写")
    try:
        township = parse_township(row["township_code"]).code
    except MusterError:
        raise RowRejected(
            "township",
            f"“乡镇代码”的“{row['township_code']}”不是12位乡镇代码：请写成如 370902001000",
        ) from None
    number = compact(row["id_number"])
    birth = _date(row["birth_date"], "出生日期")
    sex = {"男": "1", "女": "2"}.get(row["sex"], row["sex"])
    if sex not in ("1", "2"):
        raise RowRejected("sex", f"“性别”的“{row['sex']}”无效：请填写 男 或 女")
    checked = check_id_number(number, today=today, birth_date=birth, sex=sex)
    if checked.problems:
        first = checked.problems[0]
        if first.field == "id_number":
            raise RowRejected("id_number", f"“公民身份号码”{number}：{first.zh}")
        raise RowRejected(first.code, first.zh)
    ethnicity = _coded(
        (row.get("ethnicity") or "01").removesuffix("族"),  # the name as on the card: 汉, 蒙古
        ETHNICITIES,
        "ethnicity",
        "民族",
        "请填写两位民族代码或民族名称，如汉族 01",
    )
    category = _category(row["category"])
    relation = row.get("relation", "")
    if category in FAMILY_CATEGORIES:
        if code_for(RELATIONS, relation) is None:
            raise RowRejected(
                "relation",
                f"遗属和家属类别必须填写“与军人关系”，为 {'、'.join(RELATIONS.values())} 之一",
            )
        relation = code_for(RELATIONS, relation) or ""
    elif relation:
        raise RowRejected("relation", "只有遗属和家属类别填写“与军人关系”，本行请留空")
    dates = _service_dates(row, category, birth, today)
    political = _coded(
        row.get("political_status", ""), POLITICAL_STATUSES, "political_status", "政治面貌"
    )
    rank = _coded(row.get("rank_class", ""), RANK_CLASSES, "rank_class", "服役期间级别")
    # S-03 over every cell of the row, not only the free-text columns: a name, a relation or
    # an unknown column can carry a designation as well as the service unit can.
    for key, value in row.items():
        finding = find_designation(value if isinstance(value, str) else "", _HEADERS.get(key, key))
        if finding:
            raise RowRejected("classified", finding.message)
    details = {
        "name": row["name"],
        "id_number": number,
        "sex": sex,
        "ethnicity": ethnicity,
        "birth_date": birth.isoformat(),
        "category": category.value,
        "relation": relation,
        "political_status": political,
        "enlistment_date": dates["enlistment_date"].isoformat()
        if "enlistment_date" in dates
        else "",
        "discharge_date": dates["discharge_date"].isoformat() if "discharge_date" in dates else "",
        "rank_class": rank,
        "service_unit": row.get("service_unit", ""),
        "service_number": row.get("service_number", ""),
        "household_registration": row.get("household_registration", ""),
    }
    if len(details["name"]) > 64:
        raise RowRejected("name", "“姓名”超过64个字符，请核对")
    return InitialPerson(
        township_code=township,
        id_number=number,
        name=details["name"],
        category=category.value,
        details=details,
    )
