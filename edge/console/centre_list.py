"""The console's list of "tasks from the centre", sans-I/O: records the county sent back, records
the centre refused at upload, and the cross-comparison's problem data and missing people, each
with what the centre said, what to do, and where its correction stands on this device.

Also the marks the search shows beside a person already collected here (a draft in progress,
sealed, uploaded), and the clerks' counts of what they collected.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from zoneinfo import ZoneInfo

from edge.centre_tasks import QueuedAnswer
from edge.console.drafts import SealedEntry
from edge.console.workflow import Draft
from muster.records import RECORD_ID_PATTERN

__all__ = [
    "CAMPAIGN_TZ",
    "TASK_ID",
    "ClerkCount",
    "Mark",
    "TaskItem",
    "clerk_counts",
    "marks",
    "task_items",
]

CAMPAIGN_TZ: Final = ZoneInfo("Asia/Shanghai")
TASK_ID: Final = re.compile(r"T[1-9][0-9]{0,17}")
RECORD_ID: Final = re.compile(RECORD_ID_PATTERN.strip("^$"))
KIND_NAMES: Final = {
    "returned": "县级退回",
    "rejected": "中心拒收",
    "problem": "比对问题数据",
    "missing": "比对遗漏人员",
}
WHAT_TO_DO: Final = {
    "returned": "打开原记录的内容，按退回原因更正，由另一名工作人员复核，本人重新签字后封存上传",
    "rejected": "按拒收原因更正，由另一名工作人员复核，本人重新签字后封存上传",
    "problem": "核对证件，更正有误的项目（或答复“部门数据有误”并写明理由），复核、签字后封存上传",
    "missing": "联系本人采集（或答复“部门数据有误”并写明理由），复核、签字后封存上传",
}
STATE_NAMES: Final = {"sealed": "待上传", "acked": "已上传", "rejected": "被中心拒收"}


@dataclass
class TaskItem:
    key: str  # returned/<record id>, rejected/<record id>, centre/<task id>
    kind: str
    name: str
    id_number: str
    reason: str
    department: str = ""
    differences: list[dict[str, Any]] = field(default_factory=list)
    draft: Draft | None = None  # the correction in progress
    resealed: SealedEntry | None = None  # the correction sealed, waiting for the centre
    answer: QueuedAnswer | None = None  # a clerk's "the department is wrong"
    at: str = ""

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind]

    @property
    def todo(self) -> str:
        return WHAT_TO_DO[self.kind]

    @property
    def disputable(self) -> bool:
        return self.kind in ("problem", "missing") and (
            self.answer is None or self.answer.state == "refused"
        )


def task_items(
    *,
    returned: Sequence[Mapping[str, Any]],
    rejected: Sequence[tuple[str, str, str]],
    tasks: Sequence[Mapping[str, Any]],
    answers: Sequence[QueuedAnswer],
    drafts: Sequence[Draft],
    sealed: Sequence[SealedEntry],
    states: Mapping[str, str],
) -> list[TaskItem]:
    """Every task the centre gave this township, with its correction's progress here. A
    refused record whose correction reached the centre is done and left out."""
    by_corrects = {d.corrects: d for d in drafts if d.corrects}
    by_task = {d.task_id: d for d in drafts if d.task_id}
    sealed_corrects = {e.corrects: e for e in sealed if e.corrects}
    sealed_task = {e.task_id: e for e in sealed if e.task_id}
    sealed_by_id = {e.record_id: e for e in sealed}
    answered = {a.task_id: a for a in answers}
    items: list[TaskItem] = []
    for r in returned:
        record_id = str(r.get("record_id", ""))
        items.append(
            TaskItem(
                key=f"returned/{record_id}",
                kind="returned",
                name=str(r.get("name", "")),
                id_number=str(r.get("id_number", "")),
                reason=str(r.get("reason", "")),
                draft=by_corrects.get(record_id),
                resealed=sealed_corrects.get(record_id),
                at=str(r.get("returned_at", ""))[:10],
            )
        )
    for record_id, code, reason in rejected:
        again = sealed_corrects.get(record_id)
        if again is not None and states.get(again.record_id) == "acked":
            continue
        earlier = sealed_by_id.get(record_id)
        items.append(
            TaskItem(
                key=f"rejected/{record_id}",
                kind="rejected",
                name=earlier.name if earlier else "",
                id_number=earlier.id_number if earlier else "",
                reason=reason or code,
                draft=by_corrects.get(record_id),
                resealed=again,
            )
        )
    for t in tasks:
        task_id = str(t.get("task_id", ""))
        kind = str(t.get("kind", "problem"))
        items.append(
            TaskItem(
                key=f"centre/{task_id}",
                kind=kind if kind in ("problem", "missing") else "problem",
                name=str(t.get("name", "")),
                id_number=str(t.get("id_number", "")),
                reason=describe_task(t),
                department=str(t.get("department_label", "")),
                differences=list(t.get("differences", [])),
                draft=by_task.get(task_id),
                resealed=sealed_task.get(task_id),
                answer=answered.get(task_id),
                at=str(t.get("created_at", ""))[:10],
            )
        )
    return items


def describe_task(t: Mapping[str, Any]) -> str:
    label = str(t.get("department_label", "")) or "部门"
    if t.get("kind") == "missing":
        return f"{label}数据中有此人，本乡镇尚未采集"
    parts = [
        f"{d.get('field', '')}：采集为“{d.get('collected_value', '')}”，"
        f"{label}为“{d.get('department_value', '')}”"
        for d in t.get("differences", [])
    ]
    return "；".join(parts) or f"与{label}数据不一致"


@dataclass(frozen=True, slots=True)
class Mark:
    """What this device already holds for a person: a draft to open, or a sealed record."""

    state: str  # the state's name for the clerks
    record_id: str
    draft: bool


def marks(
    drafts: Iterable[Draft], sealed: Iterable[SealedEntry], states: Mapping[str, str]
) -> dict[str, Mark]:
    """By ID number: the person's draft in progress if any, else their latest sealed record.
    A record refused at upload does not count as collected."""
    out: dict[str, Mark] = {}
    for e in sorted(sealed, key=lambda e: e.sealed_at):
        state = states.get(e.record_id, "sealed")
        if state != "rejected" and e.id_number:
            out[e.id_number] = Mark(STATE_NAMES.get(state, state), e.record_id, False)
    for d in drafts:
        number = d.person.get("id_number", "").strip().upper()
        if number:
            out[number] = Mark(d.state_name, d.record_id, True)
    return out


@dataclass(frozen=True, slots=True)
class ClerkCount:
    username: str
    today: int
    total: int


def local_day(at: dt.datetime) -> dt.date:
    return at.astimezone(CAMPAIGN_TZ).date()


def clerk_counts(sealed: Iterable[SealedEntry], now: dt.datetime) -> list[ClerkCount]:
    """Records sealed here by the clerk who entered them: today (Beijing time) and in all."""
    today = local_day(now)
    counts: dict[str, list[int]] = {}
    for e in sealed:
        c = counts.setdefault(e.entered_by, [0, 0])
        c[1] += 1
        if local_day(e.sealed_at) == today:
            c[0] += 1
    return [ClerkCount(u, t, n) for u, (t, n) in sorted(counts.items())]
