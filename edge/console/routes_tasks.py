"""Tasks from the centre: a record the county returned or the centre refused is corrected from
its earlier values, a comparison's problem or missing person is corrected or collected; each
opens a draft that goes through 复核, signature and sealing like any other. A comparison task
may instead be answered "the department is wrong" with a reason, which goes up with the next
Health call."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from edge.centre_tasks import AnswerRefused
from edge.console.centre_list import RECORD_ID, TASK_ID, describe_task
from edge.console.deps import Pages
from edge.console.workflow import (
    PERSON_KEYS,
    Draft,
    WorkflowError,
    correction_draft,
    initial_values,
)

__all__ = ["task_routes"]


def task_routes(pages: Pages) -> APIRouter:
    router = APIRouter()
    s = pages.services

    def existing(corrects: str = "", task_id: str = "") -> Draft | None:
        for d in s.drafts.all():
            if (corrects and d.corrects == corrects) or (task_id and d.task_id == task_id):
                return d
        return None

    def from_slice(id_number: str) -> dict[str, Any] | None:
        found = s.people.find(id_number) if id_number else None
        return found.details if found is not None else None

    def start(kind: str, ident: str, clerk: str) -> Draft:
        now = pages.now()
        if kind == "returned":
            if not RECORD_ID.fullmatch(ident):
                raise HTTPException(status_code=404, detail="记录编号无效：请从首页的任务列表打开")
            entry = next(
                (r for r in (s.centre.returned() if s.centre else []) if r["record_id"] == ident),
                None,
            )
            if entry is None:
                raise HTTPException(status_code=404, detail="县级没有退回这条记录（或已处理）")
            values = entry.get("values") or _values_of(from_slice(entry["id_number"]))
            return correction_draft(
                record_id=s.new_id(),
                clerk=clerk,
                now=now,
                values=values,
                note=f"县级退回：{entry['reason']}",
                corrects=ident,
            )
        if kind == "rejected":
            if not RECORD_ID.fullmatch(ident):
                raise HTTPException(status_code=404, detail="记录编号无效：请从首页的任务列表打开")
            refused = next((r for r in s.rejected() if r[0] == ident), None)
            if refused is None:
                raise HTTPException(status_code=404, detail="中心没有拒收这条记录")
            earlier = next((e for e in s.drafts.sealed() if e.record_id == ident), None)
            return correction_draft(
                record_id=s.new_id(),
                clerk=clerk,
                now=now,
                values=earlier.values if earlier else {},
                note=f"中心拒收：{refused[2] or refused[1]}",
                corrects=ident,
            )
        if not TASK_ID.fullmatch(ident):
            raise HTTPException(status_code=404, detail="任务编号无效：请从首页的任务列表打开")
        task = s.centre.task(ident) if s.centre else None
        if task is None:
            raise HTTPException(status_code=404, detail="没有这个任务（可能已被中心关闭）")
        details = from_slice(str(task.get("id_number", "")))
        if details is not None:
            values = _values_of(details)
        else:
            who = task.get("person") or {}
            values = {
                "person": {
                    "name": str(who.get("name") or task.get("name", "")),
                    "id_number": str(who.get("id_number") or task.get("id_number", "")),
                    "sex": str(who.get("sex", "")),
                    "birth_date": str(who.get("birth_date", "")),
                },
                "fields": {"address": str(who.get("address", ""))} if who.get("address") else {},
            }
        return correction_draft(
            record_id=s.new_id(),
            clerk=clerk,
            now=now,
            values=values,
            note=describe_task(task),
            task_id=ident,
        )

    @router.post("/tasks/{kind}/{ident}/start")
    async def start_(request: Request, kind: str, ident: str) -> Response:
        session = pages.require(request)
        await pages.posted(request, session)
        if kind not in ("returned", "rejected", "centre"):
            raise HTTPException(status_code=404, detail="没有这类任务")
        if len(ident) > 40:
            raise HTTPException(status_code=404, detail="任务编号无效：请从首页的任务列表打开")
        try:
            pages.refuse_if_unlicensed()
        except WorkflowError as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None
        key = {"corrects": ident} if kind != "centre" else {"task_id": ident}
        draft = await asyncio.to_thread(existing, **key)
        if draft is None:
            draft = await asyncio.to_thread(start, kind, ident, session.clerk.username)
            await asyncio.to_thread(s.drafts.save, draft)
        return RedirectResponse(f"/records/{draft.record_id}", status_code=303)

    @router.post("/tasks/centre/{task_id}/dispute", response_class=HTMLResponse)
    async def dispute(request: Request, task_id: str) -> Response:
        session = pages.require(request)
        form = await pages.posted(request, session)
        if not TASK_ID.fullmatch(task_id) or s.centre is None:
            raise HTTPException(status_code=404, detail="任务编号无效：请从首页的任务列表打开")
        try:
            await asyncio.to_thread(
                s.centre.answer,
                task_id,
                reason=str(form.get("reason", ""))[:10_000],
                clerk=session.clerk.username,
                now=pages.now(),
            )
        except AnswerRefused as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        return RedirectResponse("/?answered=1#tasks", status_code=303)

    return router


def _values_of(details: dict[str, Any] | None) -> dict[str, Any]:
    """A person of the initial data as the earlier values of a correction."""
    if not details:
        return {}
    flat = initial_values(details)
    return {
        "person": {k: flat.get(k, "") for k in PERSON_KEYS},
        "category": flat.get("category", ""),
        "relation": flat.get("relation", ""),
        "fields": {
            k: v for k, v in flat.items() if k not in (*PERSON_KEYS, "category", "relation")
        },
    }
