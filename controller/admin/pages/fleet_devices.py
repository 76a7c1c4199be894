"""The device list (filters, search, pages), a device's page (state history, events, alerts,
commands, licence, outbox, software update history with a retry of a failed update), and commands issued from that page or ``/api/v1/...commands``."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.admin import fleet_queries as q
from controller.admin.access import admin_of
from controller.admin.charts import bar_chart
from controller.admin.pages.region_picker import area_regions
from controller.admin.pages.rendering import LANG, REGION, Store, form_body, form_lang, render
from controller.admin.release_pages import device_updates
from controller.admin.text import texts
from controller.db.models import Command
from controller.fleet.commands import OPEN_STATES, issue_command
from controller.fleet.rules import STATES
from muster import commands as catalogue
from muster.clock import Clock
from muster.errors import ConfigError
from muster.region_names import describe

__all__ = ["CommandRequest", "CommandView", "fleet_devices_router", "parse_arguments"]


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


def parse_arguments(text: str) -> dict[str, str]:
    """``key=value`` lines of the command form; a line without ``=`` is named in the error."""
    arguments: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"参数第 {number} 行应写成 key=value：{line.strip()!r}")
        arguments[key.strip()] = value.strip()
    return arguments


def fleet_devices_router(sessions: sessionmaker[Session], clock: Clock) -> APIRouter:
    router = APIRouter()
    store = Store(sessions)

    def issue(device_id: str, body: CommandRequest, issued_by: str) -> Command:
        expires = timedelta(seconds=body.expires_in_s) if body.expires_in_s else None
        return store.write(
            lambda s: issue_command(
                s,
                device_id,
                body.kind,
                body.arguments,
                now=clock.now(),
                expires_in=expires,
                issued_by=issued_by,
            )
        )

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
        return store.read(
            lambda s: [
                _command_view(c)
                for c in s.scalars(
                    select(Command)
                    .where(Command.device_id == device_id)
                    .order_by(Command.issued_at.desc())
                    .limit(200)
                )
            ]
        )

    @router.get("/api/v1/commands/{command_id}", response_model=CommandView, tags=["commands"])
    def api_command(command_id: str) -> CommandView:
        with sessions() as session:
            command = session.get(Command, command_id)
            if command is None:
                raise HTTPException(status_code=404, detail=f"no command {command_id}")
            return _command_view(command)

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
        admin = admin_of(request)
        region = admin.narrow(region)
        f = q.DeviceFilter(region, state, alerting, q_, page_no)
        result = store.read(lambda s: q.devices(s, f))
        pages = max(1, math.ceil(result.total / f.per_page))
        base = {"lang": lang, "region": region, "state": state, "q": q_}
        if alerting:
            base["alerting"] = "true"
        return render(
            request,
            "fleet_devices.html",
            lang,
            "fleet",
            result=result,
            f=f,
            pages=pages,
            states=STATES,
            region_path=describe(region) if region else "",
            region_options=store.read(lambda s: area_regions(s, admin.prefix)),
            link=lambda **extra: "?" + urlencode({**base, **extra}),
        )

    def device_page(
        request: Request, device_id: str, lang: str, error: str = "", status_code: int = 200
    ) -> Response:
        now = clock.now()
        detail = store.read(lambda s: q.device_detail(s, device_id, now))
        if detail is None:
            raise HTTPException(status_code=404, detail=f"没有这台设备：{device_id}")
        return render(
            request,
            "fleet_device.html",
            lang,
            "fleet",
            status_code=status_code,
            d=detail.device,
            detail=detail,
            region_path=describe(detail.device.township_code[:9]),
            kinds=list(catalogue.KINDS),
            waiting=any(c.state in OPEN_STATES for c in detail.commands),
            chart=bar_chart(
                detail.records_per_hour,
                title=texts(lang, "fleet")["records_hour"].format(h=24),
                testid="device-rph",
            ),
            updates=store.read(lambda s: device_updates(s, device_id)),
            rt=texts(lang, "releases"),
            error=error,
        )

    @router.get("/devices/{device_id}", response_class=HTMLResponse, include_in_schema=False)
    def device(request: Request, device_id: str, lang: str = Query("zh", pattern=LANG)) -> Response:
        return device_page(request, device_id, lang)

    @router.post("/devices/{device_id}/commands", include_in_schema=False)
    async def device_command(request: Request, device_id: str) -> Response:
        form = form_body(await request.body())
        lang = form_lang(form)
        try:
            minutes = float(form.get("valid_minutes") or 0)
            body = CommandRequest(
                kind=form.get("kind", ""),
                arguments=parse_arguments(form.get("arguments", "")),
                expires_in_s=minutes * 60 if minutes else None,
            )
            issue(device_id, body, admin_of(request).username)
        except (ConfigError, ValueError) as exc:
            return device_page(request, device_id, lang, error=str(exc), status_code=400)
        return RedirectResponse(f"/devices/{device_id}?lang={lang}", status_code=303)

    return router
