"""Review up the chain (S-09): the township declares its collection complete, the county checks
each record field by field against the initial data and sends it back with a reason or
approves it, and each level above takes in what the level below approved. Every step lands in
``review_events``.

A record's ``review_status`` moves by the table ``TRANSITIONS``; ``approved_level`` says how far
up an approved record has come (county → city → province → ministry). A record sent back stays
``returned`` until the township's corrected record for the same person arrives, which makes it
``superseded`` (``supersede_returned``, called by ingest in the same transaction).

How a device learns that a record came back: its next Health answer lists the township's
returned records with the reason (``HealthResponse.returned_records``); the daemon keeps the
list in ``STATE_DIR/returned.json`` for the console to show the clerks.

Over 400 lines because review up the chain is one state machine (declare, check, approve,
return, supersede) whose transitions and audit must be read together.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, and_, exists, func, select, update
from sqlalchemy.orm import Session

from controller.accounts.admins import AccessDenied, AdminIdentity
from controller.db.models import (
    Device,
    PersonRow,
    Record,
    ReviewEvent,
    TownshipDeclaration,
)
from controller.records.tasks import close_for_records
from muster.errors import ConfigError, NotFoundError
from muster.forms import form_for
from muster.record_life import CENTRE, STAGES, TRANSITIONS
from muster.records import category_name
from muster.regions import CITY, COUNTY, LEVEL_NAMES, NATION, PROVINCE, TOWNSHIP, parse_township
from muster.v1 import data_pb2

__all__ = [
    "LEVELS",
    "TRANSITIONS",
    "FieldCheck",
    "approve",
    "category_name",
    "compare_fields",
    "declare_complete",
    "forward",
    "missing_people",
    "return_record",
    "returned_for_device",
    "returned_messages",
    "supersede_returned",
    "superseded_by",
]

COLLECTED, RETURNED, APPROVED, SUPERSEDED = "collected", "returned", "approved", "superseded"
# The centre's part of a record's life (muster.record_life) and its names for the admins.
STATUS_NAMES = {key: STAGES[key].zh for key in CENTRE}
# The chain a record is reviewed up, from the bottom: the keys of the region levels it passes.
LEVELS = tuple(level.key for level in (TOWNSHIP, COUNTY, CITY, PROVINCE, NATION))

MAX_REASON = 500


def _event(
    session: Session,
    admin: AdminIdentity,
    action: str,
    township: str,
    now: datetime,
    *,
    record_id: str | None = None,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        ReviewEvent(
            at=now,
            actor=admin.username,
            role=admin.role,
            action=action,
            township_code=township,
            record_id=record_id,
            reason=reason,
            details=details or {},
        )
    )


def _current_record() -> Any:
    return Record.review_status != SUPERSEDED


def missing_people(session: Session, township: str, limit: int = 5000) -> list[PersonRow]:
    """People of the township's slice for whom no current record has arrived (S-09)."""
    has_record = exists().where(
        and_(
            Record.township_code == PersonRow.township_code,
            Record.id_number == PersonRow.id_number,
            _current_record(),
        )
    )
    return list(
        session.scalars(
            select(PersonRow)
            .where(
                PersonRow.township_code == township,
                PersonRow.removed.is_(False),
                ~has_record,
            )
            .order_by(PersonRow.name, PersonRow.id_number)
            .limit(limit)
        )
    )


def count_missing(session: Session, township: str) -> int:
    has_record = exists().where(
        and_(
            Record.township_code == PersonRow.township_code,
            Record.id_number == PersonRow.id_number,
            _current_record(),
        )
    )
    return (
        session.scalar(
            select(func.count())
            .select_from(PersonRow)
            .where(
                PersonRow.township_code == township,
                PersonRow.removed.is_(False),
                ~has_record,
            )
        )
        or 0
    )


def declare_complete(
    session: Session, township: str, admin: AdminIdentity, now: datetime, note: str = ""
) -> TownshipDeclaration:
    """The township says nobody is missed. With people still missing, the note must say why
    (moved, deceased, unreachable), or the declaration is refused naming how many."""
    code = parse_township(township).code
    admin.require("declare")
    admin.require_covers(code, f"乡镇 {code}")
    missing = count_missing(session, code)
    note = note.strip()[:MAX_REASON]
    if missing and not note:
        raise ConfigError(
            f"本乡镇还有 {missing} 人没有采集记录：请先补采，或在说明中写明原因（迁出、去世、无法联系）后再申报"
        )
    row = session.get(TownshipDeclaration, code)
    if row is None:
        row = TownshipDeclaration(township_code=code, declared_at=now, declared_by=admin.username)
        session.add(row)
    row.declared_at, row.declared_by, row.missing, row.note = now, admin.username, missing, note
    _event(session, admin, "declare", code, now, reason=note, details={"missing": missing})
    return row


@dataclass(frozen=True, slots=True)
class FieldCheck:
    key: str
    label: str
    collected: str
    initial: str  # "" when the initial data has no such column

    @property
    def differs(self) -> bool:
        return bool(self.initial) and self.initial != self.collected


def _show(value: Any, options: dict[str, str]) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "、".join(options.get(str(v), str(v)) for v in value)
    return options.get(str(value), str(value))


def compare_fields(record: Record, person: PersonRow | None) -> list[FieldCheck]:
    """The record's fields beside the initial data, in the form's order (S-09: field by field)."""
    payload = record.payload
    initial: dict[str, Any] = dict(person.details) if person is not None else {}
    who = payload.get("person", {})
    sex = {"1": "男", "2": "女"}
    checks = [
        FieldCheck("name", "姓名", str(who.get("name", "")), str(initial.get("name", ""))),
        FieldCheck(
            "id_number",
            "公民身份号码",
            str(who.get("id_number", "")),
            str(initial.get("id_number", "")),
        ),
        FieldCheck(
            "sex", "性别", sex.get(str(who.get("sex")), ""), sex.get(str(initial.get("sex")), "")
        ),
        FieldCheck(
            "birth_date",
            "出生日期",
            str(who.get("birth_date", "")),
            str(initial.get("birth_date", "")),
        ),
        FieldCheck(
            "ethnicity",
            "民族代码",
            str(who.get("ethnicity", "")),
            str(initial.get("ethnicity", "")),
        ),
        FieldCheck(
            "category",
            "优抚对象类别",
            category_name(str(payload.get("category", ""))),
            category_name(str(initial.get("category", ""))) if initial.get("category") else "",
        ),
        FieldCheck(
            "relation",
            "与军人关系",
            str(payload.get("relation") or ""),
            str(initial.get("relation", "")),
        ),
    ]
    form = form_for(str(payload.get("category", "")), str(payload.get("form_version", "")))
    fields = payload.get("fields", {})
    if form is not None:
        for f in form.fields:
            checks.append(
                FieldCheck(
                    f.key,
                    f.label,
                    _show(fields.get(f.key), f.options),
                    _show(initial.get(f.key), f.options) if initial.get(f.key) else "",
                )
            )
    return checks


def _transition(record: Record, action: str) -> str:
    after = TRANSITIONS.get((record.review_status, action))
    if after is None or (
        record.review_status == APPROVED and record.approved_level not in ("", COUNTY.key)
    ):
        raise ConfigError(
            f"记录 {record.record_id} 当前为“{STATUS_NAMES.get(record.review_status, record.review_status)}”"
            + (
                f"（已由{LEVEL_NAMES.get(record.approved_level, '')}级接收）"
                if record.approved_level
                else ""
            )
            + "，不能再"
            + ("通过" if action == "approve" else "退回")
        )
    return after


def _reviewable(session: Session, record_id: str, admin: AdminIdentity) -> Record:
    admin.require("review")
    record = session.get(Record, record_id, with_for_update=True)
    if record is None:
        raise NotFoundError(f"没有编号为 {record_id} 的记录")
    admin.require_covers(record.township_code, f"记录 {record_id}")
    return record


def approve(session: Session, record_id: str, admin: AdminIdentity, now: datetime) -> Record:
    record = _reviewable(session, record_id, admin)
    record.review_status = _transition(record, "approve")
    record.approved_level = COUNTY.key
    _event(session, admin, "approve", record.township_code, now, record_id=record_id)
    return record


def return_record(
    session: Session, record_id: str, admin: AdminIdentity, reason: str, now: datetime
) -> Record:
    """Send a record back to its township with the reason the clerks will read."""
    reason = reason.strip()
    if not reason:
        raise ConfigError("退回记录必须写明原因，乡镇采集人员会看到这段文字")
    if len(reason) > MAX_REASON:
        raise ConfigError(f"退回原因最多 {MAX_REASON} 字")
    record = _reviewable(session, record_id, admin)
    record.review_status = _transition(record, "return")
    record.approved_level = ""
    _event(session, admin, "return", record.township_code, now, record_id=record_id, reason=reason)
    return record


def forward(session: Session, admin: AdminIdentity, region: str, now: datetime) -> int:
    """The level above takes in what the level below approved in ``region`` (inside its own
    area): their ``approved_level`` moves up to the admin's level. Returns how many moved."""
    admin.require("forward")
    area = admin.narrow(region)
    level = admin.role
    if level not in LEVELS:
        raise AccessDenied(f"{admin.role} 账号不代表某一级，不能接收数据")
    below = LEVELS[LEVELS.index(level) - 1]
    if below == TOWNSHIP.key:
        raise AccessDenied("县级通过的数据由县级逐条审核，不在此接收")
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Record)
        .where(
            Record.township_code.startswith(area),
            Record.review_status == APPROVED,
            Record.approved_level == below,
        )
        .values(approved_level=level)
        .execution_options(synchronize_session=False)
    )
    moved = result.rowcount
    _event(session, admin, "forward", area, now, details={"records": moved, "from": below})
    return int(moved or 0)


def supersede_returned(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """New records (``record_id``, ``device_id``, ``township_code``, ``id_number``,
    ``received_at``) for people whose earlier record was sent back replace that record: it
    becomes ``superseded`` and its history says by which record (a ``supersede`` event naming
    the new record), and the tasks sent for the same people close with the new record."""
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        if row.get("id_number"):
            newest[(row["township_code"], row["id_number"])] = row
    by_township: dict[str, set[str]] = {}
    for township, number in newest:
        by_township.setdefault(township, set()).add(number)
    for township, numbers in by_township.items():
        fresh = {newest[(township, n)]["record_id"] for n in numbers}
        for old in session.scalars(
            select(Record)
            .where(
                Record.township_code == township,
                Record.id_number.in_(sorted(numbers)),
                Record.review_status == RETURNED,
                Record.record_id.not_in(sorted(fresh)),
            )
            .with_for_update()
        ):
            row = newest[(township, old.id_number or "")]
            old.review_status = SUPERSEDED
            session.add(
                ReviewEvent(
                    at=row["received_at"],
                    actor=str(row.get("device_id", ""))[:32],
                    role="device",
                    action="supersede",
                    township_code=township,
                    record_id=old.record_id,
                    reason=f"已被更正后的记录 {row['record_id']} 取代",
                    details={"superseded_by": row["record_id"]},
                )
            )
    close_for_records(session, newest.values())


def superseded_by(session: Session, record_id: str) -> str | None:
    """The corrected record that replaced ``record_id``, None when none did."""
    details = session.scalars(
        select(ReviewEvent.details)
        .where(ReviewEvent.record_id == record_id, ReviewEvent.action == "supersede")
        .order_by(ReviewEvent.at.desc())
        .limit(1)
    ).first()
    return str(details["superseded_by"]) if details and details.get("superseded_by") else None


@dataclass(frozen=True, slots=True)
class Returned:
    record_id: str
    id_number: str
    name: str
    reason: str
    returned_at: datetime
    values: dict[str, Any]


def earlier_values(payload: dict[str, Any]) -> dict[str, Any]:
    """What a returned record said, for the clerk to correct: person, category, relation and
    form fields; no photo, signature or audit."""
    return {
        "person": dict(payload.get("person", {})),
        "category": payload.get("category", ""),
        "relation": payload.get("relation") or "",
        "fields": dict(payload.get("fields", {})),
    }


def returned_for_device(session: Session, device_id: str, limit: int = 500) -> list[Returned]:
    """The township's records that are waiting to be corrected, with the latest reason."""
    township = session.scalar(select(Device.township_code).where(Device.id == device_id))
    if township is None:
        return []
    records = list(
        session.scalars(
            select(Record)
            .where(Record.township_code == township, Record.review_status == RETURNED)
            .order_by(Record.received_at)
            .limit(limit)
        )
    )
    reasons = _latest_reasons(session, [r.record_id for r in records])
    return [
        Returned(
            record_id=r.record_id,
            id_number=r.id_number or "",
            name=str(r.payload.get("person", {}).get("name", "")),
            reason=reasons.get(r.record_id, ("", r.received_at))[0],
            returned_at=reasons.get(r.record_id, ("", r.received_at))[1],
            values=earlier_values(r.payload),
        )
        for r in records
    ]


def returned_messages(session: Session, device_id: str) -> list[data_pb2.ReturnedRecord]:
    """The Health answer's ``returned_records`` for a device."""
    out = []
    for r in returned_for_device(session, device_id):
        message = data_pb2.ReturnedRecord(
            record_id=r.record_id,
            id_number=r.id_number,
            name=r.name,
            reason=r.reason,
            values_json=json.dumps(r.values, ensure_ascii=False, default=str).encode(),
        )
        message.returned_at.FromDatetime(r.returned_at)
        out.append(message)
    return out


def _latest_reasons(session: Session, ids: Iterable[str]) -> dict[str, tuple[str, datetime]]:
    out: dict[str, tuple[str, datetime]] = {}
    for record_id, reason, at in session.execute(
        select(ReviewEvent.record_id, ReviewEvent.reason, ReviewEvent.at)
        .where(ReviewEvent.record_id.in_(list(ids)), ReviewEvent.action == "return")
        .order_by(ReviewEvent.at)
    ):
        if record_id is not None:
            out[record_id] = (reason, at)
    return out
