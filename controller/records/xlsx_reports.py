"""XLSX workbooks (openpyxl) of progress, the weekly report and the approved records of an area,
with Chinese headers, columns wide enough for them, the header rows frozen, and times in Beijing
time. Workbooks are written in openpyxl's write-only mode, row by row, so an
area of millions of records never sits in memory as cells.

Every row goes through ``muster.spreadsheets.xlsx_row``: a name or a region typed as
``=HYPERLINK(...)`` is written as text, never as a live formula."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
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
from muster.clock import CAMPAIGN_TZ
from muster.regions import LEVEL_NAMES
from muster.spreadsheets import xlsx_row

__all__ = ["approved_workbook", "progress_workbook", "weekly_workbook"]

_BOLD = Font(bold=True)
_LATE = PatternFill("solid", fgColor="FDE8E8")
PROGRESS_HEADERS = (
    "地区代码",
    "地区",
    "名单人数",
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
    "采集时间（北京时间）",
)


def _sheet(book: Any, title: str, headers: tuple[str, ...], header_row: int) -> Any:
    """A write-only sheet whose columns fit ``headers`` (CJK counts double) and whose rows
    above and including ``header_row`` stay put when scrolling; set before any row is written,
    as write-only mode requires."""
    sheet = book.create_sheet(title)
    for index, text in enumerate(headers, start=1):
        wide = sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)
        sheet.column_dimensions[get_column_letter(index)].width = max(10, min(40, wide + 4))
    sheet.freeze_panes = f"A{header_row + 1}"
    return sheet


def _header(sheet: Any, titles: tuple[str, ...]) -> None:
    sheet.append(xlsx_row(sheet, titles, font=_BOLD))


def _area_title(name: str, code: str) -> str:
    # The nation's name is 全国 and its code empty: "全国（全国）" said it twice.
    return f"{name}（{code}）" if code and code != name else name


def _beijing(moment: datetime) -> str:
    return f"{moment.astimezone(CAMPAIGN_TZ):%Y-%m-%d %H:%M}（北京时间）"


def _append(sheet: Any, values: list[Any], **style: Any) -> None:
    sheet.append(xlsx_row(sheet, values, **style))


def _counts(c: Counts) -> list[Any]:
    return [c.slice, c.collected, c.reviewed, c.approved, c.missing, c.percent]


def _late(phases: list[str]) -> str:
    return "、".join(PHASES[p] for p in phases)


def progress_workbook(report: ProgressReport, path: Path) -> None:
    book = Workbook(write_only=True)
    sheet = _sheet(book, "进度", PROGRESS_HEADERS, header_row=3)
    _append(sheet, [f"{_area_title(report.area_name, report.area)} 采集进度"])
    _append(sheet, [f"统计时间 {_beijing(report.now)}"])
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

    category_headers = ("地区代码", "地区", "类别", *PROGRESS_HEADERS[2:8])
    by_category = _sheet(book, "按类别", category_headers, header_row=1)
    _header(by_category, category_headers)
    for r in report.regions:
        for category in ordered_categories(r.by_category):
            _append(
                by_category,
                [r.code, r.name, category_name(category), *_counts(r.by_category[category])],
            )

    deadline_headers = ("阶段", "截止时间（北京时间）")
    deadlines = _sheet(book, "截止时间", deadline_headers, header_row=1)
    _header(deadlines, deadline_headers)
    for phase, due in report.deadlines.items():
        _append(deadlines, [PHASES[phase], f"{due.astimezone(CAMPAIGN_TZ):%Y-%m-%d %H:%M}"])
    book.save(path)


def weekly_workbook(report: WeeklyReport, path: Path) -> None:
    book = Workbook(write_only=True)
    headers = (
        "地区代码",
        "地区",
        "本周新采集",
        "本周通过",
        "本周退回",
        "本周申报乡镇",
        "累计名单人数",
        "累计已采集",
        "累计已通过",
        "累计未采集",
        "完成率%",
        "下发任务",
        "已办结任务",
        "本周办结任务",
        "任务办结率%",
        "逾期阶段",
    )
    sheet = _sheet(book, "周报", headers, header_row=2)
    _append(
        sheet,
        [
            f"{_area_title(report.area_name, report.area)} 采集进度周报 "
            f"{report.week_start:%Y-%m-%d} 至 {report.week_end:%Y-%m-%d}"
        ],
    )
    _header(sheet, headers)
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
                r.tasks,
                r.tasks_done,
                r.tasks_done_week,
                r.task_percent,
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
    sheet = _sheet(book, "已通过记录", APPROVED_HEADERS, header_row=1)
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
                received.astimezone(CAMPAIGN_TZ).strftime("%Y-%m-%d %H:%M") if received else "",
            ],
        )
        count += 1
    book.save(path)
    return count


def stamp(now: datetime) -> str:
    """``now`` as it goes into an export's file name."""
    return now.strftime("%Y%m%d-%H%M")
