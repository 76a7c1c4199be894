"""The home page: search the township's initial data, and the clerk's lists of drafts by where
each stands (to type, to check for another clerk (复核), to sign, to seal)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from edge.console.deps import Pages

__all__ = ["search_routes"]


def search_routes(pages: Pages) -> APIRouter:
    router = APIRouter()
    s = pages.services

    @router.get("/", response_class=HTMLResponse)
    async def home(request: Request, q: str = "", sealed: str = "") -> HTMLResponse:
        session = pages.require(request)
        results = await asyncio.to_thread(s.people.search, q) if q.strip() else []
        drafts = await asyncio.to_thread(s.drafts.all)
        me = session.clerk.username
        groups = [
            ("我的录入", [d for d in drafts if d.state == "draft"]),
            (
                "待复核（由他人录入）",
                [d for d in drafts if d.state == "entered" and d.entered_by != me],
            ),
            (
                "我录入、待他人复核",
                [d for d in drafts if d.state == "entered" and d.entered_by == me],
            ),
            ("待本人签字", [d for d in drafts if d.state == "reviewed"]),
            ("待封存", [d for d in drafts if d.state == "signed"]),
        ]
        return pages.render(
            request,
            "home.html",
            session,
            q=q,
            results=results,
            searched=bool(q.strip()),
            people_count=await asyncio.to_thread(s.people.count),
            groups=groups,
            sealed=sealed,
        )

    return router
