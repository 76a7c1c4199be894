"""The progress page and ``/api/v1/progress``: slice, collected, reviewed, approved and missing
per child region and category, with the completion chart; and taking in what the level below
approved (``/forward``), which the progress page offers."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from controller.admin.access import admin_of
from controller.admin.charts import bar_chart
from controller.admin.pages.record_views import CountsView, counts_view, record_page
from controller.admin.pages.rendering import LANG, REGION, Store, form_body, form_lang
from controller.admin.text import texts
from controller.records.progress import ordered_categories, progress
from controller.records.region_tree import region_names
from controller.records.review import forward
from muster.clock import Clock
from muster.errors import ConfigError
from muster.regions import DRILL_LENGTHS

__all__ = ["ProgressView", "progress_router"]


class RegionProgressView(BaseModel):
    code: str
    name: str
    totals: CountsView
    townships: int
    declared: int
    by_category: dict[str, CountsView]
    overdue: list[str]


class ProgressView(BaseModel):
    area: str
    area_name: str
    totals: CountsView
    regions: list[RegionProgressView]
    deadlines: dict[str, datetime]


class ForwardRequest(BaseModel):
    region: str = Field(default="", pattern=REGION)


def progress_router(sessions: sessionmaker[Session], clock: Clock) -> APIRouter:
    router = APIRouter()
    store = Store(sessions)

    def progress_view(area: str) -> ProgressView:
        report = store.read(lambda s: progress(s, area, clock.now()))
        return ProgressView(
            area=report.area,
            area_name=report.area_name,
            totals=counts_view(report.totals),
            regions=[
                RegionProgressView(
                    code=r.code,
                    name=r.name,
                    totals=counts_view(r.totals),
                    townships=r.totals.townships,
                    declared=r.totals.declared,
                    by_category={k: counts_view(v) for k, v in r.by_category.items()},
                    overdue=r.overdue,
                )
                for r in report.regions
            ],
            deadlines=report.deadlines,
        )

    @router.get("/api/v1/progress", response_model=ProgressView, tags=["progress"])
    def api_progress(request: Request, region: str = Query("", pattern=REGION)) -> ProgressView:
        """Slice / collected / reviewed / approved / missing per child region and category."""
        return progress_view(admin_of(request).narrow(region))

    @router.get("/progress", response_class=HTMLResponse, include_in_schema=False)
    def progress_page(
        request: Request,
        lang: str = Query("zh", pattern=LANG),
        region: str = Query("", pattern=REGION),
    ) -> Response:
        admin = admin_of(request)
        area = admin.narrow(region)
        report = store.read(lambda s: progress(s, area, clock.now()))
        crumbs = [(area[:n], n) for n in DRILL_LENGTHS if len(area) >= n and len(admin.prefix) <= n]
        names = store.read(lambda s: region_names(s, [c for c, _ in crumbs]))
        chart = bar_chart(
            [(f"{r.name} {r.code}", r.totals.percent) for r in report.regions],
            title=texts(lang, "records")["completion_chart"],
            colour="#1f7a1f",
            testid="completion-chart",
            scale_max=100,
            unit="%",
        )
        return record_page(
            request,
            "progress.html",
            lang,
            report=report,
            area=area,
            crumbs=[(c, names.get(c, c)) for c, _ in crumbs],
            leaf=report.level_length == 9,
            categories=ordered_categories(report.by_category),
            chart=chart,
        )

    @router.post("/api/v1/forward", tags=["review"])
    def api_forward(request: Request, body: ForwardRequest) -> dict[str, int]:
        try:
            moved = store.write(lambda s: forward(s, admin_of(request), body.region, clock.now()))
        except ConfigError as exc:
            raise HTTPException(409, str(exc)) from exc
        return {"records": moved}

    @router.post("/forward", include_in_schema=False)
    async def forward_submit(request: Request) -> Response:
        form = form_body(await request.body())
        lang = form_lang(form)
        region = form.get("region", "")
        store.write(lambda s: forward(s, admin_of(request), region, clock.now()))
        return RedirectResponse(f"/progress?region={region}&lang={lang}", status_code=303)

    return router
