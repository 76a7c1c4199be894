"""The review chain's audit (who declared, approved, returned or took in what, and when) of the
admin's area, and the refused requests national admins and auditors may read."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.accounts.admins import AccessDenied
from controller.admin.access import admin_of
from controller.admin.pages.record_views import EventView, event_view, record_page
from controller.admin.pages.rendering import LANG, REGION, Store
from controller.db.models import AccessDenial, ReviewEvent

__all__ = ["audit_router"]


def audit_router(sessions: sessionmaker[Session]) -> APIRouter:
    router = APIRouter()
    store = Store(sessions)

    def events(area: str, limit: int = 500) -> list[EventView]:
        return store.read(
            lambda s: [
                event_view(e)
                for e in s.scalars(
                    select(ReviewEvent)
                    .where(ReviewEvent.township_code.startswith(area))
                    .order_by(ReviewEvent.at.desc())
                    .limit(limit)
                )
            ]
        )

    @router.get("/api/v1/audit", response_model=list[EventView], tags=["review"])
    def api_audit(request: Request, region: str = Query("", pattern=REGION)) -> list[EventView]:
        """The review chain's audit in your area, newest first."""
        return events(admin_of(request).narrow(region))

    @router.get("/audit", response_class=HTMLResponse, include_in_schema=False)
    def audit_page(
        request: Request,
        lang: str = Query("zh", pattern=LANG),
        region: str = Query("", pattern=REGION),
    ) -> Response:
        area = admin_of(request).narrow(region)
        return record_page(request, "audit.html", lang, events=events(area), area=area)

    @router.get("/api/v1/denials", tags=["admin"])
    def api_denials(
        request: Request, limit: int = Query(200, ge=1, le=5000)
    ) -> list[dict[str, Any]]:
        """Refused requests (national admins and auditors only: they name no region)."""
        if admin_of(request).prefix:
            raise AccessDenied("拒绝访问记录涉及全国，只有全国范围的管理员可以查看")
        return store.read(
            lambda s: [
                {
                    "at": d.at,
                    "username": d.username,
                    "method": d.method,
                    "path": d.path,
                    "reason": d.reason,
                }
                for d in s.scalars(
                    select(AccessDenial).order_by(AccessDenial.id.desc()).limit(limit)
                )
            ]
        )

    return router
