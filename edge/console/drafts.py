"""Unsealed records on the device, encrypted at rest.

A draft holds plaintext (names, ID numbers, the photo), so each is stored as AES-256-GCM
ciphertext under a local key the device keeps 0600 in its identity directory, bound to its
record id. SQLite (WAL, ``synchronous=FULL``): a clerk's "saved" survives kill -9. Once a record
is sealed its draft is deleted, so the device keeps only the ciphertext in the outbox.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pydantic import ValidationError

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
"""


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

    def delete(self, record_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM drafts WHERE record_id = ?", (record_id,))

    def _open(self, record_id: str, blob: bytes) -> Draft:
        try:
            return Draft.model_validate_json(open_at_rest(self._key, blob, record_id.encode()))
        except (CryptoError, ValidationError) as exc:
            raise StorageError(f"草稿 {record_id} 无法读取（密钥不符或已损坏）") from exc
