"""The data-flow page (records received per hour, the fleet's backlog and devices online) and
``/api/v1/telemetry``, this process's telemetry consumer counters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from controller.admin import fleet_queries as q
from controller.admin.access import admin_of
from controller.admin.charts import bar_chart
from controller.admin.pages.rendering import LANG, REGION, render
from controller.admin.reader_time import reader_time
from controller.admin.text import texts
from muster.clock import Clock

__all__ = ["MAX_BARS", "RANGES_H", "fleet_flow_router"]

RANGES_H = (6, 24, 72, 168)
MAX_BARS = 240


def fleet_flow_router(sessions: sessionmaker[Session], clock: Clock) -> APIRouter:
    router = APIRouter()

    @router.get("/api/v1/telemetry", tags=["fleet"])
    def api_telemetry(request: Request) -> dict[str, Any]:
        """This controller process's telemetry consumer: messages received and applied, and,
        when its buffer was full, superseded by a newer message of the same device or dropped,
        and refused as one the store cannot apply (see controller/fleet/telemetry_consumer.py)."""
        consumer = getattr(request.app.state, "consumer", None)
        if consumer is None:
            return {
                "connected": False,
                "transport": "none",
                "messages_received": 0,
                "messages_applied": 0,
                "messages_handled": 0,
                "messages_pending": 0,
                "messages_superseded": 0,
                "messages_dropped": 0,
                "messages_refused": 0,
            }
        # With telemetry over NATS the MQTT connection only carries commands: the replica takes
        # its share of telemetry once the intake is subscribed too.
        intake = getattr(request.app.state, "intake", None)
        return {
            "connected": consumer.connected.is_set()
            and (intake is None or intake.connected.is_set()),
            "transport": "mqtt" if intake is None else "nats",
            "messages_received": consumer.messages_received,
            "messages_applied": consumer.messages_applied,
            "messages_handled": consumer.messages_handled,
            "messages_pending": consumer.pending,
            "messages_superseded": consumer.messages_superseded,
            "messages_dropped": consumer.messages_dropped,
            "messages_refused": consumer.messages_refused,
        }

    @router.get("/flow", response_class=HTMLResponse, include_in_schema=False)
    def flow(
        request: Request,
        lang: str = Query("zh", pattern=LANG),
        region: str = Query("", pattern=REGION),
        hours: int = Query(24, description="the charts' span: " + ", ".join(map(str, RANGES_H))),
    ) -> Response:
        if hours not in RANGES_H:
            raise HTTPException(
                422, f"hours 应为 {'、'.join(map(str, RANGES_H))} 之一（图表覆盖的小时数）"
            )
        now = clock.now()
        t = texts(lang, "fleet")
        admin = admin_of(request)
        region = admin.narrow(region)
        with sessions() as session:
            per_hour = q.records_per_hour(session, now, hours, prefix=region)
            # The samples count the whole fleet: only a national admin may see them.
            samples = q.fleet_series(session, now, hours) if not admin.prefix else []
            totals = q.totals(session, region)
        # A sample a minute: over a day, one bar per `every` minutes keeps the chart readable.
        every = max(1, len(samples) // MAX_BARS)
        series = [(reader_time(s.at, lang, label=False)[5:], s) for s in samples[::every]]
        return render(
            request,
            "fleet_flow.html",
            lang,
            "fleet",
            region=region,
            totals=totals,
            hours=hours,
            ranges=RANGES_H,
            records_chart=bar_chart(
                per_hour, title=t["records_hour"].format(h=hours), testid="records-per-hour"
            ),
            backlog_chart=bar_chart(
                [(label, s.backlog) for label, s in series],
                title=t["backlog_chart"].format(h=hours),
                colour="#c2410c",
                testid="backlog",
            ),
            online_chart=bar_chart(
                [(label, s.online) for label, s in series],
                title=t["online_chart"].format(h=hours),
                colour="#1f7a1f",
                testid="online",
            ),
        )

    return router
