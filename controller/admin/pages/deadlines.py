"""Phase deadlines (collection, declaration, review) of the admin's area, as a page with a form
and as ``/api/v1/deadlines``."""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from controller.admin.access import admin_of
from controller.admin.pages.record_views import record_page
from controller.admin.pages.region_picker import area_regions
from controller.admin.pages.rendering import LANG, Store, form_body, form_lang
from controller.records.progress import list_deadlines, set_deadline
from muster.clock import Clock
from muster.errors import ConfigError

__all__ = ["DeadlineRequest", "DeadlineView", "deadlines_router"]


class DeadlineRequest(BaseModel):
    region: str = Field(pattern=r"^\d{0,9}$", description="region prefix; default your own area")
    due: date = Field(description="last day of the phase (Beijing time)")


class DeadlineView(BaseModel):
    phase: str
    region: str
    due_at: datetime
    set_by: str


def deadlines_router(sessions: sessionmaker[Session], clock: Clock) -> APIRouter:
    router = APIRouter()
    store = Store(sessions)

    def deadline_views(area: str) -> list[DeadlineView]:
        return [
            DeadlineView(phase=d.phase, region=d.region_prefix, due_at=d.due_at, set_by=d.set_by)
            for d in store.read(lambda s: list_deadlines(s, area))
        ]

    def save_deadline(request: Request, phase: str, body: DeadlineRequest) -> DeadlineView:
        admin = admin_of(request)
        region = admin.narrow(body.region)
        now = clock.now()
        row = store.write(lambda s: set_deadline(s, phase, region, body.due, admin.username, now))
        return DeadlineView(
            phase=row.phase, region=row.region_prefix, due_at=row.due_at, set_by=row.set_by
        )

    @router.get("/api/v1/deadlines", response_model=list[DeadlineView], tags=["progress"])
    def api_deadlines(request: Request) -> list[DeadlineView]:
        return deadline_views(admin_of(request).prefix)

    @router.put("/api/v1/deadlines/{phase}", response_model=DeadlineView, tags=["progress"])
    def api_set_deadline(request: Request, phase: str, body: DeadlineRequest) -> DeadlineView:
        """Set the last day of a phase (collection, declaration, review) in your area."""
        try:
            return save_deadline(request, phase, body)
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from exc

    @router.get("/deadlines", response_class=HTMLResponse, include_in_schema=False)
    def deadlines_page(request: Request, lang: str = Query("zh", pattern=LANG)) -> Response:
        admin = admin_of(request)
        return record_page(
            request,
            "deadlines.html",
            lang,
            deadlines=deadline_views(admin.prefix),
            error="",
            region_options=store.read(lambda s: area_regions(s, admin.prefix)),
        )

    @router.post("/deadlines", include_in_schema=False)
    async def deadlines_submit(request: Request) -> Response:
        form = form_body(await request.body())
        lang = form_lang(form)
        admin = admin_of(request)
        try:
            body = DeadlineRequest.model_validate(
                {"region": form.get("region", admin.prefix), "due": form.get("due", "")}
            )
            save_deadline(request, form.get("phase", ""), body)
        except (ConfigError, ValueError) as exc:
            message = (
                str(exc)
                if isinstance(exc, ConfigError)
                else "日期应写成 YYYY-MM-DD，地区为数字代码"
            )
            return record_page(
                request,
                "deadlines.html",
                lang,
                status_code=400,
                deadlines=deadline_views(admin.prefix),
                error=message,
                region_options=store.read(lambda s: area_regions(s, admin.prefix)),
            )
        return RedirectResponse(f"/deadlines?lang={lang}", status_code=303)

    return router
