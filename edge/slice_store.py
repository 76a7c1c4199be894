"""The township's initial data on the device, encrypted at rest.

SQLite (WAL, ``synchronous=FULL``) under the state dir. Each person is kept as AES-256-GCM
ciphertext under a local key the device holds 0600 in its identity directory, indexed by an
HMAC of the ID number: the file alone gives away neither names nor ID numbers. The transfer
progress (version being fetched, last ID number applied) is kept in the same transactions as
the entries, so a transfer cut at any point resumes where it stopped, and kill -9 never leaves
a version claimed whose entries are missing.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.durable_store import DurableStore, load_or_create_key
from muster.crypto.slices import at_rest_index, close_at_rest, open_at_rest
from muster.errors import StorageError
from muster.v1 import data_pb2

__all__ = ["SliceStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS people (
    idx   TEXT PRIMARY KEY,
    blob  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    version         INTEGER NOT NULL,
    not_after       REAL,
    pending_version INTEGER NOT NULL,
    resume_after    TEXT NOT NULL,
    wiped_reason    TEXT NOT NULL
);
INSERT OR IGNORE INTO meta VALUES (1, 0, NULL, 0, '', '');
"""


class SliceStore(DurableStore):
    def __init__(self, path: Path, key_path: Path) -> None:
        self._key = load_or_create_key(
            key_path, f"{key_path} is not a slice key; remove it and the slice to resync"
        )
        super().__init__(path, _SCHEMA, what="slice store")

    def _write_failed(self, exc: sqlite3.Error) -> StorageError:
        return StorageError(f"初始数据写入失败：{exc}")

    def _meta(self) -> tuple[int, float | None, int, str, str]:
        with self._lock:
            row = self._db.execute(
                "SELECT version, not_after, pending_version, resume_after, wiped_reason FROM meta"
            ).fetchone()
        return int(row[0]), row[1], int(row[2]), str(row[3]), str(row[4])

    @property
    def version(self) -> int:
        return self._meta()[0]

    def resume_point(self) -> tuple[int, str]:
        """(version being fetched, last ID number applied) of an interrupted transfer."""
        _v, _n, pending, after, _w = self._meta()
        return pending, after

    @property
    def wiped_reason(self) -> str:
        return self._meta()[4]

    def begin(self, manifest: data_pb2.SliceManifest) -> None:
        not_after = (
            manifest.not_after.ToDatetime(tzinfo=UTC).timestamp()
            if manifest.HasField("not_after")
            else None
        )
        with self._tx() as db:
            if manifest.full and not manifest.resume_after:
                db.execute("DELETE FROM people")
            db.execute(
                "UPDATE meta SET pending_version = ?, resume_after = ?, not_after = ?,"
                " wiped_reason = ''",
                (manifest.version, manifest.resume_after, not_after),
            )

    def apply(self, people: Iterable[data_pb2.SlicePerson]) -> None:
        last = None
        with self._tx() as db:
            for person in people:
                idx = at_rest_index(self._key, person.id_number)
                if person.removed:
                    db.execute("DELETE FROM people WHERE idx = ?", (idx,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO people (idx, blob) VALUES (?, ?)",
                        (idx, close_at_rest(self._key, bytes(person.details), idx.encode())),
                    )
                last = person.id_number
            if last is not None:
                db.execute("UPDATE meta SET resume_after = ?", (last,))

    def complete(self, version: int) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE meta SET version = ?, pending_version = 0, resume_after = ''", (version,)
            )

    def wipe(self, reason: str) -> None:
        """Forget every person (withdrawn or expired slice); the next sync starts from zero."""
        with self._tx() as db:
            db.execute("DELETE FROM people")
            db.execute(
                "UPDATE meta SET version = 0, pending_version = 0, resume_after = '',"
                " not_after = NULL, wiped_reason = ?",
                (reason,),
            )
        with self._lock:
            # Deleted pages may still hold ciphertext; give them back to the file system.
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.execute("VACUUM")

    def expired(self, now: datetime) -> bool:
        not_after = self._meta()[1]
        return not_after is not None and now.timestamp() >= not_after

    def count(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT count(*) FROM people").fetchone()
        return int(n)

    def find(self, id_number: str) -> dict[str, Any] | None:
        idx = at_rest_index(self._key, id_number)
        with self._lock:
            row = self._db.execute("SELECT blob FROM people WHERE idx = ?", (idx,)).fetchone()
        return None if row is None else self._open(idx, bytes(row[0]))

    def random_person(self, rng: random.Random) -> dict[str, Any] | None:
        with self._lock:
            (n,) = self._db.execute("SELECT count(*) FROM people").fetchone()
            if not n:
                return None
            row = self._db.execute(
                "SELECT idx, blob FROM people LIMIT 1 OFFSET ?", (rng.randrange(n),)
            ).fetchone()
        return self._open(str(row[0]), bytes(row[1]))

    def people(self) -> list[dict[str, Any]]:
        """Every person of the slice, opened: the console builds its search index from it."""
        with self._lock:
            rows = self._db.execute("SELECT idx, blob FROM people").fetchall()
        return [self._open(str(idx), bytes(blob)) for idx, blob in rows]

    def _open(self, idx: str, blob: bytes) -> dict[str, Any]:
        details: dict[str, Any] = json.loads(open_at_rest(self._key, blob, idx.encode()))
        return details
