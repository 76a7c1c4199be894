"""Unsealed records on the device, encrypted at rest.

A draft holds plaintext (names, ID numbers, the photo), so each is stored as AES-256-GCM
ciphertext under a local key the device keeps 0600 in its identity directory, bound to its
record id. SQLite (WAL, ``synchronous=FULL``): a clerk's "saved" survives kill -9. Once a record
is sealed its draft is deleted, so the device keeps only the ciphertext in the outbox.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from edge.console.workflow import Draft
from muster.crypto import write_secret_file
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


class DraftStore:
    def __init__(self, path: Path, key_path: Path) -> None:
        if not key_path.exists():
            write_secret_file(key_path, os.urandom(32))
        self._key = key_path.read_bytes()
        if len(self._key) != 32:
            raise StorageError(f"{key_path} 不是草稿密钥：请联系技术支持")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"草稿库 {path} 无法打开：{exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StorageError(f"草稿未保存：{exc}") from exc
                raise

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
