"""What a device's state is and which alerts it raises, decided from a snapshot of what the
controller knows about it. Pure: no database, no clock (``now`` is a parameter).

States: ``online`` (its retained status says online and heartbeats arrive), ``stale`` (the status
still says online but no heartbeat for 3 intervals: the device or its link hangs without the
broker noticing), ``offline`` (status offline: a goodbye or the last will).

Alert rules, each open until it no longer holds:

| kind           | when                                                                     |
|----------------|--------------------------------------------------------------------------|
| offline        | offline or stale for longer than the profile's ``offline_alert_after_s`` |
| backlog        | the outbox grew over the last 5 heartbeats in a row                      |
| licence        | fewer than 30 days of licence left (or none valid)                       |
| reader_faults  | 3 or more reader faults within the last hour                             |
| clock_skew     | device clock more than 300 s from the controller's                       |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

ONLINE, STALE, OFFLINE = "online", "stale", "offline"
STATES = (ONLINE, STALE, OFFLINE)

STALE_AFTER_BEATS = 3
BACKLOG_RISING_BEATS = 5
LICENCE_WARN_DAYS = 30
READER_FAULTS_PER_HOUR = 3
CLOCK_SKEW_LIMIT_S = 300.0

ALERT_KINDS = ("offline", "backlog", "licence", "reader_faults", "clock_skew")


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    device_id: str
    online: bool  # what the retained status (or the latest heartbeat) says
    state: str  # the state last recorded
    state_reason: str
    status_since: datetime | None
    last_seen: datetime | None
    enrolled_at: datetime
    revoked: bool
    heartbeat_interval_s: float
    offline_alert_after_s: float
    licence_days_left: int | None
    collection_allowed: bool
    clock_skew_s: float
    backlog_rising: int
    outbox_depth: int
    reader_faults_last_hour: int
    # When the centre took in the current status, on its own clock (``status_since`` is the
    # device's stamp, which may run hours off).
    status_received_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Classification:
    state: str
    reason: str


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} 秒"
    if seconds < 7200:
        return f"{seconds / 60:.0f} 分钟"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} 小时"
    return f"{seconds / 86400:.1f} 天"


def classify(device: DeviceSnapshot, now: datetime) -> Classification:
    if not device.online:
        return Classification(OFFLINE, device.state_reason if device.state == OFFLINE else "离线")
    stale_after = timedelta(seconds=device.heartbeat_interval_s * STALE_AFTER_BEATS)
    if device.last_seen is None or now - device.last_seen > stale_after:
        silent = (now - (device.last_seen or device.enrolled_at)).total_seconds()
        return Classification(STALE, f"状态为在线，但已 {_ago(silent)} 没有心跳")
    if device.state == ONLINE:
        return Classification(ONLINE, device.state_reason)
    return Classification(ONLINE, "心跳恢复")


def _offline_for(device: DeviceSnapshot, state: str, now: datetime) -> float:
    since = (device.last_seen or device.enrolled_at) if state == STALE else _went_offline(device)
    return (now - since).total_seconds()


def _went_offline(device: DeviceSnapshot) -> datetime:
    """When the device went offline, on the centre's clock, as near as the centre can tell.

    Its own stamp, corrected by the clock skew it last measured against the centre; no earlier
    than the device was last heard (a last will carries the connect time of the session it
    ends); no later than the centre took the status in (a clock running ahead, uncorrected,
    cannot put it in the future). A goodbye from a device that was off for hours before this
    controller first heard of it therefore counts from the goodbye, not from its arrival."""
    estimates = [device.last_seen] if device.last_seen is not None else []
    if device.status_since is not None:
        estimates.append(device.status_since - timedelta(seconds=device.clock_skew_s))
    since = max(estimates) if estimates else device.enrolled_at
    received = device.status_received_at
    return min(since, received) if received is not None else since


def alerts(device: DeviceSnapshot, state: str, now: datetime) -> dict[str, str]:
    """The alerts that hold right now: kind -> operator-facing message (Simplified Chinese)."""
    if device.revoked:
        return {}  # a revoked device is out of the fleet; nothing about it needs attention
    out: dict[str, str] = {}
    if state != ONLINE:
        gone = _offline_for(device, state, now)
        if gone > device.offline_alert_after_s:
            word = "无心跳" if state == STALE else "离线"
            out["offline"] = f"{word}已 {_ago(gone)}（允许 {_ago(device.offline_alert_after_s)}）"
    if device.backlog_rising >= BACKLOG_RISING_BEATS:
        out["backlog"] = (
            f"待上传记录连续 {device.backlog_rising} 次心跳增长，现有 {device.outbox_depth} 条"
        )
    if device.licence_days_left is not None and device.last_seen is not None:
        if not device.collection_allowed and device.licence_days_left <= 0:
            out["licence"] = "授权无效，设备不能采集"
        elif device.licence_days_left < LICENCE_WARN_DAYS:
            out["licence"] = f"授权将在 {device.licence_days_left} 天后到期"
    if device.reader_faults_last_hour >= READER_FAULTS_PER_HOUR:
        out["reader_faults"] = f"一小时内读卡器故障 {device.reader_faults_last_hour} 次"
    if abs(device.clock_skew_s) > CLOCK_SKEW_LIMIT_S:
        out["clock_skew"] = f"设备时钟偏差 {device.clock_skew_s:+.0f} 秒"
    return out


__all__ = [
    "ALERT_KINDS",
    "OFFLINE",
    "ONLINE",
    "STALE",
    "STATES",
    "Classification",
    "DeviceSnapshot",
    "alerts",
    "classify",
]
