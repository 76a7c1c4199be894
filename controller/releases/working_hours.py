"""The campaign's working hours per region, when devices are busy collecting and an update waits:
a window of local time (``08:00-18:00``; one that wraps midnight, ``22:00-06:00``, is allowed)
for a region code prefix, the longest prefix that covers a device's township applying. Local
time is the region's: the campaign's time zone (UTC+8) unless the window names another offset.
Pure: windows and the time come in, the verdict goes out; the rows are ``update_windows``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from muster.clock import CAMPAIGN_TZ
from muster.releases import ReleaseError

__all__ = ["Window", "inside_working_hours", "parse_window", "window_for"]

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$")
_OFFSET_H = int(CAMPAIGN_TZ.utcoffset(None) / timedelta(hours=1))  # 8


@dataclass(frozen=True, slots=True)
class Window:
    region_prefix: str
    start_minute: int  # local minutes after midnight
    end_minute: int  # exclusive; below start: the window wraps midnight
    utc_offset_minutes: int = _OFFSET_H * 60

    def text(self) -> str:
        def hhmm(m: int) -> str:
            return f"{m // 60:02d}:{m % 60:02d}"

        return f"{hhmm(self.start_minute)}-{hhmm(self.end_minute)}"


def parse_window(region_prefix: str, text: str, utc_offset_hours: float = _OFFSET_H) -> Window:
    """``08:00-18:00`` for a region prefix; a clear refusal for anything else."""
    found = _HHMM.match(text.strip()) if isinstance(text, str) else None
    if found is None:
        raise ReleaseError(
            "bad_window",
            f"工作时间 {str(text)[:40]!r} 格式不对，应为 HH:MM-HH:MM，例如 08:00-18:00 "
            "(give working hours as HH:MM-HH:MM)",
        )
    start = int(found[1]) * 60 + int(found[2])
    end = int(found[3]) * 60 + int(found[4])
    if end > 24 * 60 or start == end:
        raise ReleaseError(
            "bad_window",
            f"工作时间 {text.strip()} 的开始与结束相同或超过 24:00 (start and end must differ)",
        )
    if not -12 <= utc_offset_hours <= 14 or (utc_offset_hours * 4) % 1:
        raise ReleaseError(
            "bad_window",
            f"时区偏移 {utc_offset_hours} 不对，应在 -12 与 14 小时之间 (UTC offset in hours)",
        )
    return Window(region_prefix, start, end, round(utc_offset_hours * 60))


def window_for(windows: Iterable[Window], township_code: str) -> Window | None:
    """The window of the longest prefix covering the township, or None (no working hours)."""
    covering = [w for w in windows if township_code.startswith(w.region_prefix)]
    return max(covering, key=lambda w: len(w.region_prefix), default=None)


def inside_working_hours(window: Window | None, now: datetime) -> bool:
    if window is None:
        return False
    local = now.astimezone(timezone(timedelta(minutes=window.utc_offset_minutes)))
    minute = local.hour * 60 + local.minute
    if window.start_minute < window.end_minute:
        return window.start_minute <= minute < window.end_minute
    return minute >= window.start_minute or minute < window.end_minute
