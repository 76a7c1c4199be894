"""Reading values a peer put on the wire that protobuf decodes but the centre cannot always
hold.

A ``google.protobuf.Timestamp`` carries any 64-bit count of seconds, while a datetime holds the
years 0001-9999 (``ToDatetime`` raises ``ValueError`` outside them); a proto3 enum field carries
any 32-bit number, while ``Name`` knows only the values this release defines; a ``uint64`` goes
past a database's signed 64-bit integer, a ``string`` past its column's length and may hold NUL
(PostgreSQL text cannot), a ``double`` may be NaN or infinite (JSON and a NOT NULL column hold
neither). Telemetry and uploads come from devices a hostile party may hold, and one value that
fails a batch's statement fails the batch, so what such a value becomes is decided here, once,
for every reader: an impossible time reads as absent, an unknown enum value as its number, an
integer as the nearest the column holds, text without NUL and cut to its column, a non-finite
number as absent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

__all__ = [
    "TIMESTAMP_MAX_S",
    "TIMESTAMP_MIN_S",
    "enum_name",
    "finite_or_none",
    "fit_int",
    "fit_text",
    "timestamp_or_none",
]

_Value = TypeVar("_Value", bound=int)

# 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range protobuf's Timestamp documents.
TIMESTAMP_MIN_S = -62_135_596_800
TIMESTAMP_MAX_S = 253_402_300_799


def timestamp_or_none(message: Any, field: str) -> datetime | None:
    """``message.field`` as an aware UTC datetime; None when unset or outside 0001-9999."""
    if not message.HasField(field):
        return None
    value: Timestamp = getattr(message, field)
    if not TIMESTAMP_MIN_S <= value.seconds <= TIMESTAMP_MAX_S or not 0 <= value.nanos < 10**9:
        return None
    return value.ToDatetime(tzinfo=UTC)


def enum_name(name: Callable[[_Value], str], number: _Value) -> str:
    """``name(number)`` (an enum's ``Name``), or the number when this release does not define
    it (a newer device)."""
    try:
        return name(number)
    except ValueError:
        return str(number)


def fit_int(value: int, bits: int = 64) -> int:
    """``value`` within a signed integer column of ``bits`` bits (its nearest end outside)."""
    top = (1 << (bits - 1)) - 1
    return max(-top - 1, min(top, value))


def fit_text(value: str, length: int | None = None) -> str:
    """``value`` without NUL characters, cut to ``length`` characters when given."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value if length is None else value[:length]


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
