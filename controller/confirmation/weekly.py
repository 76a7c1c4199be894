"""The weekly progress workbook (S-22: progress published every Friday): progress per township
and for the county by age band and channel, the notice list, the payment-stop list and the
over-payments, written atomically (temp file, fsync, rename); and the supervised job that
writes it for every campaign under way each Friday on the process's clock, once per campaign
and Friday whichever replica gets there first."""

from __future__ import annotations

import asyncio
import os
import tempfile
from datetime import date, datetime, time, timedelta
from pathlib import Path

import structlog
from openpyxl import Workbook
from openpyxl.styles import Font
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from controller.confirmation.campaigns import phases_of
from controller.confirmation.reports import notice_list, overpayments, progress, stop_list
from controller.db.models import ConfirmationCampaign, ConfirmationWeeklyFile
from muster.clock import CAMPAIGN_TZ, Clock
from muster.confirmation import (
    AGE_BANDS,
    PENSION_CATEGORY_NAMES,
    Channel,
    PensionCategory,
    status_zh,
)
from muster.spreadsheets import xlsx_row

__all__ = ["WeeklyReporter", "next_report_time", "write_weekly_xlsx"]

log = structlog.get_logger(__name__)

REPORT_HOUR = time(17, 0)  # Friday 17:00 Beijing time, the end of the week's work
_BAND_ZH = {"80+": "80岁及以上", "70-79": "70至79岁", "<70": "70岁以下"}
_CHANNEL_ZH = {Channel.HOME_VISIT: "上门", Channel.STATION: "服务站", Channel.SELF_SERVICE: "自助"}


def _category(value: str) -> str:
    try:
        return PENSION_CATEGORY_NAMES[PensionCategory(value)]
    except ValueError:
        return value


def write_weekly_xlsx(
    session: Session, campaign: ConfirmationCampaign, day: date, path: Path
) -> Path:
    book = Workbook(write_only=True)
    bold = Font(bold=True)
    sheet = book.create_sheet("确认进度")
    sheet.append(
        xlsx_row(sheet, [f"{campaign.year} 年度优抚对象年度确认进度（截至 {day}）"], font=bold)
    )
    header = ["地区", "代码"]
    for band in AGE_BANDS:
        z = _BAND_ZH[band.value]
        header += [f"{z}人数", f"{z}已确认", f"{z}完成率%", f"{z}上门/应上门"]
        header += [f"{z}{c}" for c in _CHANNEL_ZH.values()]
        header += [f"{z}滞后"]
    sheet.append(xlsx_row(sheet, header, font=bold))
    rows, total = progress(session, campaign, day)
    for row in [*rows, total]:
        values: list[object] = [row.name if row is not total else f"合计 {row.name}", row.code]
        for band in AGE_BANDS:
            p = row.bands[band]
            values += [p.people, p.confirmed, p.percent, f"{p.home_visits}/{p.visits_required}"]
            values += [p.by_channel[c.value] for c in _CHANNEL_ZH]
            values += ["滞后" if p.behind else ""]
        sheet.append(xlsx_row(sheet, values))
    notice = book.create_sheet("公告名单")
    notice.append(xlsx_row(notice, ["乡镇", "姓名", "类别", "公告日期", "状态"], font=bold))
    for line in notice_list(session, campaign):
        notice.append(
            xlsx_row(
                notice,
                [
                    line.township,
                    line.masked_name,
                    _category(line.category),
                    line.noticed_on,
                    status_zh(line.status),
                ],
            )
        )
    stops = book.create_sheet("停发名单")
    stops.append(
        xlsx_row(
            stops,
            [
                "公民身份号码",
                "姓名",
                "乡镇代码",
                "类别",
                "月发放金额（元）",
                "停发起始月",
                "状态",
                "恢复日期",
                "补发月数",
                "补发金额（元）",
            ],
            font=bold,
        )
    )
    for s in stop_list(session, campaign):
        stops.append(
            xlsx_row(
                stops,
                [
                    s.id_number,
                    s.name,
                    s.township_code,
                    _category(s.category),
                    s.monthly_fen / 100,
                    s.stop_from[:7],
                    status_zh(s.reason),
                    s.restored_on,
                    s.months_owed,
                    s.months_owed * s.monthly_fen / 100,
                ],
            )
        )
    over = book.create_sheet("多发追回")
    over.append(
        xlsx_row(
            over,
            [
                "公民身份号码",
                "姓名",
                "乡镇代码",
                "死亡日期",
                "多发月数",
                "多发金额（元）",
                "已追回（元）",
                "待追回（元）",
            ],
            font=bold,
        )
    )
    for o in overpayments(session, campaign):
        over.append(
            xlsx_row(
                over,
                [
                    o.id_number,
                    o.name,
                    o.township_code,
                    o.death_date or "",
                    o.overpaid_months,
                    o.overpaid_fen / 100,
                    o.recovered_fen / 100,
                    (o.overpaid_fen - o.recovered_fen) / 100,
                ],
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=".weekly-", suffix=".xlsx", dir=path.parent)
    os.close(handle)
    try:
        book.save(temp)
        with Path(temp).open("rb") as fh:
            os.fsync(fh.fileno())
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def next_report_time(after: datetime) -> datetime:
    """The first Friday 17:00 Beijing time strictly after ``after``."""
    local = after.astimezone(CAMPAIGN_TZ)
    day = local.date() + timedelta(days=(4 - local.weekday()) % 7)
    moment = datetime.combine(day, REPORT_HOUR, CAMPAIGN_TZ)
    if moment <= local:
        moment += timedelta(days=7)
    return moment


class WeeklyReporter:
    """Every Friday at 17:00 Beijing time, the weekly workbook of each campaign whose calendar
    (publicity to the end of the notice) covers the day, under ``directory``."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock, directory: Path) -> None:
        self.sessions = sessions
        self.clock = clock
        self.directory = directory

    def run_once(self) -> list[Path]:
        """Write the last Friday's workbooks not yet written (safe to call any day, any number
        of times, from any replica)."""
        now = self.clock.now()
        # The last Friday whose report time has come (today, if past 17:00 on a Friday).
        friday = (next_report_time(now) - timedelta(days=7)).date()
        written: list[Path] = []
        with self.sessions() as session:
            campaigns = list(session.scalars(select(ConfirmationCampaign)))
        for campaign in campaigns:
            phases = phases_of(campaign)
            if not phases.publicity.start <= friday <= phases.notice.end:
                continue
            path = self.directory / f"weekly-{campaign.county_code}-{campaign.year}-{friday}.xlsx"
            try:
                with self.sessions.begin() as session:
                    session.add(
                        ConfirmationWeeklyFile(
                            campaign_id=campaign.id,
                            friday=friday.isoformat(),
                            path=str(path),
                            generated_at=now,
                        )
                    )
                    session.flush()
                    write_weekly_xlsx(session, campaign, friday, path)
            except IntegrityError:
                continue  # written already, here or by another replica
            log.info("weekly confirmation report written", campaign=campaign.id, path=str(path))
            written.append(path)
        return written

    async def run(self) -> None:
        await asyncio.to_thread(self.run_once)  # a Friday missed while the controller was down
        while True:
            due = next_report_time(self.clock.now())
            await self.clock.sleep((due - self.clock.now()).total_seconds())
            await asyncio.to_thread(self.run_once)
