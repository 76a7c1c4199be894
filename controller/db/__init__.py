"""Database access for the controller: engines, sessions and migrations."""

from controller.db.engine import (
    make_engine,
    make_read_only_engine,
    migrate,
    open_database,
    session_factory,
)

__all__ = [
    "make_engine",
    "make_read_only_engine",
    "migrate",
    "open_database",
    "session_factory",
]
