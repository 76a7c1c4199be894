"""The township's initial data on the device, encrypted at rest.

SQLite (WAL, ``synchronous=FULL``) under the state dir. Each person is kept as AES-256-GCM
ciphertext under a local key the device holds 0600 in its identity directory, indexed by an
HMAC of the ID number: the file alone gives away neither names nor ID numbers. The transfer
progress (version being fetched, last ID number applied) is kept in the same transactions as
the entries, so a transfer cut at any point resumes where it stopped, and kill -9 never leaves
a version claimed whose entries are missing.

The annual confirmation's visit list travels in the slice too (entries carrying a
``ConfirmationVisit``, all of them in the last chunk of every transfer) and is kept beside the
people, encrypted the same way, each stamped with the transfer it came in: completing a transfer
forgets every visit it did not carry, so the device holds exactly the centre's newest list. What
the clerks confirmed on this device is kept in ``visits_done`` (it outlives a new list until the
centre's list says the same), so the list reads right while the device is offline for days.
"""

from __future__ import annotations

import base64
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
CREATE TABLE IF NOT EXISTS visits (
    idx      TEXT PRIMARY KEY,
    blob     BLOB NOT NULL,
    transfer INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS visits_done (
    idx   TEXT PRIMARY KEY,
    blob  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS visit_meta (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    transfer INTEGER NOT NULL
);
INSERT OR IGNORE INTO visit_meta VALUES (1, 0);
"""
_VISIT_AAD = b"|visit"
_DONE_AAD = b"|visit-done"


def _visit_dict(person: data_pb2.SlicePerson) -> dict[str, Any]:
    visit = person.confirmation
    return {
        "id_number": person.id_number,
        "campaign_id": visit.campaign_id,
        "year": visit.year,
        "status": visit.status,
        "age_band": visit.age_band,
        "visit_planned": visit.visit_planned,
        "name": visit.name,
        "category": visit.category,
        "birth_date": visit.birth_date,
        "face_template": base64.b64encode(visit.face_template).decode(),
        "face_note": visit.face_note,
    }


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
            db.execute("UPDATE visit_meta SET transfer = transfer + 1")
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
            (transfer,) = db.execute("SELECT transfer FROM visit_meta").fetchone()
            for person in people:
                idx = at_rest_index(self._key, person.id_number)
                if person.HasField("confirmation") and not person.removed:
                    plain = json.dumps(_visit_dict(person), ensure_ascii=False).encode()
                    db.execute(
                        "INSERT OR REPLACE INTO visits (idx, blob, transfer) VALUES (?, ?, ?)",
                        (idx, close_at_rest(self._key, plain, idx.encode() + _VISIT_AAD), transfer),
                    )
                if person.removed:
                    db.execute("DELETE FROM people WHERE idx = ?", (idx,))
                    db.execute("DELETE FROM visits WHERE idx = ?", (idx,))
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
            # Every visit of the list is in each transfer's last chunk: one not seen in this
            # transfer has left the centre's list (confirmed elsewhere and gone, died, moved).
            db.execute("DELETE FROM visits WHERE transfer < (SELECT transfer FROM visit_meta)")
            db.execute(
                "UPDATE meta SET version = ?, pending_version = 0, resume_after = ''", (version,)
            )

    def wipe(self, reason: str) -> None:
        """Forget every person (withdrawn or expired slice); the next sync starts from zero."""
        with self._tx() as db:
            db.execute("DELETE FROM people")
            db.execute("DELETE FROM visits")
            db.execute("DELETE FROM visits_done")
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

    def visits(self) -> list[dict[str, Any]]:
        """The confirmation visit list, each entry with ``done`` (what was confirmed here, or
        None) and ``face_template`` as bytes (empty when the centre has none)."""
        with self._lock:
            rows = self._db.execute("SELECT idx, blob FROM visits").fetchall()
            done = dict(self._db.execute("SELECT idx, blob FROM visits_done").fetchall())
        return [self._visit(str(idx), bytes(blob), done.get(idx)) for idx, blob in rows]

    def visit(self, id_number: str) -> dict[str, Any] | None:
        idx = at_rest_index(self._key, id_number)
        with self._lock:
            row = self._db.execute("SELECT blob FROM visits WHERE idx = ?", (idx,)).fetchone()
            done = self._db.execute("SELECT blob FROM visits_done WHERE idx = ?", (idx,)).fetchone()
        if row is None:
            return None
        return self._visit(idx, bytes(row[0]), None if done is None else bytes(done[0]))

    def mark_visit_done(self, id_number: str, done: dict[str, Any]) -> None:
        """Remember a confirmation sealed on this device (kept until the slice is wiped)."""
        idx = at_rest_index(self._key, id_number)
        plain = json.dumps(done, ensure_ascii=False).encode()
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO visits_done (idx, blob) VALUES (?, ?)",
                (idx, close_at_rest(self._key, plain, idx.encode() + _DONE_AAD)),
            )

    def _visit(self, idx: str, blob: bytes, done: bytes | None) -> dict[str, Any]:
        visit: dict[str, Any] = json.loads(open_at_rest(self._key, blob, idx.encode() + _VISIT_AAD))
        visit["face_template"] = base64.b64decode(visit["face_template"])
        marked = (
            None
            if done is None
            else json.loads(open_at_rest(self._key, done, idx.encode() + _DONE_AAD))
        )
        # A mark of an earlier campaign says nothing about this year's.
        visit["done"] = (
            marked
            if marked is not None and marked.get("campaign_id") == visit["campaign_id"]
            else None
        )
        return visit
