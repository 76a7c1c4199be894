"""Structured logging: one JSON or console line per event, with device/record ids bound per task,
and ID numbers and secrets redacted before anything is written."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["configure_logging", "redact"]

# 18-character resident ID numbers; the last character may be X.
_ID_NUMBER = re.compile(r"\b(\d{6})\d{8}(\d{3}[\dXx])\b")
_SECRET_KEYS = frozenset({"password", "enrollment_code", "private_key", "token", "secret"})


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if key in _SECRET_KEYS:
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = _ID_NUMBER.sub(r"\1********\2", value)
    return event


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(message)s")
    for noisy in ("amqtt", "transitions", "sqlalchemy.engine", "alembic", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            # Plain tracebacks: rich ones print local variables, and locals hold ID numbers.
            exception_formatter=structlog.dev.plain_traceback,
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
