"""Engines for SQLite (a county, the demo) and PostgreSQL (a province or the nation)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from controller.settings import ControllerSettings

__all__ = [
    "MIGRATIONS",
    "alembic_config",
    "make_engine",
    "make_read_only_engine",
    "migrate",
    "open_database",
    "session_factory",
]

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets the admin pages read while ingest writes; FULL makes a commit survive
            # power loss, which is what an ack to a device promises.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            # Checkpoint every ~40 MB of WAL rather than SQLite's 4 MB: a fleet's heartbeats
            # dirty pages all over the devices table, and each checkpoint copies a page once
            # however often it changed since the last (a beat's write: 19 against 15 µs).
            cur.execute("PRAGMA wal_autocheckpoint=10000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def make_read_only_engine(url: str) -> Engine:
    """An engine on a read-only copy of the database (a streaming replica). Every transaction it
    opens is read-only, enforced by the database itself, so a write sent through it by mistake
    fails loudly at once, even when the URL names the primary, instead of landing there."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_read_only(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA query_only=ON")
            cur.close()

        return engine
    return create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        connect_args={"options": "-c default_transaction_read_only=on"},
    )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "heads") -> None:
    """Bring the schema to ``revision``; safe to call on every start."""
    command.upgrade(alembic_config(url), revision)


@contextmanager
def open_database(settings: ControllerSettings) -> Iterator[sessionmaker[Session]]:
    """The controller's database for a one-shot command: the data dir created, the schema brought
    up to date, the engine disposed of afterwards."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url()
    migrate(url)
    engine = make_engine(url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()
