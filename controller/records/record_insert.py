"""One batch's new records into the ``records`` table in one round trip, inside the batch's
transaction: ``COPY ... FROM STDIN`` on PostgreSQL (psycopg), one prepared ``executemany`` on
SQLite. The payload arrives as JSON text already serialised by pydantic, so no per-record
``json.dumps`` runs here.

A record id already stored (two streams carrying the same record at once) fails the primary key
either way; it is raised as SQLAlchemy's ``IntegrityError``, which ingest retries on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, Text, bindparam, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controller.db.models import Record
from controller.records.review import COLLECTED

__all__ = ["RECORD_COLUMNS", "insert_records"]

# What ingest gives for each new record; ``payload`` is the payload's JSON text.
RECORD_COLUMNS = (
    "record_id",
    "device_id",
    "content_hash",
    "schema_version",
    "key_version",
    "township_code",
    "category",
    "sealed_at",
    "received_at",
    "payload",
    "id_number",
)
_RECORDS = cast(Table, Record.__table__)
# The payload bound as the text it already is (the JSON column would serialise it again).
_INSERT = insert(_RECORDS).values(payload=bindparam("payload_json", type_=Text()))
_COPY = (
    f"COPY {_RECORDS.name} ({', '.join(RECORD_COLUMNS)}, review_status, approved_level) FROM STDIN"
)
# A new record waits for review at no level yet (the model's defaults, which COPY does not apply).
_REVIEW_DEFAULTS = (COLLECTED, "")


def insert_records(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (each with every name of ``RECORD_COLUMNS``) in the session's
    transaction."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        _copy(connection.connection.driver_connection, rows)
        return
    session.execute(
        _INSERT,
        [
            {
                **{c: row[c] for c in RECORD_COLUMNS if c != "payload"},
                "payload_json": row["payload"],
            }
            for row in rows
        ],
    )


def _copy(driver: Any, rows: Sequence[dict[str, Any]]) -> None:
    import psycopg

    try:
        with driver.cursor() as cursor, cursor.copy(_COPY) as copy:
            for row in rows:
                copy.write_row((*(row[c] for c in RECORD_COLUMNS), *_REVIEW_DEFAULTS))
    except psycopg.IntegrityError as exc:
        raise IntegrityError(_COPY, None, exc) from exc
