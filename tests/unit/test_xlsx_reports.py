"""The XLSX exports as a person opens them: columns wide enough for their Chinese headers, the
header rows frozen while scrolling, the area named once in the title, times in Beijing time."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session, sessionmaker

from controller.records.progress import progress, weekly_report
from controller.records.xlsx_reports import (
    approved_workbook,
    progress_workbook,
    weekly_workbook,
)
from tests.unit.admin_world import HOME, NOW, build_world


@pytest.mark.parametrize("area", ["", HOME])
def test_progress_sheet_is_readable_as_opened(
    sessions: sessionmaker[Session], tmp_path: Path, area: str
) -> None:
    build_world(sessions)
    with sessions() as s:
        report = progress(s, area, NOW)
    path = tmp_path / "progress.xlsx"
    progress_workbook(report, path)
    sheet = load_workbook(path)["进度"]
    assert sheet.freeze_panes == "A4"
    title = str(sheet["A1"].value)
    assert title.count(report.area_name) == 1 and "全国（全国）" not in title
    assert str(sheet["A2"].value).endswith("17:00（北京时间）")  # NOW is 09:00 UTC
    assert [c.value for c in sheet[3]][:3] == ["地区代码", "地区", "名单人数"]
    for letter in "ABC":
        assert (sheet.column_dimensions[letter].width or 0) >= 10


def test_weekly_and_approved_sheets_freeze_their_headers(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    build_world(sessions)
    with sessions() as s:
        weekly = weekly_report(s, HOME, date(2026, 11, 23), NOW)
        weekly_workbook(weekly, tmp_path / "weekly.xlsx")
        approved_workbook(s, HOME, tmp_path / "approved.xlsx")
    week = load_workbook(tmp_path / "weekly.xlsx")["周报"]
    assert week.freeze_panes == "A3" and week["A2"].value == "地区代码"
    assert str(week["A1"].value).count("泰山区") == 1
    approved = load_workbook(tmp_path / "approved.xlsx")["已通过记录"]
    assert approved.freeze_panes == "A2"
    assert approved["J1"].value == "采集时间（北京时间）"
    assert (approved.column_dimensions["F"].width or 0) >= 14  # 公民身份号码
