"""The home page: the tasks from the centre, search of the township's initial data with each
person already collected here marked (a draft to open, sealed, uploaded), the clerk's own
drafts and the others' by where each stands (to type, to check for another clerk (复核), to
sign, to seal), the clerks' counts and what was sealed today."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from edge.console.centre_list import (
    STATE_NAMES,
    clerk_counts,
    local_day,
    marks,
    task_items,
)
from edge.console.deps import Pages

__all__ = ["search_routes"]


def search_routes(pages: Pages) -> APIRouter:
    router = APIRouter()
    s = pages.services

    def gather() -> dict[str, Any]:
        drafts = s.drafts.all()
        sealed = s.drafts.sealed()
        states = s.outbox_states([e.record_id for e in sealed])
        centre = s.centre
        items = task_items(
            returned=centre.returned() if centre else [],
            rejected=s.rejected(),
            tasks=centre.tasks() if centre else [],
            answers=centre.answers() if centre else [],
            drafts=drafts,
            sealed=sealed,
            states=states,
        )
        return {
            "drafts": drafts,
            "sealed_log": sealed,
            "states": states,
            "tasks": items,
            "marks": marks(drafts, sealed, states),
        }

    @router.get("/", response_class=HTMLResponse)
    async def home(
        request: Request, q: str = "", sealed: str = "", answered: str = ""
    ) -> HTMLResponse:
        session = pages.require(request)
        q = q[:100]
        results = await asyncio.to_thread(s.people.search, q) if q.strip() else []
        got = await asyncio.to_thread(gather)
        drafts = got["drafts"]
        me = session.clerk.username
        mine = [d for d in drafts if d.state == "draft" and d.created_by == me]
        groups = [
            ("我的录入", mine),
            (
                "其他工作人员的录入",
                [d for d in drafts if d.state == "draft" and d.created_by != me],
            ),
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
        today = pages.now()
        log = got["sealed_log"]
        just_sealed = next((e for e in log if e.record_id == sealed), None)
        counts = clerk_counts(log, today)
        return pages.render(
            request,
            "home.html",
            session,
            q=q,
            results=results,
            searched=bool(q.strip()),
            people_count=await asyncio.to_thread(s.people.count),
            groups=groups,
            sealed=just_sealed,
            answered=bool(answered),
            tasks=got["tasks"],
            marks=got["marks"],
            my_count=next((c for c in counts if c.username == me), None),
            counts=counts,
            names={c.username: s.accounts.display_name(c.username) for c in counts},
            sealed_today=[e for e in log if local_day(e.sealed_at) == local_day(today)],
            states=got["states"],
            outbox_state_names=STATE_NAMES,
        )

    return router
