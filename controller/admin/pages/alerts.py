"""Handling an open alert from the alerts page or ``/api/v1/alerts/{id}/...``: acknowledge it
with a note, assign it to an admin of the area who can see the device. The access middleware
has checked the alert's device lies in the acting admin's area (controller/admin/access.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from controller.admin.access import admin_of
from controller.admin.pages.rendering import Store, form_body, form_lang
from controller.db.models import Alert
from controller.fleet.alert_actions import NOTE_MAX, acknowledge_alert, assign_alert
from muster.clock import Clock
from muster.errors import ConfigError, NotFoundError

__all__ = ["AckRequest", "AlertHandling", "AssignRequest", "alerts_router"]


class AckRequest(BaseModel):
    note: str = Field(max_length=NOTE_MAX, description="what was done or found")


class AssignRequest(BaseModel):
    assignee: str = Field(max_length=32, description="username of an admin of your area")


class AlertHandling(BaseModel):
    id: int
    device_id: str
    kind: str
    acknowledged_at: datetime | None
    acknowledged_by: str
    ack_note: str
    assigned_at: datetime | None
    assigned_to: str
    assigned_by: str


def _view(alert: Alert) -> AlertHandling:
    return AlertHandling(
        id=alert.id,
        device_id=alert.device_id,
        kind=alert.kind,
        acknowledged_at=alert.acknowledged_at,
        acknowledged_by=alert.acknowledged_by,
        ack_note=alert.ack_note,
        assigned_at=alert.assigned_at,
        assigned_to=alert.assigned_to,
        assigned_by=alert.assigned_by,
    )


def alerts_router(sessions: sessionmaker[Session], clock: Clock) -> APIRouter:
    router = APIRouter()
    store = Store(sessions)

    def act(fn: Callable[[Session], Alert]) -> AlertHandling:
        try:
            return store.write(lambda s: _view(fn(s)))
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from exc

    def ack(request: Request, alert_id: int, note: str) -> AlertHandling:
        who = admin_of(request).username
        return act(lambda s: acknowledge_alert(s, alert_id, by=who, note=note, now=clock.now()))

    def assign(request: Request, alert_id: int, assignee: str) -> AlertHandling:
        admin = admin_of(request)
        return act(
            lambda s: assign_alert(
                s, alert_id, to=assignee, by=admin.username, within=admin.prefix, now=clock.now()
            )
        )

    @router.post("/api/v1/alerts/{alert_id}/ack", response_model=AlertHandling, tags=["fleet"])
    def api_ack(request: Request, alert_id: int, body: AckRequest) -> AlertHandling:
        """Acknowledge an open alert with a note; it stays open until its rule clears."""
        return ack(request, alert_id, body.note)

    @router.post("/api/v1/alerts/{alert_id}/assign", response_model=AlertHandling, tags=["fleet"])
    def api_assign(request: Request, alert_id: int, body: AssignRequest) -> AlertHandling:
        """Assign an alert to an admin of your area who can see its device."""
        return assign(request, alert_id, body.assignee)

    def back(lang: str) -> Response:
        return RedirectResponse(f"/alerts?lang={lang}", status_code=303)

    @router.post("/alerts/{alert_id}/ack", include_in_schema=False)
    async def page_ack(request: Request, alert_id: int) -> Response:
        form = form_body(await request.body())
        ack(request, alert_id, form.get("note", "")[: NOTE_MAX + 1])
        return back(form_lang(form))

    @router.post("/alerts/{alert_id}/assign", include_in_schema=False)
    async def page_assign(request: Request, alert_id: int) -> Response:
        form = form_body(await request.body())
        assign(request, alert_id, form.get("assignee", "")[:64])
        return back(form_lang(form))

    return router
