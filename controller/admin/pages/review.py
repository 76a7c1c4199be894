"""Reviewing records up the chain: the queue of an area's records by status, a record beside
its initial data field by field with its history, and approving or returning it, as pages and
as ``/api/v1/review`` and ``/api/v1/records/...``."""

from __future__ import annotations

import math
from datetime import datetime

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.admin.access import admin_of, routes_of
from controller.admin.pages.record_views import (
    EventView,
    RecordView,
    event_view,
    record_page,
    record_view,
)
from controller.admin.pages.region_picker import area_regions
from controller.admin.pages.rendering import LANG, REGION, Store, form_body, form_lang
from controller.admin.text import texts
from controller.db.models import PersonRow, Record, ReviewEvent
from controller.records.review import (
    SUPERSEDED,
    approve,
    compare_fields,
    return_record,
    superseded_by,
)
from muster.clock import Clock
from muster.errors import ConfigError
from muster.forms.codelists import ETHNICITIES
from muster.records import ATTACHMENT_MEDIA_TYPES, RECORD_ID_PATTERN

__all__ = ["RecordDetailView", "review_router"]

PER_PAGE = 50
STATUS = "^(|collected|returned|approved|superseded)$"
DONE = "^(|approve|return)$"
PREV = "^(|" + RECORD_ID_PATTERN.strip("^$") + ")$"
ATTACHMENT_ROUTE = "/api/v1/records/{record_id}/attachments/{name}"


class ReturnRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class FieldView(BaseModel):
    key: str
    label: str
    collected: str
    initial: str
    differs: bool


class ClerkStep(BaseModel):
    at: datetime
    clerk: str
    action: str
    note: str


class RecordOrigin(BaseModel):
    """Where and by whom the record was made at the township, as the device sealed it."""

    device_id: str
    entered_by: str
    reviewed_by: str
    collected_at: datetime | None
    steps: list[ClerkStep]
    attachments: list[str]


class RecordDetailView(RecordView):
    fields: list[FieldView]
    origin: RecordOrigin
    superseded_by: str | None = None  # the corrected record that replaced this one


def ethnicity_name(code: str) -> str:
    """``01`` → 汉族 (GB/T 3304 as on the ID card, plus 族); a code not on the list as it is."""
    name = ETHNICITIES.get(code)
    if name is None:
        return code
    return name if code in ("97", "98") else f"{name}族"


def _shown(key: str, value: str) -> str:
    return ethnicity_name(value) if key == "ethnicity" and value else value


def _origin(record: Record) -> RecordOrigin:
    payload = record.payload
    steps = []
    for entry in payload.get("audit", []):
        try:
            at = datetime.fromisoformat(str(entry.get("at", "")))
        except ValueError:
            continue
        steps.append(
            ClerkStep(
                at=at,
                clerk=str(entry.get("clerk", "")),
                action=str(entry.get("action", "")),
                note=str(entry.get("note", "")),
            )
        )
    collected = payload.get("collected_at")
    return RecordOrigin(
        device_id=record.device_id,
        entered_by=str(payload.get("entered_by", "")),
        reviewed_by=str(payload.get("reviewed_by", "")),
        collected_at=datetime.fromisoformat(collected) if isinstance(collected, str) else None,
        steps=steps,
        attachments=[n for n in ATTACHMENT_MEDIA_TYPES if n in payload.get("attachments", {})],
    )


def review_router(sessions: sessionmaker[Session], clock: Clock) -> APIRouter:
    router = APIRouter()
    store = Store(sessions)

    def queue(area: str, status: str, page_no: int) -> tuple[list[RecordView], int]:
        def run(s: Session) -> tuple[list[RecordView], int]:
            where = [Record.township_code.startswith(area)]
            if status:
                where.append(Record.review_status == status)
            total = s.scalar(select(func.count()).select_from(Record).where(*where)) or 0
            rows = s.scalars(
                select(Record)
                .where(*where)
                .order_by(Record.township_code, Record.received_at, Record.record_id)
                .offset((page_no - 1) * PER_PAGE)
                .limit(PER_PAGE)
            )
            return [record_view(r) for r in rows], total

        return store.read(run)

    @router.get("/api/v1/review", response_model=list[RecordView], tags=["review"])
    def api_review(
        request: Request,
        region: str = Query("", pattern=REGION),
        status: str = Query("collected", pattern=STATUS),
        page_no: int = Query(1, alias="page", ge=1),
    ) -> list[RecordView]:
        """Records of your area by review status, 50 a page."""
        return queue(admin_of(request).narrow(region), status, page_no)[0]

    @router.get("/review", response_class=HTMLResponse, include_in_schema=False)
    def review_page(
        request: Request,
        lang: str = Query("zh", pattern=LANG),
        region: str = Query("", pattern=REGION),
        status: str = Query("collected", pattern=STATUS),
        page_no: int = Query(1, alias="page", ge=1),
        done: str = Query("", pattern=DONE),
        prev: str = Query("", pattern=PREV),
    ) -> Response:
        admin = admin_of(request)
        area = admin.narrow(region)
        records, total = queue(area, status, page_no)
        return record_page(
            request,
            "review_list.html",
            lang,
            records=records,
            total=total,
            area=area,
            status=status,
            page_no=page_no,
            pages=max(1, math.ceil(total / PER_PAGE)),
            message=done_message(request, lang, done, prev),
            region_options=store.read(lambda s: area_regions(s, admin.prefix)),
        )

    def detail(record_id: str) -> tuple[RecordDetailView, list[EventView]]:
        def run(s: Session) -> tuple[RecordDetailView, list[EventView]]:
            record = s.get(Record, record_id)
            if record is None:
                raise HTTPException(404, f"没有编号为 {record_id} 的记录")
            person = (
                s.get(PersonRow, (record.township_code, record.id_number))
                if record.id_number
                else None
            )
            initial_category = str(person.details.get("category", "")) if person else ""
            fields = [
                FieldView(
                    key=f.key,
                    label=f.label,
                    # The category as its code, which the page names in the page's language.
                    collected=record.category
                    if f.key == "category"
                    else _shown(f.key, f.collected),
                    initial=initial_category if f.key == "category" else _shown(f.key, f.initial),
                    differs=f.differs,
                )
                for f in compare_fields(record, person)
            ]
            events = [
                event_view(e)
                for e in s.scalars(
                    select(ReviewEvent)
                    .where(ReviewEvent.record_id == record_id)
                    .order_by(ReviewEvent.at)
                )
            ]
            view = RecordDetailView(
                **record_view(record).model_dump(),
                fields=fields,
                origin=_origin(record),
                superseded_by=superseded_by(s, record_id)
                if record.review_status == SUPERSEDED
                else None,
            )
            return view, events

        return store.read(run)

    @router.get("/api/v1/records/{record_id}", response_model=RecordDetailView, tags=["review"])
    def api_record(record_id: str) -> RecordDetailView:
        """A record's fields beside the initial data, field by field."""
        return detail(record_id)[0]

    def act(request: Request, record_id: str, action: str, reason: str) -> Record:
        admin = admin_of(request)
        now = clock.now()
        if action == "approve":
            return store.write(lambda s: approve(s, record_id, admin, now))
        if action == "return":
            return store.write(lambda s: return_record(s, record_id, admin, reason, now))
        raise ConfigError("操作应为 approve（通过）或 return（退回）")

    @router.post("/api/v1/records/{record_id}/approve", response_model=RecordView, tags=["review"])
    def api_approve(request: Request, record_id: str) -> RecordView:
        try:
            return record_view(act(request, record_id, "approve", ""))
        except ConfigError as exc:
            raise HTTPException(409, str(exc)) from exc

    @router.post("/api/v1/records/{record_id}/return", response_model=RecordView, tags=["review"])
    def api_return(request: Request, record_id: str, body: ReturnRequest) -> RecordView:
        """Send a record back to its township; the reason reaches the township's devices."""
        try:
            return record_view(act(request, record_id, "return", body.reason))
        except ConfigError as exc:
            raise HTTPException(409, str(exc)) from exc

    def done_message(request: Request, lang: str, done: str, prev: str) -> str:
        """ "已通过：张三" after a decision, read back from the record and its last event, so a
        link cannot make the page say what did not happen; nothing for a record out of scope."""
        if not done or not prev:
            return ""
        admin = admin_of(request)

        def run(s: Session) -> str:
            record = s.get(Record, prev)
            if record is None or not admin.covers(record.township_code):
                return ""
            last = s.scalars(
                select(ReviewEvent)
                .where(ReviewEvent.record_id == prev)
                .order_by(ReviewEvent.at.desc(), ReviewEvent.id.desc())
                .limit(1)
            ).first()
            if last is None or last.action != done:
                return ""
            name = record_view(record).name
            return texts(lang, "records")[f"done_{done}"].format(name=name, reason=last.reason)

        return store.read(run)

    def one_record_page(
        request: Request,
        record_id: str,
        lang: str,
        error: str = "",
        status_code: int = 200,
        message: str = "",
    ) -> Response:
        record, events = detail(record_id)
        return record_page(
            request,
            "review_record.html",
            lang,
            status_code=status_code,
            r=record,
            events=events,
            error=error,
            message=message,
            can_review=admin_of(request).can("review"),
            attachments_served=("GET", ATTACHMENT_ROUTE) in routes_of(request.app),
        )

    @router.get("/review/{record_id}", response_class=HTMLResponse, include_in_schema=False)
    def record_detail(
        request: Request,
        record_id: str,
        lang: str = Query("zh", pattern=LANG),
        done: str = Query("", pattern=DONE),
        prev: str = Query("", pattern=PREV),
    ) -> Response:
        message = done_message(request, lang, done, prev)
        return one_record_page(request, record_id, lang, message=message)

    @router.post("/review/{record_id}", include_in_schema=False)
    async def record_submit(request: Request, record_id: str) -> Response:
        """First the confirmation page, then (with ``confirm=yes``) the decision itself."""
        form = form_body(await request.body())
        lang = form_lang(form)
        action, reason = form.get("action", ""), form.get("reason", "").strip()
        t = texts(lang, "records")
        if action not in ("approve", "return"):
            error = "操作应为 approve（通过）或 return（退回）"
            return one_record_page(request, record_id, lang, error=error, status_code=400)
        if action == "return" and not reason:
            return one_record_page(
                request, record_id, lang, error=t["need_reason"], status_code=400
            )
        if form.get("confirm") != "yes":
            shown, _events = detail(record_id)
            return record_page(
                request, "review_confirm.html", lang, r=shown, action=action, reason=reason
            )
        try:
            record = act(request, record_id, action, reason)
        except ConfigError as exc:
            return one_record_page(request, record_id, lang, error=str(exc), status_code=409)
        after = f"lang={lang}&done={action}&prev={record_id}"
        # On to the next record of the same township still to review, as a reviewer works.
        following = queue(record.township_code, "collected", 1)[0]
        if following:
            return RedirectResponse(f"/review/{following[0].record_id}?{after}", status_code=303)
        return RedirectResponse(
            f"/review?region={record.township_code[:9]}&{after}", status_code=303
        )

    return router
