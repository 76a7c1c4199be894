"""Unsealed records on the device, encrypted at rest.

A draft holds plaintext (names, ID numbers, the photo), so each is stored as AES-256-GCM
ciphertext under a local key the device keeps 0600 in its identity directory, bound to its
record id. SQLite (WAL, ``synchronous=FULL``): a clerk's "saved" survives kill -9. Once a record
is sealed its draft is deleted, so the device keeps only the ciphertext in the outbox and, under
the same key, a :class:`SealedEntry` (who it was about, who collected it, its values without
photo or signature) for the clerks' lists and to correct it if the centre refuses it.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.console.workflow import Draft
from edge.durable_store import DurableStore, load_or_create_key
from muster.crypto.slices import close_at_rest, open_at_rest
from muster.errors import CryptoError, StorageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS drafts (
    record_id  TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at REAL NOT NULL,
    blob       BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sealed (
    record_id  TEXT PRIMARY KEY,
    sealed_at  REAL NOT NULL,
    blob       BLOB NOT NULL
);
"""


class SealedEntry(BaseModel):
    """What the console remembers of a record it sealed, encrypted like a draft: who it is
    about and who collected it (for the lists, the counts and the duplicate marks), and the
    values without photo or signature (to correct it if the centre refuses it)."""

    model_config = ConfigDict(extra="ignore")

    record_id: str
    name: str
    id_number: str
    category: str
    entered_by: str
    reviewed_by: str
    sealed_by: str
    sealed_at: dt.datetime
    corrects: str = ""
    task_id: str = ""
    values: dict[str, Any] = Field(default_factory=dict)


class DraftStore(DurableStore):
    def __init__(self, path: Path, key_path: Path) -> None:
        self._key = load_or_create_key(key_path, f"{key_path} 不是草稿密钥：请联系技术支持")
        super().__init__(path, _SCHEMA, what="草稿库", secure_delete=True)

    def _write_failed(self, exc: sqlite3.Error) -> StorageError:
        return StorageError(f"草稿未保存：{exc}")

    def save(self, draft: Draft) -> None:
        blob = close_at_rest(self._key, draft.model_dump_json().encode(), draft.record_id.encode())
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO drafts (record_id, state, updated_at, blob)"
                " VALUES (?, ?, ?, ?)",
                (draft.record_id, draft.state, draft.updated_at.timestamp(), blob),
            )

    def get(self, record_id: str) -> Draft | None:
        with self._lock:
            row = self._db.execute(
                "SELECT blob FROM drafts WHERE record_id = ?", (record_id,)
            ).fetchone()
        return None if row is None else self._open(record_id, bytes(row[0]))

    def all(self) -> list[Draft]:
        with self._lock:
            rows = self._db.execute(
                "SELECT record_id, blob FROM drafts ORDER BY updated_at DESC"
            ).fetchall()
        return [self._open(str(r), bytes(b)) for r, b in rows]

    def sealed_done(self, entry: SealedEntry) -> None:
        """The draft was sealed: delete it and remember ``entry``, in one transaction."""
        blob = close_at_rest(
            self._key, entry.model_dump_json().encode(), b"sealed:" + entry.record_id.encode()
        )
        with self._tx() as db:
            db.execute("DELETE FROM drafts WHERE record_id = ?", (entry.record_id,))
            db.execute(
                "INSERT OR REPLACE INTO sealed (record_id, sealed_at, blob) VALUES (?, ?, ?)",
                (entry.record_id, entry.sealed_at.timestamp(), blob),
            )

    def sealed(self) -> list[SealedEntry]:
        """Every record sealed here, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT record_id, blob FROM sealed ORDER BY sealed_at DESC"
            ).fetchall()
        out = []
        for record_id, blob in rows:
            try:
                plain = open_at_rest(self._key, bytes(blob), b"sealed:" + str(record_id).encode())
                out.append(SealedEntry.model_validate_json(plain))
            except (CryptoError, ValidationError) as exc:
                raise StorageError(
                    f"封存记录 {record_id} 的摘要无法读取（密钥不符或已损坏）"
                ) from exc
        return out

    def delete(self, record_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM drafts WHERE record_id = ?", (record_id,))

    def _open(self, record_id: str, blob: bytes) -> Draft:
        try:
            return Draft.model_validate_json(open_at_rest(self._key, blob, record_id.encode()))
        except (CryptoError, ValidationError) as exc:
            raise StorageError(f"草稿 {record_id} 无法读取（密钥不符或已损坏）") from exc
