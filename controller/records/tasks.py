"""Tasks for the townships from a comparison with another department (S-10): made from a run's
open findings, sent to the owning township's devices in every Health answer, closed when the
person's new record arrives, or closed as disputed when a clerk answers that the department
is wrong.

One task per person and run: a person's problem findings (each a field that disagrees) travel
together, a missing person is a task of its own carrying the department's row (the slice
delta the clerk collects them from). A record cannot carry a task id (``RecordPayload``
forbids extra keys and is sealed on the device), so the link is the person: a new record for
the same ID number from the same township closes every task sent for them
(:func:`close_for_records`, called by ingest in the record's own transaction). Hence a task
needs an ID number; findings without one are left open and counted.

A clerk's dispute goes up with the device's next Health call (``HealthRequest.task_answers``):
the device keeps it until the answer's result comes back, so it fits the uplink that already
carries the clerks and returned records, offline spells included. Each answer is checked here:
the task must exist, belong to the device's own township and still be open, and the reason must
be given and short; anything else is refused with the reason and changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, literal, or_, select, update
from sqlalchemy.orm import Session

from controller.accounts.admins import AdminIdentity
from controller.db.models import (
    CentreTask,
    ComparisonFinding,
    ComparisonRun,
    DepartmentExtractRow,
    Device,
)
from muster.departments import DEPARTMENTS
from muster.errors import ConfigError, NotFoundError
from muster.regions import parse_township
from muster.v1 import data_pb2

__all__ = [
    "MAX_ANSWERS",
    "MAX_REASON",
    "TASK_ID",
    "RegionProgress",
    "TasksMade",
    "answer_tasks",
    "close_for_records",
    "make_tasks",
    "parse_task_id",
    "runs_in_view",
    "task_id",
    "task_messages",
    "task_progress",
]

OPEN, SENT, CLOSED, DISPUTED = "open", "sent", "closed", "disputed"
TASK_ID: Final = re.compile(r"T[1-9][0-9]{0,17}")
MAX_REASON: Final = 500
MAX_ANSWERS: Final = 200  # per Health call; the device sends the rest next time
MAX_TASKS_PER_DEVICE: Final = 2000
STATUS_NAMES: Final = {SENT: "待乡镇处理", CLOSED: "已关闭", DISPUTED: "乡镇认为部门有误"}


def task_id(task: CentreTask) -> str:
    return f"T{task.id}"


def parse_task_id(text: str) -> int | None:
    """The row id of a task id as the wire spells it ("T12"), None when it is not one."""
    return int(text[1:]) if TASK_ID.fullmatch(text) else None


@dataclass(frozen=True, slots=True)
class TasksMade:
    created: int
    findings: int
    without_township: int
    without_id_number: int
    townships: int


def runs_in_view(session: Session, area: str, limit: int = 50) -> list[ComparisonRun]:
    """The runs an admin of ``area`` can make tasks from, newest first: runs of the area or of
    a part of it, and runs of a wider area (a national run has findings in every county; the
    admin makes tasks from its findings in the area only, as :func:`make_tasks` keeps)."""
    inside = ComparisonRun.region_prefix.startswith(area)
    around = literal(area).startswith(ComparisonRun.region_prefix)
    query = select(ComparisonRun).where(or_(inside, around))
    return list(session.scalars(query.order_by(ComparisonRun.id.desc()).limit(limit)))


def make_tasks(
    session: Session,
    run_id: int,
    admin: AdminIdentity,
    now: datetime,
    *,
    township: str = "",
) -> TasksMade:
    """Turn run ``run_id``'s open findings in the admin's area (or one ``township`` of it) into
    tasks. Findings already sent are not sent again, so running it twice makes nothing new."""
    admin.require("review")
    area = admin.prefix
    if township:
        area = parse_township(township).code
        admin.require_covers(area, f"乡镇 {area}")
    run = session.get(ComparisonRun, run_id)
    if run is None:
        raise NotFoundError(
            f"没有第 {run_id} 次比对：请用 muster controller compare 的输出里的编号"
        )
    query = (
        select(ComparisonFinding)
        .where(ComparisonFinding.run_id == run_id, ComparisonFinding.status == OPEN)
        .order_by(ComparisonFinding.id)
        .with_for_update()
    )
    findings = list(session.scalars(query))
    without_township = sum(1 for f in findings if not f.township_code)
    ours = [f for f in findings if f.township_code and f.township_code.startswith(area)]
    without_id = sum(1 for f in ours if not f.id_number)
    groups: dict[tuple[str, str, str], list[ComparisonFinding]] = {}
    for f in ours:
        if f.id_number:
            groups.setdefault((f.township_code, f.id_number, f.kind), []).append(f)
    for (code, number, kind), items in groups.items():
        first = items[0]
        details: dict[str, Any] = {
            "finding_ids": [f.id for f in items],
            "differences": [
                {
                    "field": f.field,
                    "collected_value": f.collected_value,
                    "department_value": f.department_value,
                    "match_method": f.match_method,
                    "match_score": f.match_score or 0.0,
                }
                for f in items
                if kind == "problem"
            ],
        }
        if kind == "missing":
            details["person"] = _department_row(session, run.extract_id, number, first.name)
        session.add(
            CentreTask(
                run_id=run_id,
                kind=kind,
                township_code=code,
                id_number=number,
                name=first.name,
                department=first.department,
                details=details,
                status=SENT,
                created_by=admin.username,
                created_at=now,
            )
        )
        for f in items:
            f.status, f.status_at = SENT, now
    session.flush()
    return TasksMade(
        created=len(groups),
        findings=sum(len(v) for v in groups.values()),
        without_township=without_township,
        without_id_number=without_id,
        townships=len({code for code, _, _ in groups}),
    )


def _department_row(session: Session, extract_id: str, number: str, name: str) -> dict[str, str]:
    """The missing person as the department's extract has them: what the clerk starts from."""
    row = session.scalars(
        select(DepartmentExtractRow)
        .where(
            DepartmentExtractRow.extract_id == extract_id,
            DepartmentExtractRow.id_number == number,
        )
        .limit(1)
    ).first()
    if row is None:
        return {"name": name, "id_number": number}
    return {
        "name": row.name,
        "id_number": number,
        "sex": row.sex,
        "birth_date": row.birth_date,
        "address": row.address,
    }


def _device_township(session: Session, device_id: str) -> str | None:
    return session.scalar(select(Device.township_code).where(Device.id == device_id))


def task_messages(session: Session, device_id: str) -> list[data_pb2.CentreTask]:
    """The Health answer's ``tasks``: the device's township's open tasks, oldest first."""
    township = _device_township(session, device_id)
    if township is None:
        return []
    out = []
    for t in session.scalars(
        select(CentreTask)
        .where(CentreTask.township_code == township, CentreTask.status == SENT)
        .order_by(CentreTask.id)
        .limit(MAX_TASKS_PER_DEVICE)
    ):
        spec = DEPARTMENTS.get(t.department)
        message = data_pb2.CentreTask(
            task_id=task_id(t),
            kind=t.kind,
            id_number=t.id_number,
            name=t.name,
            department=t.department,
            department_label=spec.label if spec else t.department,
            differences=[
                data_pb2.TaskDifference(
                    field=str(d.get("field", "")),
                    collected_value=str(d.get("collected_value", "")),
                    department_value=str(d.get("department_value", "")),
                    match_method=str(d.get("match_method", "")),
                    match_score=float(d.get("match_score") or 0.0),
                )
                for d in t.details.get("differences", [])
            ],
            person_json=json.dumps(t.details["person"], ensure_ascii=False).encode()
            if t.details.get("person")
            else b"",
        )
        message.created_at.FromDatetime(t.created_at)
        out.append(message)
    return out


def _refused(answer_id: str, reason: str) -> data_pb2.TaskAnswerResult:
    return data_pb2.TaskAnswerResult(task_id=answer_id[:24], accepted=False, reason=reason)


def answer_tasks(
    session: Session,
    device_id: str,
    answers: Sequence[data_pb2.TaskAnswer],
    now: datetime,
) -> list[data_pb2.TaskAnswerResult]:
    """Apply the clerks' answers from one Health call; one result per answer considered (at
    most :data:`MAX_ANSWERS`, the rest come next time)."""
    township = _device_township(session, device_id)
    results: list[data_pb2.TaskAnswerResult] = []
    for answer in answers[:MAX_ANSWERS]:
        number = parse_task_id(answer.task_id)
        reason = answer.reason.strip()
        if number is None:
            results.append(_refused(answer.task_id, "任务编号无效（应为 T 加数字）"))
            continue
        if answer.answer != DISPUTED:
            results.append(_refused(answer.task_id, "只能答复“部门数据有误”（disputed）"))
            continue
        if not reason:
            results.append(_refused(answer.task_id, "请写明认为部门数据有误的理由"))
            continue
        if len(reason) > MAX_REASON or len(answer.clerk) > 64:
            results.append(_refused(answer.task_id, f"理由最多 {MAX_REASON} 字"))
            continue
        task = session.get(CentreTask, number, with_for_update=True)
        if task is None or township is None or task.township_code != township:
            # The same words for "no such task" and "another township's": nothing to probe.
            results.append(_refused(answer.task_id, "本乡镇没有这个任务"))
            continue
        if task.status != SENT:
            results.append(
                _refused(
                    answer.task_id, f"任务已{STATUS_NAMES.get(task.status, task.status)}，无需答复"
                )
            )
            continue
        task.status, task.closed_at = DISPUTED, now
        task.answer_reason, task.answered_by = reason, f"{answer.clerk}@{device_id}"[:64]
        _set_findings(session, task, DISPUTED, now)
        results.append(data_pb2.TaskAnswerResult(task_id=answer.task_id, accepted=True))
    return results


def _set_findings(session: Session, task: CentreTask, status: str, now: datetime) -> None:
    ids = [int(i) for i in task.details.get("finding_ids", [])]
    if ids:
        session.execute(
            update(ComparisonFinding)
            .where(ComparisonFinding.id.in_(ids))
            .values(status=status, status_at=now)
            .execution_options(synchronize_session=False)
        )


def close_for_records(session: Session, rows: Iterable[dict[str, Any]]) -> int:
    """New records (``record_id``, ``township_code``, ``id_number``, ``received_at``) close the
    tasks sent for the same person in the same township; returns how many closed."""
    # One query per township for the whole batch, not one per record: at upload rates the
    # per-record query cost more than the rest of ingest. The first record of a person closes.
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        if row.get("id_number"):
            first.setdefault((row["township_code"], row["id_number"]), row)
    by_township: dict[str, list[str]] = {}
    for township, number in first:
        by_township.setdefault(township, []).append(number)
    closed = 0
    for township, numbers in by_township.items():
        for task in session.scalars(
            select(CentreTask).where(
                CentreTask.township_code == township,
                CentreTask.id_number.in_(numbers),
                CentreTask.status == SENT,
            )
        ):
            row = first[(township, task.id_number)]
            task.status, task.closed_at = CLOSED, row["received_at"]
            task.closed_record_id = row["record_id"]
            _set_findings(session, task, CLOSED, row["received_at"])
            closed += 1
    return closed


@dataclass(frozen=True, slots=True)
class RegionProgress:
    region: str
    sent: int
    closed: int
    disputed: int

    @property
    def total(self) -> int:
        return self.sent + self.closed + self.disputed

    @property
    def percent(self) -> float:
        return round(100 * (self.closed + self.disputed) / self.total, 1) if self.total else 0.0


def task_progress(session: Session, area: str, digits: int) -> list[RegionProgress]:
    """Tasks in ``area`` by status, grouped by the first ``digits`` of the township code."""
    if digits not in (2, 4, 6, 9, 12):
        raise ConfigError("地区级别应为 2、4、6、9 或 12 位代码")
    key = func.substr(CentreTask.township_code, 1, digits)
    counts: dict[str, dict[str, int]] = {}
    for region, status, count in session.execute(
        select(key, CentreTask.status, func.count())
        .where(CentreTask.township_code.startswith(area))
        .group_by(key, CentreTask.status)
    ):
        counts.setdefault(str(region), {})[str(status)] = int(count)
    return [
        RegionProgress(r, c.get(SENT, 0), c.get(CLOSED, 0), c.get(DISPUTED, 0))
        for r, c in sorted(counts.items())
    ]
