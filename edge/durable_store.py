"""What every durable store on the device shares: one SQLite file in WAL mode with
``synchronous=FULL`` (a write is on disk before the call returns, so it survives kill -9 and
power loss), one connection serialised by a lock (the daemon calls in from worker threads), and
write transactions that either commit whole or leave nothing behind."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from muster.crypto import write_secret_file
from muster.errors import MusterError, StorageError

__all__ = ["DurableStore", "load_or_create_key"]


def load_or_create_key(key_path: Path, wrong_key: str) -> bytes:
    """The store's 32-byte at-rest key, created 0600 on first use; ``wrong_key`` is the message
    when the file holds something else."""
    if not key_path.exists():
        write_secret_file(key_path, os.urandom(32))
    key = key_path.read_bytes()
    if len(key) != 32:
        raise StorageError(wrong_key)
    return key


class DurableStore:
    def __init__(self, path: Path, schema: str, *, what: str, secure_delete: bool = False) -> None:
        self.path = path
        self._what = what
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            if secure_delete:
                # Deleted plaintext is overwritten in the file, not merely unlinked from a page.
                self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(schema)
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"{what} {path} cannot be opened: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write_failed(self, exc: sqlite3.Error) -> MusterError:
        """The error a failed write becomes; stores with their own words override it."""
        return StorageError(f"{self._what} write failed, nothing was written: {exc}")

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise self._write_failed(exc) from exc
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
