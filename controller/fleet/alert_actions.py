"""What an admin does with an alert: acknowledge it with a note (who and when are kept), and
assign it to an admin who can see the device. Both leave the alert open; only its rule closes
it. The caller has checked the acting admin covers the alert's device."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import AdminUser, Alert, Device
from muster.errors import ConfigError, NotFoundError

__all__ = [
    "NOTE_MAX",
    "acknowledge_alert",
    "admins_within",
    "alert_township",
    "assign_alert",
    "assignable_admins",
]

NOTE_MAX = 300


def _alert(session: Session, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFoundError(f"没有告警 {alert_id}")
    return alert


def alert_township(session: Session, alert_id: int) -> str | None:
    """The township code of the device an alert is about (None for no such alert)."""
    return session.scalar(
        select(Device.township_code)
        .join(Alert, Alert.device_id == Device.id)
        .where(Alert.id == alert_id)
    )


def acknowledge_alert(
    session: Session, alert_id: int, *, by: str, note: str, now: datetime
) -> Alert:
    """Mark an alert seen by ``by`` with ``note`` (a later acknowledgement replaces it)."""
    note = note.strip()
    if not note:
        raise ConfigError("note：请写明处理情况（如：已电话联系乡镇，设备断电）")
    if len(note) > NOTE_MAX:
        raise ConfigError(f"note：说明最多 {NOTE_MAX} 字，现有 {len(note)} 字")
    alert = _alert(session, alert_id)
    alert.acknowledged_at, alert.acknowledged_by, alert.ack_note = now, by, note
    return alert


def admins_within(session: Session, within: str) -> list[tuple[str, str]]:
    """(username, region prefix) of the enabled admins placed inside ``within``, by name."""
    return [
        (name, prefix)
        for name, prefix in session.execute(
            select(AdminUser.username, AdminUser.region_prefix)
            .where(AdminUser.disabled_at.is_(None), AdminUser.region_prefix.startswith(within))
            .order_by(AdminUser.username)
        )
    ]


def assignable_admins(session: Session, township: str, within: str) -> list[str]:
    """Enabled admins placed inside ``within`` whose area holds ``township``, by name."""
    return [n for n, prefix in admins_within(session, within) if township.startswith(prefix)]


def assign_alert(
    session: Session, alert_id: int, *, to: str, by: str, within: str, now: datetime
) -> Alert:
    """Give an alert to admin ``to``, who must be enabled, placed inside the acting admin's area
    ``within``, and able to see the alert's device."""
    alert = _alert(session, alert_id)
    township = alert_township(session, alert_id) or ""
    if to not in assignable_admins(session, township, within):
        raise ConfigError(f"assignee：{to!r} 不是本辖区内能查看该设备的在用管理员，请从列表中选择")
    alert.assigned_to, alert.assigned_by, alert.assigned_at = to, by, now
    return alert
