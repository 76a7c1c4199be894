"""The views of records, counts and review events that several page families show or return
(progress, review, reports, audit), and the context every records page renders with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel

from controller.accounts.admins import ROLES
from controller.admin.access import admin_of
from controller.admin.pages.rendering import render
from controller.admin.text import texts
from controller.db.models import Record, ReviewEvent
from controller.records.progress import CAMPAIGN_TZ, PHASES, Counts
from controller.records.review import STATUS_NAMES
from controller.records.review import category_name as _category_name
from muster.regions import LEVEL_NAMES

__all__ = [
    "CountsView",
    "EventView",
    "RecordView",
    "counts_view",
    "event_view",
    "record_page",
    "record_view",
]


class CountsView(BaseModel):
    slice: int
    collected: int
    reviewed: int
    approved: int
    missing: int
    percent: float


class RecordView(BaseModel):
    record_id: str
    township_code: str
    category: str
    name: str
    id_number: str
    status: str
    approved_level: str
    received_at: datetime


class EventView(BaseModel):
    at: datetime
    actor: str
    role: str
    action: str
    township_code: str
    record_id: str | None
    reason: str
    details: dict[str, Any]


def counts_view(c: Counts) -> CountsView:
    return CountsView(
        slice=c.slice,
        collected=c.collected,
        reviewed=c.reviewed,
        approved=c.approved,
        missing=c.missing,
        percent=c.percent,
    )


def record_view(r: Record) -> RecordView:
    person = r.payload.get("person", {})
    return RecordView(
        record_id=r.record_id,
        township_code=r.township_code,
        category=r.category,
        name=str(person.get("name", "")),
        id_number=r.id_number or str(person.get("id_number", "")),
        status=r.review_status,
        approved_level=r.approved_level,
        received_at=r.received_at,
    )


def event_view(e: ReviewEvent) -> EventView:
    return EventView(
        at=e.at,
        actor=e.actor,
        role=e.role,
        action=e.action,
        township_code=e.township_code,
        record_id=e.record_id,
        reason=e.reason,
        details=dict(e.details),
    )


def record_page(
    request: Request, template: str, lang: str, *, status_code: int = 200, **context: Any
) -> Response:
    """A page of the records family, with the admin and the names its tables use, in ``lang``:
    categories, levels and form labels come from the text tables (the Chinese ones are the
    forms' own wording, so a Chinese page reads as the paper form)."""
    admin = admin_of(request)
    t = texts(lang, "records")

    def category_name(value: str) -> str:
        return t.get(f"cat_{value}", value) if lang == "en" else _category_name(value)

    def field_label(field: Any) -> str:
        key, label = str(field.key), str(field.label)
        if lang == "en" or key == "ethnicity":  # the check's label says 民族代码: we show names
            return t.get(f"field_{key}", label)
        return label

    return render(
        request,
        template,
        lang,
        "records",
        status_code=status_code,
        admin=admin,
        role_name=ROLES[admin.role],
        category_name=category_name,
        field_label=field_label,
        status_names=STATUS_NAMES,
        level_names={k: t.get(f"level_{k}", v) for k, v in LEVEL_NAMES.items()},
        phases=PHASES,
        tz=CAMPAIGN_TZ,
        **context,
    )
