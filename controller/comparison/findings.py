"""What a comparison finds once the two sides are linked: problems (a field that disagrees),
missing people (the department knows them, nobody collected them) and, for the funeral
department, deaths; and the files they are handed out in.

A field is a problem only when both sides hold a value and the values differ after what is
only spelling is removed (``muster.name_match``): a department that does not know an address
has no quarrel with ours. The funeral department's rows are deaths, not people to collect, so
its unlinked rows are not listed as missing.

Files (``write_outputs``): ``problems.csv``, ``missing.csv``, ``deaths.csv`` (funeral only) and
``comparison.xlsx`` with the same sheets and a summary; every cell through
``muster.spreadsheets`` (a name typed as a formula stays text), each file written to a temporary
name, synced and renamed, so a crash leaves the old file or the new one.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.comparison.linkage import Link, Person
from muster.departments import department
from muster.name_match import address_key, name_key
from muster.spreadsheets import csv_row, xlsx_row

__all__ = [
    "DEATH_HEADERS",
    "MISSING_HEADERS",
    "PROBLEM_HEADERS",
    "Findings",
    "Missing",
    "Problem",
    "find",
    "write_outputs",
]

PROBLEM_HEADERS = (
    "公民身份号码",
    "姓名",
    "乡镇代码",
    "字段",
    "采集值",
    "部门值",
    "部门",
    "匹配方式",
    "匹配得分",
)
MISSING_HEADERS = ("公民身份号码", "姓名", "出生日期", "住址", "乡镇代码", "部门")
DEATH_HEADERS = ("公民身份号码", "姓名", "乡镇代码", "死亡日期", "部门")
METHOD_NAMES = {"exact_id": "身份号码一致", "probabilistic": "概率匹配"}
SEX = {"1": "男", "2": "女"}


@dataclass(frozen=True, slots=True)
class Problem:
    id_number: str  # ours
    name: str  # ours
    township_code: str
    field: str  # the header, e.g. 出生日期
    collected: str
    department_value: str
    method: str
    score: float
    record_key: str


@dataclass(frozen=True, slots=True)
class Missing:
    id_number: str
    name: str
    birth_date: str
    address: str
    township_code: str
    department_key: str


@dataclass(frozen=True, slots=True)
class Death:
    id_number: str
    name: str
    township_code: str
    death_date: str
    record_key: str


@dataclass
class Findings:
    department: str
    problems: list[Problem] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    deaths: list[Death] = field(default_factory=list)
    linked_exact: int = 0
    linked_probabilistic: int = 0
    department_rows: int = 0
    collected_rows: int = 0

    def summary(self) -> dict[str, int]:
        return {
            "department_rows": self.department_rows,
            "collected_rows": self.collected_rows,
            "linked_exact": self.linked_exact,
            "linked_probabilistic": self.linked_probabilistic,
            "problems": len(self.problems),
            "missing": len(self.missing),
            "deaths": len(self.deaths),
        }


def _pairs(theirs: Person, ours: Person) -> list[tuple[str, str, str, bool]]:
    """(header, ours, theirs, differ) for the fields both sides have."""
    return [
        ("姓名", ours.name, theirs.name, name_key(ours.name) != name_key(theirs.name)),
        (
            "公民身份号码",
            ours.id_number,
            theirs.id_number,
            theirs.id_number != ours.id_number,
        ),
        (
            "性别",
            SEX.get(ours.sex, ours.sex),
            SEX.get(theirs.sex, theirs.sex),
            theirs.sex != ours.sex,
        ),
        ("出生日期", ours.birth_date, theirs.birth_date, theirs.birth_date != ours.birth_date),
        (
            "住址",
            ours.address,
            theirs.address,
            address_key(theirs.address) != address_key(ours.address),
        ),
    ]


def find(
    kind: str,
    department_people: Sequence[Person],
    collected: Sequence[Person],
    links: Sequence[Link],
    *,
    department_extra: Mapping[str, Mapping[str, str]],
    collected_fields: Mapping[str, Mapping[str, str]],
) -> Findings:
    """Problems, missing people and deaths from ``links`` between the two sides.
    ``department_extra`` holds each department row's own columns by key; ``collected_fields``
    our records' form fields (for the columns that name one)."""
    spec = department(kind)
    theirs = {p.key: p for p in department_people}
    ours = {p.key: p for p in collected}
    out = Findings(spec.kind, department_rows=len(department_people), collected_rows=len(ours))
    linked: set[str] = set()
    compared = [c for c in spec.columns if c.compares_to]
    for link in links:
        a, b = theirs[link.department], ours[link.collected]
        linked.add(a.key)
        if link.method == "exact_id":
            out.linked_exact += 1
        else:
            out.linked_probabilistic += 1
        rows = [(h, o, t) for h, o, t, differ in _pairs(a, b) if differ and o and t]
        extra = department_extra.get(a.key, {})
        fields = collected_fields.get(b.key, {})
        for column in compared:
            o, t = str(fields.get(column.compares_to or "", "")), extra.get(column.key, "")
            if o and t and o != t:
                rows.append((column.header, o, t))
        for header, o, t in rows:
            out.problems.append(
                Problem(
                    b.id_number,
                    b.name,
                    b.township_code,
                    header,
                    o,
                    t,
                    link.method,
                    link.score,
                    b.key,
                )
            )
        if spec.kind == "funeral" and extra.get("death_date"):
            out.deaths.append(
                Death(b.id_number, b.name, b.township_code, extra["death_date"], b.key)
            )
    if spec.kind != "funeral":
        for p in department_people:
            if p.key not in linked:
                out.missing.append(
                    Missing(p.id_number, p.name, p.birth_date, p.address, p.township_code, p.key)
                )
    return out


def _problem_row(p: Problem, label: str) -> list[Any]:
    return [
        p.id_number,
        p.name,
        p.township_code,
        p.field,
        p.collected,
        p.department_value,
        label,
        METHOD_NAMES.get(p.method, p.method),
        round(p.score, 4),
    ]


def _missing_row(m: Missing, label: str) -> list[Any]:
    return [m.id_number, m.name, m.birth_date, m.address, m.township_code, label]


def _death_row(d: Death, label: str) -> list[Any]:
    return [d.id_number, d.name, d.township_code, d.death_date, label]


def _replace(tmp: Path, final: Path) -> None:
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(final)


def _write_csv(path: Path, headers: Sequence[str], rows: Sequence[list[Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8-sig") as fh:
        writer = csv.writer(fh)
        writer.writerow(headers)
        for row in rows:
            writer.writerow(csv_row(row))
    _replace(tmp, path)


def write_outputs(findings: Findings, out_dir: Path, *, context: Mapping[str, str]) -> list[Path]:
    """The CSV files and the workbook in ``out_dir``; returns their paths. ``context`` goes at
    the top of the summary sheet (extract, region, who, when)."""
    from openpyxl import Workbook

    spec = department(findings.department)
    out_dir.mkdir(parents=True, exist_ok=True)
    label = spec.label
    sheets: list[tuple[str, str, Sequence[str], list[list[Any]]]] = [
        (
            "problems.csv",
            "问题数据",
            PROBLEM_HEADERS,
            [_problem_row(p, label) for p in findings.problems],
        ),
        (
            "missing.csv",
            "遗漏人员",
            MISSING_HEADERS,
            [_missing_row(m, label) for m in findings.missing],
        ),
    ]
    if spec.kind == "funeral":
        sheets.append(
            (
                "deaths.csv",
                "死亡人员",
                DEATH_HEADERS,
                [_death_row(d, label) for d in findings.deaths],
            )
        )
    written: list[Path] = []
    for name, _title, headers, rows in sheets:
        _write_csv(out_dir / name, headers, rows)
        written.append(out_dir / name)
    book = Workbook(write_only=True)
    summary = book.create_sheet("汇总")
    names = {
        "department_rows": "部门数据行数",
        "collected_rows": "采集记录数",
        "linked_exact": "身份号码一致匹配",
        "linked_probabilistic": "概率匹配",
        "problems": "问题数据",
        "missing": "遗漏人员",
        "deaths": "死亡人员",
    }
    summary.append(xlsx_row(summary, ["部门", label]))
    for key, value in context.items():
        summary.append(xlsx_row(summary, [key, value]))
    for key, count in findings.summary().items():
        summary.append(xlsx_row(summary, [names[key], count]))
    for _name, title, headers, rows in sheets:
        sheet = book.create_sheet(title)
        sheet.append(xlsx_row(sheet, headers))
        for row in rows:
            sheet.append(xlsx_row(sheet, row))
    tmp = out_dir / "comparison.xlsx.tmp"
    book.save(tmp)
    _replace(tmp, out_dir / "comparison.xlsx")
    written.append(out_dir / "comparison.xlsx")
    return written
