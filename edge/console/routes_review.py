"""复核: a second clerk checks a record another clerk entered, and passes it on to be signed
or sends it back with a note. The entering clerk is refused (:func:`workflow.review`)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from edge.console.deps import Pages
from edge.console.workflow import WorkflowError, review

__all__ = ["review_routes"]


def review_routes(pages: Pages) -> APIRouter:
    router = APIRouter()

    @router.post("/records/{record_id}/review", response_class=HTMLResponse)
    async def review_(request: Request, record_id: str) -> HTMLResponse:
        session = pages.require(request)
        form = await pages.posted(request, session)
        draft = await asyncio.to_thread(pages.load, record_id)
        try:
            reviewed = review(
                draft,
                clerk=session.clerk.username,
                now=pages.now(),
                approve=form.get("decision") == "approve",
                note=str(form.get("note", "")),
            )
        except WorkflowError as exc:
            status = 403 if exc.code == "same_clerk" else 409
            return pages.record_page(request, session, draft, error=str(exc), status_code=status)
        await asyncio.to_thread(pages.services.drafts.save, reviewed)
        message = "复核通过，请本人签字" if reviewed.state == "reviewed" else "已退回录入人修改"
        return pages.record_page(request, session, reviewed, message=message)

    return router
