"""What the centre asks of this township, kept on the device for the console (S-09, S-10): the
records the county sent back with their earlier values and reason, and the tasks from the
cross-comparison with other departments (problem data, missing people); and the clerks'
answers to those tasks ("the department is wrong", with a reason) waiting to go up.

Both lists come whole with every Health answer and replace what was kept; an answer stays
queued and goes up with every Health call (``HealthRequest.task_answers``) until the centre's
result for it comes back, so it survives offline spells and restarts. Everything is one SQLite
file (WAL, ``synchronous=FULL``: kill -9 leaves the old state or the new), each list and answer
encrypted at rest like the drafts (names, ID numbers and earlier values are plaintext
otherwise), under a key kept 0600 in the identity directory.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from edge.durable_store import DurableStore, load_or_create_key
from muster.crypto.slices import close_at_rest, open_at_rest
from muster.errors import CryptoError, MusterError, StorageError
from muster.v1 import data_pb2

__all__ = [
    "MAX_REASON",
    "AnswerRefused",
    "CentreTaskStore",
    "QueuedAnswer",
]

MAX_REASON: Final = 500
MAX_PERSON_JSON: Final = 4096
MAX_VALUES_JSON: Final = 64 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lists (
    name TEXT PRIMARY KEY,
    blob BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    task_id  TEXT PRIMARY KEY,
    state    TEXT NOT NULL CHECK (state IN ('queued', 'accepted', 'refused')),
    blob     BLOB NOT NULL
);
"""


class AnswerRefused(MusterError):
    """A clerk's answer to a task that cannot be queued; the message says what to do."""


@dataclass(frozen=True, slots=True)
class QueuedAnswer:
    task_id: str
    reason: str
    clerk: str
    answered_at: dt.datetime
    state: str  # queued | accepted | refused
    result: str  # the centre's reason when refused


def _json_object(data: bytes, limit: int) -> dict[str, Any]:
    """A JSON object from the wire, or {} when it is too big or not one: the centre's word is
    trusted, but a damaged field must not stop the whole list."""
    if not data or len(data) > limit:
        return {}
    try:
        loaded = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _stamp(ts: Any) -> str:
    return str(ts.ToDatetime(tzinfo=dt.UTC).isoformat()) if ts.seconds or ts.nanos else ""


def returned_entries(records: Sequence[data_pb2.ReturnedRecord]) -> list[dict[str, Any]]:
    return [
        {
            "record_id": r.record_id,
            "id_number": r.id_number,
            "name": r.name,
            "reason": r.reason,
            "returned_at": _stamp(r.returned_at),
            "values": _json_object(r.values_json, MAX_VALUES_JSON),
        }
        for r in records
    ]


def task_entries(tasks: Sequence[data_pb2.CentreTask]) -> list[dict[str, Any]]:
    return [
        {
            "task_id": t.task_id,
            "kind": t.kind if t.kind in ("problem", "missing") else "problem",
            "id_number": t.id_number,
            "name": t.name,
            "department": t.department,
            "department_label": t.department_label or t.department,
            "differences": [
                {
                    "field": d.field,
                    "collected_value": d.collected_value,
                    "department_value": d.department_value,
                    "match_method": d.match_method,
                    "match_score": d.match_score,
                }
                for d in t.differences
            ],
            "person": _json_object(t.person_json, MAX_PERSON_JSON),
            "created_at": _stamp(t.created_at),
        }
        for t in tasks
    ]


class CentreTaskStore(DurableStore):
    def __init__(self, path: Path, key_path: Path) -> None:
        self._key = load_or_create_key(key_path, f"{key_path} 不是任务库密钥：请联系技术支持")
        super().__init__(path, _SCHEMA, what="中心任务库", secure_delete=True)

    def _write_failed(self, exc: sqlite3.Error) -> StorageError:
        return StorageError(f"中心任务未保存：{exc}")

    def _seal(self, name: str, value: Any) -> bytes:
        return close_at_rest(
            self._key, json.dumps(value, ensure_ascii=False).encode(), name.encode()
        )

    def _open(self, name: str, blob: bytes) -> Any:
        try:
            return json.loads(open_at_rest(self._key, blob, name.encode()))
        except (CryptoError, ValueError) as exc:
            raise StorageError(f"中心任务库的 {name} 无法读取（密钥不符或已损坏）") from exc

    def _list(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            row = self._db.execute("SELECT blob FROM lists WHERE name = ?", (name,)).fetchone()
        loaded = self._open(name, bytes(row[0])) if row else []
        return loaded if isinstance(loaded, list) else []

    def take_health(self, response: data_pb2.HealthResponse) -> bool:
        """Keep what a Health answer says: both lists replaced whole, and the results of the
        queued answers applied (an accepted one is done, a refused one keeps its reason for the
        clerk). True when anything changed."""
        returned = returned_entries(response.returned_records)
        tasks = task_entries(response.tasks)
        changed = returned != self.returned() or tasks != self.tasks()
        results = {r.task_id: r for r in response.task_answer_results}
        queued = {a.task_id: a for a in self.answers() if a.state == "queued"}
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO lists (name, blob) VALUES ('returned', ?)",
                (self._seal("returned", returned),),
            )
            db.execute(
                "INSERT OR REPLACE INTO lists (name, blob) VALUES ('tasks', ?)",
                (self._seal("tasks", tasks),),
            )
            for task_id, result in results.items():
                answer = queued.get(task_id)
                if answer is None:
                    continue
                state = "accepted" if result.accepted else "refused"
                db.execute(
                    "UPDATE answers SET state = ?, blob = ? WHERE task_id = ?",
                    (state, self._answer_blob(answer, result.reason[:MAX_REASON]), task_id),
                )
                changed = True
        return changed

    def returned(self) -> list[dict[str, Any]]:
        return self._list("returned")

    def tasks(self) -> list[dict[str, Any]]:
        return self._list("tasks")

    def task(self, task_id: str) -> dict[str, Any] | None:
        return next((t for t in self.tasks() if t.get("task_id") == task_id), None)

    def _answer_blob(self, a: QueuedAnswer, result: str) -> bytes:
        return self._seal(
            f"answer:{a.task_id}",
            {
                "reason": a.reason,
                "clerk": a.clerk,
                "answered_at": a.answered_at.isoformat(),
                "result": result,
            },
        )

    def answer(self, task_id: str, *, reason: str, clerk: str, now: dt.datetime) -> QueuedAnswer:
        """Queue a clerk's "the department is wrong" for a task this device was given."""
        reason = reason.strip()
        if self.task(task_id) is None:
            raise AnswerRefused("没有这个任务（可能已被中心关闭）：请回到首页查看任务列表")
        if not reason:
            raise AnswerRefused("请写明认为部门数据有误的理由，例如核对了哪份证件")
        if len(reason) > MAX_REASON:
            raise AnswerRefused(
                f"理由最多 {MAX_REASON} 字，现在是 {len(reason)} 字：请精简后再提交"
            )
        existing = next((a for a in self.answers() if a.task_id == task_id), None)
        if existing is not None and existing.state != "refused":
            raise AnswerRefused("这个任务已经答复过，正在等待中心处理")
        answer = QueuedAnswer(task_id, reason, clerk, now, "queued", "")
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO answers (task_id, state, blob) VALUES (?, 'queued', ?)",
                (task_id, self._answer_blob(answer, "")),
            )
        return answer

    def answers(self) -> list[QueuedAnswer]:
        with self._lock:
            rows = self._db.execute("SELECT task_id, state, blob FROM answers").fetchall()
        out = []
        for task_id, state, blob in rows:
            v = self._open(f"answer:{task_id}", bytes(blob))
            out.append(
                QueuedAnswer(
                    str(task_id),
                    str(v.get("reason", "")),
                    str(v.get("clerk", "")),
                    dt.datetime.fromisoformat(str(v["answered_at"])),
                    str(state),
                    str(v.get("result", "")),
                )
            )
        return out

    def add_answers(self, request: data_pb2.HealthRequest) -> data_pb2.HealthRequest:
        """``request`` with the queued answers added, to send with the next Health call."""
        for a in self.answers():
            if a.state == "queued":
                message = request.task_answers.add(
                    task_id=a.task_id, answer="disputed", reason=a.reason, clerk=a.clerk
                )
                message.answered_at.FromDatetime(a.answered_at)
        return request
