"""Applications: drafts, materials uploaded once, and submission, which routes each item and
writes its delivery to the outbox in the same transaction (so a submitted application always
has its deliveries, and a crash leaves either both or neither).

An application is reached by the applicant with a bearer token (kept hashed) handed out when
the draft is made, and by a clerk through the admin UI, scoped to the clerk's region.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.applications.departments import route
from controller.db.models import (
    Application,
    ApplicationItem,
    ApplicationMaterial,
    Delivery,
    Department,
    ItemEvent,
)
from muster.clock import campaign_date
from muster.errors import ConflictError, NotFoundError
from muster.one_application import (
    ITEMS,
    MATERIALS,
    ApplicationError,
    Problem,
    check_application,
    check_material,
    fields_for,
    materials_for,
    payload_for_item,
)

__all__ = [
    "application_by_token",
    "enqueue_delivery",
    "new_application",
    "record_event",
    "save_draft",
    "submit",
    "upload_material",
]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_application(session: Session, *, now: datetime, entered_by: str = "") -> tuple[str, str]:
    """A new empty draft; returns its id and the applicant's access token (shown once)."""
    token = secrets.token_urlsafe(24)
    app_id = "A" + uuid.uuid4().hex[:16].upper()
    session.add(
        Application(
            id=app_id,
            token_hash=_hash(token),
            state="draft",
            items=[],
            fields={},
            township="",
            entered_by=entered_by,
            created_at=now,
            updated_at=now,
        )
    )
    session.flush()
    return app_id, token


def application_by_token(session: Session, token: str) -> Application:
    found = session.scalar(select(Application).where(Application.token_hash == _hash(token)))
    if found is None:
        raise NotFoundError("no application for this link; start a new one or ask the centre")
    return found


def save_draft(
    session: Session,
    application: Application,
    items: list[str],
    fields: dict[str, str],
    *,
    now: datetime,
) -> tuple[Problem, ...]:
    """Keep what was typed (only the fields the chosen items need); a wrong value is refused
    with the others kept as they were. Returns nothing when saved."""
    if application.state != "draft":
        raise ConflictError("this application was submitted; its form can no longer be changed")
    cleaned = {k: v.strip() for k, v in fields.items() if v.strip()}
    problems = check_application(items, cleaned, today=_today(now), draft=True)
    if problems:
        return problems
    needed = set(fields_for(items))  # what the items do not need is not kept
    cleaned = {k: v for k, v in cleaned.items() if k in needed}
    application.items = [i for i in ITEMS if i in items]
    application.fields = cleaned
    application.township = cleaned.get("township", "")
    application.updated_at = now
    return ()


def _today(now: datetime) -> date:
    return campaign_date(now)


def upload_material(
    session: Session,
    application: Application,
    key: str,
    content: bytes,
    declared_type: str,
    *,
    now: datetime,
) -> list[int]:
    """Store (or replace) one material; it serves every item that needs it. After submission
    this is how a material a department asked for arrives: each item waiting only on materials
    now present is delivered again. Returns those items' ids."""
    kind = check_material(key, content, declared_type)
    row = session.get(ApplicationMaterial, (application.id, key))
    digest = hashlib.sha256(content).hexdigest()
    if row is None:
        session.add(
            ApplicationMaterial(
                application_id=application.id,
                key=key,
                sha256=digest,
                content_type=kind,
                content=content,
                uploaded_at=now,
            )
        )
    else:
        row.sha256, row.content_type, row.content, row.uploaded_at = digest, kind, content, now
    session.flush()
    application.updated_at = now
    if application.state != "submitted":
        return []
    present = _material_keys(session, application.id)
    resent = []
    waiting = session.scalars(
        select(ApplicationItem).where(
            ApplicationItem.application_id == application.id,
            ApplicationItem.state == "more_materials",
        )
    )
    for item in waiting:
        if set(item.wanted) <= present:
            item.wanted = []
            enqueue_delivery(session, application, item, now=now, source="applicant")
            resent.append(item.id)
    return resent


def _material_keys(session: Session, app_id: str) -> set[str]:
    return set(
        session.scalars(
            select(ApplicationMaterial.key).where(ApplicationMaterial.application_id == app_id)
        )
    )


def record_event(
    session: Session, item: ApplicationItem, state: str, source: str, message: str, now: datetime
) -> None:
    item.state, item.message, item.updated_at = state, message[:500], now
    session.add(
        ItemEvent(item_id=item.id, state=state, source=source, message=message[:500], at=now)
    )


def _body(
    session: Session, application: Application, item: ApplicationItem, delivery_id: str
) -> bytes:
    rows = {
        m.key: m
        for m in session.scalars(
            select(ApplicationMaterial).where(ApplicationMaterial.application_id == application.id)
        )
    }
    fields, materials = payload_for_item(
        item.code, application.fields, {k: m.sha256 for k, m in rows.items()}
    )
    document = {
        "type": "one_application.item",
        "delivery_id": delivery_id,
        "application_id": application.id,
        "item": item.code,
        "fields": fields,
        "materials": [
            {
                "key": key,
                "sha256": digest,
                "content_type": rows[key].content_type,
                "content_base64": base64.b64encode(rows[key].content).decode(),
            }
            for key, digest in materials.items()
        ],
    }
    return json.dumps(document, ensure_ascii=False, sort_keys=True).encode()


def enqueue_delivery(
    session: Session,
    application: Application,
    item: ApplicationItem,
    *,
    now: datetime,
    source: str = "controller",
) -> Delivery:
    """Write one delivery of ``item`` to the outbox, in the caller's transaction."""
    assert item.department_id is not None
    delivery_id = "msg_" + uuid.uuid4().hex
    delivery = Delivery(
        id=delivery_id,
        item_id=item.id,
        department_id=item.department_id,
        body=_body(session, application, item, delivery_id),
        state="pending",
        attempts=0,
        next_attempt_at=now,
        last_error="",
        created_at=now,
    )
    session.add(delivery)
    record_event(session, item, "queued", source, "已提交，等待送达部门", now)
    return delivery


def submit(session: Session, application: Application, *, now: datetime) -> list[ApplicationItem]:
    """Check everything, route each item and queue its delivery, all in the caller's
    transaction. Raises :class:`ApplicationError` naming every problem, changing nothing."""
    if application.state != "draft":
        raise ConflictError("this application was already submitted")
    problems = list(check_application(application.items, application.fields, today=_today(now)))
    present = _material_keys(session, application.id)
    service = application.fields.get("service_type", "")
    for key in materials_for(application.items, service):
        if key not in present:
            problems.append(
                Problem(key, _material_label(key), "请上传这份材料", "please upload it")
            )
    if problems:
        raise ApplicationError(problems)
    application.state, application.submitted_at, application.updated_at = "submitted", now, now
    items = []
    for code in application.items:
        department = route(session, code, application.township)
        item = ApplicationItem(
            application_id=application.id,
            code=code,
            department_id=department.id if department else None,
            state="unrouted",
            message="",
            wanted=[],
            place="",
            bring=[],
            due_at=_due(department, now),
            updated_at=now,
        )
        session.add(item)
        session.flush()
        if department is None:
            record_event(
                session, item, "unrouted", "controller", "本地区尚未接入办理这一事项的部门", now
            )
        else:
            enqueue_delivery(session, application, item, now=now)
        items.append(item)
    return items


def _due(department: Department | None, now: datetime) -> datetime | None:
    return now + timedelta(days=department.overdue_days) if department else None


def _material_label(key: str) -> str:
    return MATERIALS[key].zh
