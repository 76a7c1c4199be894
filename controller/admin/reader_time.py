"""Moments as a person reads them on the admin pages: Beijing time, labelled, e.g.
``2026-12-01 14:05 (北京时间)``. The API keeps ISO 8601 with the offset (pydantic's default for
the aware datetimes controller/db/models/ hands back); only what a person reads goes here."""

from __future__ import annotations

from datetime import UTC, datetime

from muster.clock import CAMPAIGN_TZ

__all__ = ["LABEL", "reader_time"]

LABEL = {"zh": "北京时间", "en": "Beijing time"}


def reader_time(
    value: datetime | None, lang: str = "zh", *, seconds: bool = False, label: bool = True
) -> str:
    """``value`` in Beijing time to the minute (or second), with the zone named in ``lang``;
    "—" for no moment. A naive ``value`` is taken as UTC, which is what the database stores."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    shown = value.astimezone(CAMPAIGN_TZ).strftime(
        "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    )
    return f"{shown} ({LABEL.get(lang, LABEL['zh'])})" if label else shown
