"""The device's outbox: sealed records wait here, durable, until the controller acknowledges them.

SQLite in WAL mode with ``synchronous=FULL``: a record is on disk before ``add`` returns, so the
operator's "saved" survives power loss and kill -9. Only ciphertext is kept: a record's sealed
attachments (photo, signature) wait beside it as serialised chunks, written in the same
transaction, and are deleted once the record is acknowledged. States::

    sealed ──ack STORED/DUPLICATE──▶ acked
       │
       └──ack REJECTED──▶ rejected (kept, with the reason, for the clerk to correct)
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.durable_store import DurableStore
from muster.clock import Clock
from muster.errors import StorageError
from muster.v1 import data_pb2

__all__ = ["Ack", "Outbox", "OutboxFullError", "OutboxStats", "Pending"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id     TEXT NOT NULL UNIQUE,
    state         TEXT NOT NULL CHECK (state IN ('sealed', 'acked', 'rejected')),
    schema_version TEXT NOT NULL,
    sealed        BLOB NOT NULL,
    content_hash  TEXT NOT NULL,
    sealed_at     REAL NOT NULL,
    acked_at      REAL,
    reject_code   TEXT,
    reject_reason TEXT
);
CREATE INDEX IF NOT EXISTS records_state_seq ON records (state, seq);
CREATE TABLE IF NOT EXISTS attachment_chunks (
    record_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    chunk       BLOB NOT NULL,
    PRIMARY KEY (record_id, name, chunk_index)
);
"""

Ack = data_pb2.RecordAck


class OutboxFullError(StorageError):
    """The outbox is at its quota or the disk is too full to keep another record safely."""


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    record_id: str
    sealed: bytes
    chunks: tuple[bytes, ...] = ()  # serialised AttachmentChunks, to go up before the record


@dataclass(frozen=True, slots=True)
class OutboxStats:
    sealed_total: int
    acked: int
    pending: int
    rejected: int
    oldest_pending_age_s: float


class Outbox(DurableStore):
    def __init__(
        self,
        path: Path,
        *,
        clock: Clock,
        max_records: int = 200_000,
        min_disk_free_bytes: int = 0,
    ) -> None:
        self._clock = clock
        self._max_records = max_records
        self._min_free = min_disk_free_bytes
        super().__init__(path, _SCHEMA, what="outbox")

    def _write_failed(self, exc: sqlite3.Error) -> StorageError:
        if isinstance(exc, sqlite3.OperationalError) and ("disk" in str(exc) or "full" in str(exc)):
            return OutboxFullError(f"磁盘已满，记录未保存：{exc} (disk full; nothing was written)")
        return StorageError(f"outbox write failed: {exc}")

    def add(
        self,
        sealed: data_pb2.SealedRecord,
        content_hash: str,
        *,
        chunks: Sequence[data_pb2.AttachmentChunk] = (),
        now: float | None = None,
    ) -> None:
        """Keep a sealed record durably. Raises ``OutboxFullError`` and writes nothing when full."""
        free = shutil.disk_usage(self.path.parent).free
        if free < self._min_free:
            raise OutboxFullError(
                f"磁盘剩余空间 {free // 2**20} MB 低于下限 {self._min_free // 2**20} MB，暂停采集，请先上传或清理磁盘"
            )
        with self._tx() as db:
            (count,) = db.execute("SELECT count(*) FROM records WHERE state != 'acked'").fetchone()
            if count >= self._max_records:
                raise OutboxFullError(
                    f"待上传记录已达上限 {self._max_records} 条，请连接网络上传后再采集"
                )
            db.execute(
                "INSERT INTO records (record_id, state, schema_version, sealed, content_hash, sealed_at)"
                " VALUES (?, 'sealed', ?, ?, ?, ?)",
                (
                    sealed.record_id,
                    sealed.schema_version,
                    sealed.SerializeToString(),
                    content_hash,
                    self._clock.now().timestamp() if now is None else now,
                ),
            )
            db.executemany(
                "INSERT OR REPLACE INTO attachment_chunks (record_id, name, chunk_index, chunk)"
                " VALUES (?, ?, ?, ?)",
                [(c.record_id, c.name, c.index, c.SerializeToString()) for c in chunks],
            )

    def contains(self, record_id: str) -> bool:
        """Whether ``record_id`` was sealed already (the console's seal is then done)."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM records WHERE record_id = ?", (record_id,)
            ).fetchone()
        return row is not None

    def pending(
        self, after_seq: int, limit: int, *, max_chunk_bytes: int = 16 * 2**20
    ) -> list[Pending]:
        """The next sealed records after ``after_seq`` with their chunks, in outbox order.

        Fewer than ``limit`` when their attachments would pass ``max_chunk_bytes`` (always at
        least one record), so a batch of photo-laden records stays a few MiB in memory.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, record_id, sealed FROM records WHERE state = 'sealed' AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
            if not rows:
                return []
            marks = ",".join("?" * len(rows))
            sizes = dict(
                self._db.execute(
                    "SELECT record_id, sum(length(chunk)) FROM attachment_chunks"
                    f" WHERE record_id IN ({marks}) GROUP BY record_id",
                    [r[1] for r in rows],
                ).fetchall()
            )
            total = 0
            for count, (_, record_id, _) in enumerate(rows):
                total += sizes.get(record_id, 0)
                if count and total > max_chunk_bytes:
                    rows = rows[:count]
                    break
            chunks: dict[str, list[bytes]] = {}
            if sizes:
                marks = ",".join("?" * len(rows))
                for record_id, blob in self._db.execute(
                    f"SELECT record_id, chunk FROM attachment_chunks WHERE record_id IN ({marks})"
                    " ORDER BY record_id, name, chunk_index",
                    [r[1] for r in rows],
                ):
                    chunks.setdefault(record_id, []).append(bytes(blob))
        return [
            Pending(seq, record_id, bytes(blob), tuple(chunks.get(record_id, ())))
            for seq, record_id, blob in rows
        ]

    def apply_acks(self, acks: Iterable[data_pb2.RecordAck], *, now: float | None = None) -> None:
        """Record the controller's verdicts in one durable transaction."""
        at = self._clock.now().timestamp() if now is None else now
        with self._tx() as db:
            for ack in acks:
                if ack.status in (Ack.STATUS_STORED, Ack.STATUS_DUPLICATE):
                    db.execute(
                        "UPDATE records SET state = 'acked', acked_at = ?, reject_code = NULL,"
                        " reject_reason = NULL WHERE record_id = ? AND state = 'sealed'",
                        (at, ack.record_id),
                    )
                    # The centre holds them now; the device need not keep even the ciphertext.
                    db.execute(
                        "DELETE FROM attachment_chunks WHERE record_id = ?", (ack.record_id,)
                    )
                elif ack.status == Ack.STATUS_REJECTED:
                    db.execute(
                        "UPDATE records SET state = 'rejected', reject_code = ?, reject_reason = ?"
                        " WHERE record_id = ? AND state = 'sealed'",
                        (ack.reason_code, ack.reason, ack.record_id),
                    )

    def stats(self, *, now: float | None = None) -> OutboxStats:
        at = self._clock.now().timestamp() if now is None else now
        with self._lock:
            rows = dict(
                self._db.execute("SELECT state, count(*) FROM records GROUP BY state").fetchall()
            )
            (oldest,) = self._db.execute(
                "SELECT min(sealed_at) FROM records WHERE state = 'sealed'"
            ).fetchone()
        acked, pending, rejected = (
            rows.get("acked", 0),
            rows.get("sealed", 0),
            rows.get("rejected", 0),
        )
        return OutboxStats(
            sealed_total=acked + pending + rejected,
            acked=acked,
            pending=pending,
            rejected=rejected,
            oldest_pending_age_s=max(0.0, at - oldest) if oldest is not None else 0.0,
        )

    def rejected(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return [
                (r, c or "", m or "")
                for r, c, m in self._db.execute(
                    "SELECT record_id, reject_code, reject_reason FROM records WHERE state = 'rejected'"
                    " ORDER BY seq"
                )
            ]

    def states(self, record_ids: Iterable[str]) -> dict[str, str]:
        """Where each of ``record_ids`` stands (sealed / acked / rejected); unknown ones are
        left out. For the console's lists of what was sealed and uploaded."""
        ids = sorted(set(record_ids))
        out: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                marks = ",".join("?" * len(part))
                out.update(
                    self._db.execute(
                        f"SELECT record_id, state FROM records WHERE record_id IN ({marks})", part
                    ).fetchall()
                )
        return out
