"""The fleet overview by region with drill-down (province → city → county → township), and the
open alerts, as pages and as ``/api/v1/regions`` and ``/api/v1/alerts``."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from controller.admin import fleet_queries as q
from controller.admin.access import admin_of
from controller.admin.pages.rendering import LANG, REGION, Store, render
from controller.admin.text import texts
from controller.fleet.alert_actions import admins_within
from muster.region_names import region_label
from muster.regions import DRILL_LENGTHS, child_length

__all__ = ["AlertView", "RegionView", "fleet_overview_router"]


class RegionView(BaseModel):
    code: str
    name: str
    devices: int
    online: int
    stale: int
    offline: int
    alerting: int


class AlertView(BaseModel):
    id: int
    device_id: str
    township_code: str
    kind: str
    message: str
    raised_at: datetime


def fleet_overview_router(sessions: sessionmaker[Session]) -> APIRouter:
    router = APIRouter()
    store = Store(sessions)

    @router.get("/api/v1/regions", response_model=list[RegionView], tags=["fleet"])
    def api_regions(request: Request, prefix: str = Query("", pattern=REGION)) -> list[RegionView]:
        """Counts per child region of ``prefix`` (province → city → county → township)."""
        prefix = admin_of(request).narrow(prefix)
        return store.read(lambda s: [RegionView(**vars(row)) for row in q.regions(s, prefix)])

    @router.get("/api/v1/alerts", response_model=list[AlertView], tags=["fleet"])
    def api_alerts(request: Request, region: str = Query("", pattern=REGION)) -> list[AlertView]:
        region = admin_of(request).narrow(region)
        return store.read(
            lambda s: [
                AlertView(
                    id=a.id,
                    device_id=a.device_id,
                    township_code=township,
                    kind=a.kind,
                    message=a.message,
                    raised_at=a.raised_at,
                )
                for a, township in q.open_alerts(s, region, limit=10_000)
            ]
        )

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview(
        request: Request,
        lang: str = Query("zh", pattern=LANG),
        region: str = Query("", pattern=REGION),
    ) -> Response:
        region = admin_of(request).narrow(region)
        rows, totals = store.read(lambda s: (q.regions(s, region), q.totals(s, region)))
        crumbs = [("", texts(lang)["all_regions"])] + [
            (region[:n], region_label(region[:n])) for n in DRILL_LENGTHS if len(region) >= n
        ]
        return render(
            request,
            "fleet_overview.html",
            lang,
            "fleet",
            rows=rows,
            totals=totals,
            region=region,
            crumbs=crumbs,
            leaf=child_length(region) == 9,
        )

    @router.get("/alerts", response_class=HTMLResponse, include_in_schema=False)
    def alerts_page(
        request: Request,
        lang: str = Query("zh", pattern=LANG),
        region: str = Query("", pattern=REGION),
    ) -> Response:
        admin = admin_of(request)
        region = admin.narrow(region)
        rows = store.read(lambda s: q.open_alerts(s, region))
        admins = store.read(lambda s: admins_within(s, admin.prefix))
        return render(
            request,
            "fleet_alerts.html",
            lang,
            "fleet",
            alerts=rows,
            region=region,
            admins=admins,
            may_handle=admin.can("command"),
        )

    return router
