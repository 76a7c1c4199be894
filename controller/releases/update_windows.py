"""The regions' working hours as stored (``update_windows``) and the offer's question: is this
device inside them now, so its update waits? The rule itself is working_hours.py."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import Device, Rollout, UpdateWindow
from controller.releases.working_hours import Window, inside_working_hours, window_for
from muster.errors import NotFoundError
from muster.regions import level_of

__all__ = ["set_working_hours", "waits_for_working_hours", "windows"]


def windows(session: Session) -> list[Window]:
    return [
        Window(w.region_prefix, w.start_minute, w.end_minute, w.utc_offset_minutes)
        for w in session.scalars(select(UpdateWindow))
    ]


def waits_for_working_hours(
    session: Session, rollout: Rollout, device_id: str, now: datetime
) -> Window | None:
    """The working-hours window the device is inside now, when its update is to wait for it
    to end (None: offer it now; a forced rollout never waits)."""
    if rollout.ignore_working_hours:
        return None
    township = session.scalar(select(Device.township_code).where(Device.id == device_id))
    window = window_for(windows(session), township or "")
    return window if inside_working_hours(window, now) else None


def set_working_hours(session: Session, window: Window | None, region_prefix: str) -> None:
    """Set (or with None clear) a region prefix's working hours."""
    if region_prefix:
        level_of(region_prefix)
    row = session.get(UpdateWindow, region_prefix, with_for_update=True)
    if window is None:
        if row is None:
            raise NotFoundError(f"地区 {region_prefix or '全国'} 没有设置工作时间 (none set)")
        session.delete(row)
    elif row is None:
        session.add(
            UpdateWindow(
                region_prefix=region_prefix,
                start_minute=window.start_minute,
                end_minute=window.end_minute,
                utc_offset_minutes=window.utc_offset_minutes,
            )
        )
    else:
        row.start_minute, row.end_minute = window.start_minute, window.end_minute
        row.utc_offset_minutes = window.utc_offset_minutes
    session.flush()
