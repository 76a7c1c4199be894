"""The weekly report: per child region what was collected, approved, returned and declared in
one week (Monday to Sunday, Beijing time), and how far it has closed the tasks the centre sent
it, as a page and as ``/api/v1/reports/weekly``."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from controller.admin.access import admin_of
from controller.admin.charts import bar_chart
from controller.admin.pages.record_views import counts_view, record_page
from controller.admin.pages.rendering import LANG, REGION, Store
from controller.admin.text import texts
from controller.records.progress import weekly_report
from muster.clock import Clock

__all__ = ["reports_router", "week_of"]


def week_of(text: str, clock: Clock) -> date:
    """The day a ``week`` parameter names (any day of the week), today when empty."""
    if not text:
        return clock.today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise HTTPException(422, "week 应写成 YYYY-MM-DD（该周中的任一天）") from None


def reports_router(sessions: sessionmaker[Session], clock: Clock) -> APIRouter:
    router = APIRouter()
    store = Store(sessions)

    @router.get("/api/v1/reports/weekly", tags=["progress"])
    def api_weekly(
        request: Request, region: str = Query("", pattern=REGION), week: str = ""
    ) -> dict[str, Any]:
        area = admin_of(request).narrow(region)
        day = week_of(week, clock)
        report = store.read(lambda s: weekly_report(s, area, day, clock.now()))
        return {
            "area": report.area,
            "week_start": report.week_start.isoformat(),
            "week_end": report.week_end.isoformat(),
            "rows": [
                {
                    "code": r.code,
                    "name": r.name,
                    "new_records": r.new_records,
                    "approved": r.approved,
                    "returned": r.returned,
                    "declared": r.declared,
                    "cumulative": counts_view(r.cumulative).model_dump(),
                    "overdue": r.overdue,
                    "tasks": {
                        "sent": r.tasks,
                        "done": r.tasks_done,
                        "done_this_week": r.tasks_done_week,
                        "percent": r.task_percent,
                    },
                }
                for r in report.rows
            ],
        }

    @router.get("/reports/weekly", response_class=HTMLResponse, include_in_schema=False)
    def weekly_page(
        request: Request,
        lang: str = Query("zh", pattern=LANG),
        region: str = Query("", pattern=REGION),
        week: str = "",
    ) -> Response:
        area = admin_of(request).narrow(region)
        day = week_of(week, clock)
        report = store.read(lambda s: weekly_report(s, area, day, clock.now()))
        chart = bar_chart(
            [(f"{r.name} {r.code}", r.new_records) for r in report.rows],
            title=texts(lang, "records")["new_records"],
            testid="weekly-chart",
        )
        return record_page(
            request,
            "weekly.html",
            lang,
            report=report,
            area=area,
            chart=chart,
            prev_week=(report.week_start - timedelta(days=7)).isoformat(),
            next_week=(report.week_start + timedelta(days=7)).isoformat(),
        )

    return router
