"""The collection form: start a draft (from a person found in the initial data, or blank),
show it, save what was typed and submit it for 复核. A person who already has a draft here is
opened in it; one already sealed here is refused, so nobody is collected twice."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from edge.console.centre_list import Mark, marks
from edge.console.deps import Pages
from edge.console.workflow import WorkflowError, new_draft, submit
from muster.records import Category

__all__ = ["draft_routes"]


def draft_routes(pages: Pages) -> APIRouter:
    router = APIRouter()
    s = pages.services

    def already_held(id_number: str) -> Mark | None:
        sealed = s.drafts.sealed()
        states = s.outbox_states([e.record_id for e in sealed])
        return marks(s.drafts.all(), sealed, states).get(id_number.strip().upper())

    @router.post("/records")
    async def create(request: Request) -> Response:
        session = pages.require(request)
        form = await pages.posted(request, session)
        id_number = str(form.get("id_number", "")).strip()
        try:
            pages.refuse_if_unlicensed()
            details = None
            if id_number:
                held = await asyncio.to_thread(already_held, id_number)
                if held is not None and held.draft:
                    # The person is being collected already: open that record, not a blank one.
                    return RedirectResponse(f"/records/{held.record_id}", status_code=303)
                if held is not None:
                    raise WorkflowError(
                        "duplicate",
                        f"此人已采集（{held.state}），不能重复采集；如需更正，请等待县级退回后"
                        "在首页“中心下发的任务”中处理",
                    )
                found = await asyncio.to_thread(s.people.find, id_number)
                if found is None:
                    raise WorkflowError("unknown", "初始数据中没有这个人，请重新搜索")
                details = found.details
            category = str(form.get("category", "")) or (
                str(details["category"]) if details else Category.RETIRED_SOLDIER.value
            )
            draft = new_draft(
                record_id=s.new_id(),
                clerk=session.clerk.username,
                now=pages.now(),
                category=category,
                details=details,
            )
        except WorkflowError as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None
        await asyncio.to_thread(s.drafts.save, draft)
        return RedirectResponse(f"/records/{draft.record_id}", status_code=303)

    @router.get("/records/{record_id}", response_class=HTMLResponse)
    async def show(request: Request, record_id: str) -> HTMLResponse:
        session = pages.require(request)
        draft = await asyncio.to_thread(pages.load, record_id)
        return pages.record_page(request, session, draft)

    @router.post("/records/{record_id}/save", response_class=HTMLResponse)
    async def save(request: Request, record_id: str) -> HTMLResponse:
        session = pages.require(request)
        form = await pages.posted(request, session)
        draft = await asyncio.to_thread(pages.load, record_id)
        try:
            changed, refused = pages.save_typed(draft, form, session.clerk.username)
        except WorkflowError as exc:
            return pages.record_page(request, session, draft, error=str(exc), status_code=409)
        await asyncio.to_thread(s.drafts.save, changed)
        if str(form.get("then", "")) == "submit" and not refused:
            try:
                pages.refuse_if_unlicensed()
                submitted = submit(changed, clerk=session.clerk.username, now=pages.now())
            except WorkflowError as exc:
                return pages.record_page(request, session, changed, error=str(exc), status_code=409)
            await asyncio.to_thread(s.drafts.save, submitted)
            return pages.record_page(
                request, session, submitted, message="已提交，等待另一名工作人员复核"
            )
        if refused:
            return pages.record_page(
                request,
                session,
                changed,
                error="以下内容含有部队番号或代号，未保存："
                + "；".join(p.message for p in refused),
                status_code=422,
            )
        return pages.record_page(request, session, changed, message="草稿已保存")

    return router
