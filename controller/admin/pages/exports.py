"""The XLSX downloads: the progress sheet, every approved record, and the weekly report, each
of the admin's area or a part of it (controller/records/xlsx_reports.py builds them)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session, sessionmaker

from controller.admin.access import admin_of
from controller.admin.pages.rendering import REGION, Store, xlsx_response
from controller.admin.pages.reports import week_of
from controller.records.progress import progress, weekly_report
from controller.records.xlsx_reports import (
    approved_workbook,
    progress_workbook,
    stamp,
    weekly_workbook,
)
from muster.clock import Clock

__all__ = ["exports_router"]


def exports_router(sessions: sessionmaker[Session], clock: Clock) -> APIRouter:
    router = APIRouter()
    store = Store(sessions)

    @router.get("/progress.xlsx", include_in_schema=True, tags=["exports"])
    def progress_xlsx(request: Request, region: str = Query("", pattern=REGION)) -> Response:
        """The progress sheet of your area (or a part of it) as XLSX."""
        area = admin_of(request).narrow(region)
        report = store.read(lambda s: progress(s, area, clock.now()))
        return xlsx_response(
            lambda p: progress_workbook(report, p),
            f"progress-{area or 'all'}-{stamp(clock.now())}.xlsx",
        )

    @router.get("/approved.xlsx", include_in_schema=True, tags=["exports"])
    def approved_xlsx(request: Request, region: str = Query("", pattern=REGION)) -> Response:
        """Every approved record of your area (or a part of it) as XLSX."""
        area = admin_of(request).narrow(region)
        return xlsx_response(
            lambda p: store.read(lambda s: approved_workbook(s, area, p)),
            f"approved-{area or 'all'}-{stamp(clock.now())}.xlsx",
        )

    @router.get("/reports/weekly.xlsx", tags=["exports"])
    def weekly_xlsx(
        request: Request, region: str = Query("", pattern=REGION), week: str = ""
    ) -> Response:
        area = admin_of(request).narrow(region)
        day = week_of(week, clock)
        report = store.read(lambda s: weekly_report(s, area, day, clock.now()))
        return xlsx_response(
            lambda p: weekly_workbook(report, p),
            f"weekly-{area or 'all'}-{report.week_start:%Y%m%d}.xlsx",
        )

    return router
