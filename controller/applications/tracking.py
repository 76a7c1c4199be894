"""Tracking: an application's items with their status and history, and per department what is
waiting on it and what is overdue. Read-only queries shared by the applicant's page, the
service centre and the department dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controller.db.models import Application, ApplicationItem, Delivery, Department, ItemEvent

__all__ = [
    "OPEN_STATES",
    "DepartmentLoad",
    "EventView",
    "ItemView",
    "department_loads",
    "items_of",
    "waiting_on",
]

OPEN_STATES = ("queued", "delivered", "received", "accepted", "more_materials")


@dataclass(frozen=True, slots=True)
class EventView:
    state: str
    source: str
    message: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ItemView:
    id: int
    application_id: str
    code: str
    department: str
    state: str
    message: str
    wanted: list[str]
    appointment_at: datetime | None
    place: str
    bring: list[str]
    due_at: datetime | None
    overdue: bool
    attempts: int
    last_error: str
    history: list[EventView]


def _overdue(item: ApplicationItem, now: datetime) -> bool:
    return item.state in OPEN_STATES and item.due_at is not None and now > item.due_at


def items_of(session: Session, application_id: str, now: datetime) -> list[ItemView]:
    out = []
    rows = session.scalars(
        select(ApplicationItem)
        .where(ApplicationItem.application_id == application_id)
        .order_by(ApplicationItem.id)
    )
    for item in rows:
        out.append(_view(session, item, now))
    return out


def _view(session: Session, item: ApplicationItem, now: datetime) -> ItemView:
    department = session.get(Department, item.department_id) if item.department_id else None
    latest = session.scalar(
        select(Delivery)
        .where(Delivery.item_id == item.id)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
        .limit(1)
    )
    history = [
        EventView(e.state, e.source, e.message, e.at)
        for e in session.scalars(
            select(ItemEvent).where(ItemEvent.item_id == item.id).order_by(ItemEvent.id)
        )
    ]
    return ItemView(
        item.id,
        item.application_id,
        item.code,
        department.name if department else "",
        item.state,
        item.message,
        list(item.wanted),
        item.appointment_at,
        item.place,
        list(item.bring),
        item.due_at,
        _overdue(item, now),
        latest.attempts if latest else 0,
        latest.last_error if latest else "",
        history,
    )


@dataclass(frozen=True, slots=True)
class DepartmentLoad:
    id: int
    kind: str
    name: str
    enabled: bool
    by_state: dict[str, int]
    overdue: int
    pending_deliveries: int


def department_loads(
    session: Session, now: datetime, region_prefix: str = ""
) -> list[DepartmentLoad]:
    """Every department whose region lies within ``region_prefix`` (or contains it)."""
    out = []
    for d in session.scalars(select(Department).order_by(Department.id)):
        if not (
            d.region_prefix.startswith(region_prefix) or region_prefix.startswith(d.region_prefix)
        ):
            continue
        counts = dict(
            session.execute(
                select(ApplicationItem.state, func.count())
                .where(ApplicationItem.department_id == d.id)
                .group_by(ApplicationItem.state)
            ).all()
        )
        overdue = session.scalar(
            select(func.count())
            .select_from(ApplicationItem)
            .where(
                ApplicationItem.department_id == d.id,
                ApplicationItem.state.in_(OPEN_STATES),
                ApplicationItem.due_at < now,
            )
        )
        pending = session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.department_id == d.id, Delivery.state == "pending")
        )
        out.append(
            DepartmentLoad(
                d.id,
                d.kind,
                d.name,
                d.enabled,
                {str(k): int(v) for k, v in counts.items()},
                int(overdue or 0),
                int(pending or 0),
            )
        )
    return out


def waiting_on(
    session: Session, department_id: int, now: datetime, township_prefix: str = ""
) -> list[ItemView]:
    """Open items at one department, overdue first, then oldest first."""
    rows = session.scalars(
        select(ApplicationItem)
        .join(Application, Application.id == ApplicationItem.application_id)
        .where(
            ApplicationItem.department_id == department_id,
            ApplicationItem.state.in_(OPEN_STATES),
            Application.township.startswith(township_prefix, autoescape=True),
        )
        .order_by(ApplicationItem.due_at, ApplicationItem.id)
        .limit(500)
    )
    views = [_view(session, item, now) for item in rows]
    return sorted(views, key=lambda v: (not v.overdue, v.due_at or now))
