"""Departments' status callbacks: verified, checked against the item's state table, applied
once. Every refusal names its reason (a stable code and a message) and changes nothing; a
callback sent again with the same webhook-id and body is answered as applied and changes
nothing either (so a department may retry freely)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.applications.store import record_event
from controller.db.models import ApplicationItem, Delivery, Department, SeenCallback
from muster.application_wire import TRANSITIONS, CallbackRefused, parse_callback, verify
from muster.one_application import MATERIALS

__all__ = ["HTTP_STATUS", "apply_callback"]

# What the public endpoint answers for each refusal.
HTTP_STATUS: Final[dict[str, int]] = {
    "unknown_department": 404,
    "missing_headers": 401,
    "bad_headers": 401,
    "stale_timestamp": 401,
    "bad_signature": 401,
    "replayed_id": 409,
    "bad_body": 400,
    "bad_status": 400,
    "too_large": 413,
    "unknown_delivery": 404,
    "superseded_delivery": 409,
    "bad_transition": 409,
    "unknown_material": 400,
}


def apply_callback(
    session: Session,
    department_id: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime,
) -> dict[str, object]:
    """Apply one callback in the caller's transaction; raises :class:`CallbackRefused`."""
    department = session.get(Department, department_id)
    if department is None or not department.enabled:
        raise CallbackRefused("unknown_department", f"no enabled department {department_id}")
    msg_id = verify(department.secret, headers, body, now=now)
    digest = hashlib.sha256(body).hexdigest()
    seen = session.get(SeenCallback, msg_id)
    if seen is not None:
        if seen.department_id == department.id and seen.body_sha256 == digest:
            return {"applied": False, "duplicate": True}
        raise CallbackRefused(
            "replayed_id", "this webhook-id was already used for another message; use a new id"
        )
    callback = parse_callback(body)
    delivery = session.get(Delivery, callback.delivery_id)
    if delivery is None or delivery.department_id != department.id:
        raise CallbackRefused(
            "unknown_delivery", f"no delivery {callback.delivery_id!r} was sent to this department"
        )
    latest = session.scalar(
        select(Delivery.id)
        .where(Delivery.item_id == delivery.item_id)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
        .limit(1)
    )
    item = session.get(ApplicationItem, delivery.item_id, with_for_update=True)
    assert item is not None
    if latest != delivery.id:
        raise CallbackRefused(
            "superseded_delivery", "a newer delivery of this item was sent; report on that one"
        )
    unknown = [m for m in callback.materials if m not in MATERIALS]
    if unknown:
        raise CallbackRefused("unknown_material", f"no such materials: {', '.join(unknown)}")
    current = "delivered" if item.state == "queued" else item.state
    if callback.status == current:
        session.add(
            SeenCallback(
                id=msg_id, department_id=department.id, body_sha256=digest, received_at=now
            )
        )
        return {"applied": False, "duplicate": False, "state": current}
    if callback.status not in TRANSITIONS.get(current, ()):
        raise CallbackRefused(
            "bad_transition", f"an item that is {current!r} cannot become {callback.status!r}"
        )
    if delivery.state == "pending":  # the callback proves the department has it
        delivery.state, delivery.sent_at = "sent", now
    if item.state == "queued":  # its answer overtook our marking it sent
        record_event(session, item, "delivered", "controller", "已送达部门", now)
    if callback.status == "accepted":
        item.appointment_at = (
            datetime.fromisoformat(callback.appointment_at) if callback.appointment_at else None
        )
        item.place = callback.place or department.place
        item.bring = list(callback.bring)
    if callback.status == "more_materials":
        item.wanted = list(callback.materials)
    record_event(session, item, callback.status, "department", callback.message, now)
    session.add(
        SeenCallback(id=msg_id, department_id=department.id, body_sha256=digest, received_at=now)
    )
    return {"applied": True, "duplicate": False, "state": callback.status}
