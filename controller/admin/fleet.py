"""The fleet pages and their API: overview by region with drill-down, the device list with
filters and search, a device's page (state history, events, alerts, commands, licence, outbox),
open alerts, data-flow charts; and commands issued from the page or ``POST /api/v1/...``."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.admin import fleet_queries as q
from controller.admin.access import admin_of
from controller.admin.charts import bar_chart
from controller.admin.fleet_i18n import fleet_texts
from controller.db.models import Command
from controller.fleet.commands import OPEN_STATES, issue_command
from controller.fleet.rules import STATES
from muster import commands as catalogue
from muster.clock import Clock
from muster.errors import ConfigError
from muster.region_names import describe, region_label
from muster.regions import DRILL_LENGTHS, child_length

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
REGION = r"^\d{0,12}$"
LANG = "^(zh|en)$"


class CommandRequest(BaseModel):
    kind: str = Field(description=", ".join(catalogue.KINDS))
    arguments: dict[str, str] = Field(default_factory=dict)
    expires_in_s: float | None = Field(default=None, description="default 7 days")


class CommandView(BaseModel):
    id: str
    device_id: str
    kind: str
    arguments: dict[str, Any]
    state: str
    issued_at: datetime
    expires_at: datetime
    sent_at: datetime | None
    send_count: int
    finished_at: datetime | None
    result_message: str
    output: str


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


def _command_view(command: Command) -> CommandView:
    return CommandView(
        id=command.id,
        device_id=command.device_id,
        kind=command.kind,
        arguments=dict(command.arguments),
        state=command.state,
        issued_at=command.issued_at,
        expires_at=command.expires_at,
        sent_at=command.sent_at,
        send_count=command.send_count,
        finished_at=command.finished_at,
        result_message=command.result_message,
        output=command.output,
    )


def _fmt_time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def _fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _fmt_bytes(value: Any) -> str:
    if value in (None, ""):
        return "—"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


TEMPLATES.env.filters["time"] = _fmt_time
TEMPLATES.env.filters["age"] = _fmt_age
TEMPLATES.env.filters["bytes"] = _fmt_bytes


def _other(lang: str) -> str:
    return "en" if lang == "zh" else "zh"


def _parse_arguments(text: str) -> dict[str, str]:
    arguments: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"参数第 {number} 行应写成 key=value：{line.strip()!r}")
        arguments[key.strip()] = value.strip()
    return arguments


def fleet_router(sessions: sessionmaker[Session], clock: Clock) -> APIRouter:
    router = APIRouter()

    def page(
        request: Request, template: str, lang: str, status_code: int = 200, **context: Any
    ) -> Response:
        return TEMPLATES.TemplateResponse(
            request,
            template,
            {
                "t": fleet_texts(lang),
                "lang": lang,
                "path": request.url.path,
                "switch_url": str(request.url.include_query_params(lang=_other(lang))),
                **context,
            },
            status_code=status_code,
        )

    def issue(device_id: str, body: CommandRequest, issued_by: str) -> Command:
        expires = timedelta(seconds=body.expires_in_s) if body.expires_in_s else None
        with sessions.begin() as session:
            return issue_command(
                session,
                device_id,
                body.kind,
                body.arguments,
                now=clock.now(),
                expires_in=expires,
                issued_by=issued_by,
            )

    # --- API ------------------------------------------------------------------------------

    @router.get("/api/v1/regions", response_model=list[RegionView], tags=["fleet"])
    def api_regions(request: Request, prefix: str = Query("", pattern=REGION)) -> list[RegionView]:
        """Counts per child region of ``prefix`` (province → city → county → township)."""
        prefix = admin_of(request).narrow(prefix)
        with sessions() as session:
            return [RegionView(**vars(row)) for row in q.regions(session, prefix)]

    @router.get("/api/v1/alerts", response_model=list[AlertView], tags=["fleet"])
    def api_alerts(request: Request, region: str = Query("", pattern=REGION)) -> list[AlertView]:
        region = admin_of(request).narrow(region)
        with sessions() as session:
            return [
                AlertView(
                    id=a.id,
                    device_id=a.device_id,
                    township_code=township,
                    kind=a.kind,
                    message=a.message,
                    raised_at=a.raised_at,
                )
                for a, township in q.open_alerts(session, region, limit=10_000)
            ]

    @router.post(
        "/api/v1/devices/{device_id}/commands",
        response_model=CommandView,
        status_code=201,
        tags=["commands"],
    )
    def api_issue(request: Request, device_id: str, body: CommandRequest) -> CommandView:
        """Queue a command; it is delivered when the device is (or comes back) online."""
        try:
            return _command_view(issue(device_id, body, admin_of(request).username))
        except ConfigError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc

    @router.get(
        "/api/v1/devices/{device_id}/commands", response_model=list[CommandView], tags=["commands"]
    )
    def api_device_commands(device_id: str) -> list[CommandView]:
        with sessions() as session:
            rows = session.scalars(
                select(Command)
                .where(Command.device_id == device_id)
                .order_by(Command.issued_at.desc())
                .limit(200)
            )
            return [_command_view(c) for c in rows]

    @router.get("/api/v1/commands/{command_id}", response_model=CommandView, tags=["commands"])
    def api_command(command_id: str) -> CommandView:
        with sessions() as session:
            command = session.get(Command, command_id)
            if command is None:
                raise HTTPException(status_code=404, detail=f"no command {command_id}")
            return _command_view(command)

    @router.get("/api/v1/telemetry", tags=["fleet"])
    def api_telemetry(request: Request) -> dict[str, Any]:
        """This controller process's telemetry consumer: messages received and applied, and,
        when its buffer was full, superseded by a newer message of the same device or dropped
        (see controller/fleet/telemetry_consumer.py)."""
        consumer = getattr(request.app.state, "consumer", None)
        if consumer is None:
            return {
                "connected": False,
                "messages_received": 0,
                "messages_applied": 0,
                "messages_pending": 0,
                "messages_superseded": 0,
                "messages_dropped": 0,
            }
        return {
            "connected": consumer.connected.is_set(),
            "messages_received": consumer.messages_received,
            "messages_applied": consumer.messages_applied,
            "messages_pending": consumer.pending,
            "messages_superseded": consumer.messages_superseded,
            "messages_dropped": consumer.messages_dropped,
        }

    # --- pages ----------------------------------------------------------------------------

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview(
        request: Request,
        lang: str = Query("zh", pattern=LANG),
        region: str = Query("", pattern=REGION),
    ) -> Response:
        region = admin_of(request).narrow(region)
        with sessions() as session:
            rows = q.regions(session, region)
            totals = q.totals(session, region)
        crumbs = [("", fleet_texts(lang)["all_regions"])] + [
            (region[:n], region_label(region[:n])) for n in DRILL_LENGTHS if len(region) >= n
        ]
        return page(
            request,
            "fleet_overview.html",
            lang,
            rows=rows,
            totals=totals,
            region=region,
            crumbs=crumbs,
            leaf=child_length(region) == 9,
        )

    @router.get("/devices", response_class=HTMLResponse, include_in_schema=False)
    def device_list(
        request: Request,
        lang: str = Query("zh", pattern=LANG),
        region: str = Query("", pattern=REGION),
        state: str = Query("", pattern=r"^(|online|stale|offline)$"),
        alerting: bool = False,
        q_: str = Query("", alias="q", max_length=40),
        page_no: int = Query(1, alias="page", ge=1),
    ) -> Response:
        region = admin_of(request).narrow(region)
        f = q.DeviceFilter(region, state, alerting, q_, page_no)
        with sessions() as session:
            result = q.devices(session, f)
        pages = max(1, math.ceil(result.total / f.per_page))
        base = {"lang": lang, "region": region, "state": state, "q": q_}
        if alerting:
            base["alerting"] = "true"
        return page(
            request,
            "fleet_devices.html",
            lang,
            result=result,
            f=f,
            pages=pages,
            states=STATES,
            region_path=describe(region) if region else "",
            link=lambda **extra: "?" + urlencode({**base, **extra}),
        )

    def device_page(
        request: Request, device_id: str, lang: str, error: str = "", status_code: int = 200
    ) -> Response:
        now = clock.now()
        with sessions() as session:
            detail = q.device_detail(session, device_id, now)
        if detail is None:
            raise HTTPException(status_code=404, detail=f"没有这台设备：{device_id}")
        t = fleet_texts(lang)
        return page(
            request,
            "fleet_device.html",
            lang,
            d=detail.device,
            detail=detail,
            region_path=describe(detail.device.township_code[:9]),
            kinds=list(catalogue.KINDS),
            waiting=any(c.state in OPEN_STATES for c in detail.commands),
            chart=bar_chart(detail.records_per_hour, title=t["records_hour"], testid="device-rph"),
            error=error,
            status_code=status_code,
        )

    @router.get("/devices/{device_id}", response_class=HTMLResponse, include_in_schema=False)
    def device(request: Request, device_id: str, lang: str = Query("zh", pattern=LANG)) -> Response:
        return device_page(request, device_id, lang)

    @router.post("/devices/{device_id}/commands", include_in_schema=False)
    async def device_command(request: Request, device_id: str) -> Response:
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode()).items()}
        lang = form.get("lang", "zh") if form.get("lang") in ("zh", "en") else "zh"
        try:
            minutes = float(form.get("valid_minutes") or 0)
            body = CommandRequest(
                kind=form.get("kind", ""),
                arguments=_parse_arguments(form.get("arguments", "")),
                expires_in_s=minutes * 60 if minutes else None,
            )
            issue(device_id, body, admin_of(request).username)
        except (ConfigError, ValueError) as exc:
            return device_page(request, device_id, lang, error=str(exc), status_code=400)
        return RedirectResponse(f"/devices/{device_id}?lang={lang}", status_code=303)

    @router.get("/alerts", response_class=HTMLResponse, include_in_schema=False)
    def alerts_page(
        request: Request,
        lang: str = Query("zh", pattern=LANG),
        region: str = Query("", pattern=REGION),
    ) -> Response:
        region = admin_of(request).narrow(region)
        with sessions() as session:
            rows = q.open_alerts(session, region)
        return page(request, "fleet_alerts.html", lang, alerts=rows, region=region)

    @router.get("/flow", response_class=HTMLResponse, include_in_schema=False)
    def flow(
        request: Request,
        lang: str = Query("zh", pattern=LANG),
        region: str = Query("", pattern=REGION),
    ) -> Response:
        now = clock.now()
        t = fleet_texts(lang)
        admin = admin_of(request)
        region = admin.narrow(region)
        with sessions() as session:
            per_hour = q.records_per_hour(session, now, prefix=region)
            # The samples count the whole fleet: only a national admin may see them.
            samples = q.fleet_series(session, now) if not admin.prefix else []
            totals = q.totals(session, region)
        series = [(s.at.strftime("%m-%d %H:%M"), s) for s in samples]
        return page(
            request,
            "fleet_flow.html",
            lang,
            region=region,
            totals=totals,
            records_chart=bar_chart(per_hour, title=t["records_hour"], testid="records-per-hour"),
            backlog_chart=bar_chart(
                [(label, s.backlog) for label, s in series],
                title=t["backlog_chart"],
                colour="#c2410c",
                testid="backlog",
            ),
            online_chart=bar_chart(
                [(label, s.online) for label, s in series],
                title=t["online_chart"],
                colour="#1f7a1f",
                testid="online",
            ),
        )

    return router
