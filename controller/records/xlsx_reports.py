"""XLSX workbooks (openpyxl) of progress, the weekly report and the approved records of an area,
with Chinese headers. Workbooks are written in openpyxl's write-only mode, row by row, so an
area of millions of records never sits in memory as cells.

Every row goes through ``muster.spreadsheets.xlsx_row``: a name or a region typed as
``=HYPERLINK(...)`` is written as text, never as a live formula."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import ImportedRecord, Record
from controller.records.progress import (
    PHASES,
    Counts,
    ProgressReport,
    WeeklyReport,
    ordered_categories,
)
from controller.records.region_tree import region_names
from controller.records.review import APPROVED, category_name
from muster.regions import LEVEL_NAMES
from muster.spreadsheets import xlsx_row

__all__ = ["approved_workbook", "progress_workbook", "weekly_workbook"]

_BOLD = Font(bold=True)
_LATE = PatternFill("solid", fgColor="FDE8E8")
PROGRESS_HEADERS = (
    "地区代码",
    "地区",
    "切片人数",
    "已采集",
    "已审核",
    "已通过",
    "未采集",
    "完成率%",
    "乡镇数",
    "已申报乡镇",
    "逾期阶段",
)
APPROVED_HEADERS = (
    "记录编号",
    "乡镇代码",
    "乡镇",
    "类别",
    "姓名",
    "公民身份号码",
    "性别",
    "出生日期",
    "已通过至",
    "采集时间",
)


def _header(sheet: Any, titles: tuple[str, ...]) -> None:
    sheet.append(xlsx_row(sheet, titles, font=_BOLD))


def _append(sheet: Any, values: list[Any], **style: Any) -> None:
    sheet.append(xlsx_row(sheet, values, **style))


def _counts(c: Counts) -> list[Any]:
    return [c.slice, c.collected, c.reviewed, c.approved, c.missing, c.percent]


def _late(phases: list[str]) -> str:
    return "、".join(PHASES[p] for p in phases)


def progress_workbook(report: ProgressReport, path: Path) -> None:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("进度")
    _append(sheet, [f"{report.area_name}（{report.area or '全国'}）采集进度"])
    _append(sheet, [f"统计时间 {report.now.astimezone(UTC):%Y-%m-%d %H:%M} UTC"])
    _header(sheet, PROGRESS_HEADERS)
    for r in report.regions:
        row: list[Any] = [
            r.code,
            r.name,
            *_counts(r.totals),
            r.totals.townships,
            r.totals.declared,
            _late(r.overdue),
        ]
        _append(sheet, row, **({"fill": _LATE} if r.overdue else {}))
    _append(
        sheet,
        [
            report.area or "",
            "合计",
            *_counts(report.totals),
            report.totals.townships,
            report.totals.declared,
            "",
        ],
    )

    by_category = book.create_sheet("按类别")
    _header(by_category, ("地区代码", "地区", "类别", *PROGRESS_HEADERS[2:8]))
    for r in report.regions:
        for category in ordered_categories(r.by_category):
            _append(
                by_category,
                [r.code, r.name, category_name(category), *_counts(r.by_category[category])],
            )

    deadlines = book.create_sheet("截止时间")
    _header(deadlines, ("阶段", "截止时间（北京时间）"))
    for phase, due in report.deadlines.items():
        _append(deadlines, [PHASES[phase], f"{due:%Y-%m-%d %H:%M}"])
    book.save(path)


def weekly_workbook(report: WeeklyReport, path: Path) -> None:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("周报")
    _append(
        sheet,
        [
            f"{report.area_name} 采集进度周报 {report.week_start:%Y-%m-%d} 至 {report.week_end:%Y-%m-%d}"
        ],
    )
    _header(
        sheet,
        (
            "地区代码",
            "地区",
            "本周新采集",
            "本周通过",
            "本周退回",
            "本周申报乡镇",
            "累计切片人数",
            "累计已采集",
            "累计已通过",
            "累计未采集",
            "完成率%",
            "逾期阶段",
        ),
    )
    for r in [*report.rows, report.total]:
        c = r.cumulative
        _append(
            sheet,
            [
                r.code if r is not report.total else (report.area or ""),
                r.name if r is not report.total else "合计",
                r.new_records,
                r.approved,
                r.returned,
                r.declared,
                c.slice,
                c.collected,
                c.approved,
                c.missing,
                c.percent,
                _late(r.overdue),
            ],
        )
    book.save(path)


def _approved_rows(session: Session, area: str) -> Iterator[tuple[Any, ...]]:
    own = (
        select(
            Record.record_id,
            Record.township_code,
            Record.category,
            Record.payload,
            Record.approved_level,
            Record.received_at,
        )
        .where(Record.township_code.startswith(area), Record.review_status == APPROVED)
        .order_by(Record.township_code, Record.record_id)
        .execution_options(yield_per=2000)
    )
    yield from session.execute(own)
    imported = (
        select(
            ImportedRecord.record_id,
            ImportedRecord.township_code,
            ImportedRecord.category,
            ImportedRecord.payload,
            ImportedRecord.approved_level,
        )
        .where(ImportedRecord.township_code.startswith(area))
        .order_by(ImportedRecord.township_code, ImportedRecord.record_id)
        .execution_options(yield_per=2000)
    )
    for record_id, township, category, payload, level in session.execute(imported):
        yield record_id, township, category, payload, level, None


def approved_workbook(session: Session, area: str, path: Path) -> int:
    """Every approved record of ``area`` (own and imported); returns how many."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet("已通过记录")
    _header(sheet, APPROVED_HEADERS)
    names: dict[str, str] = {}
    count = 0
    for record_id, township, category, payload, level, received in _approved_rows(session, area):
        code = township[:9]
        if code not in names:
            names.update(region_names(session, [code]))
        person = payload.get("person", {})
        _append(
            sheet,
            [
                record_id,
                township,
                names[code],
                category_name(category),
                person.get("name", ""),
                person.get("id_number", ""),
                {"1": "男", "2": "女"}.get(str(person.get("sex")), ""),
                person.get("birth_date", ""),
                LEVEL_NAMES.get(level, level) + "级" if level else "",
                received.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if received else "",
            ],
        )
        count += 1
    book.save(path)
    return count


def stamp(now: datetime) -> str:
    """``now`` as it goes into an export's file name."""
    return now.strftime("%Y%m%d-%H%M")
