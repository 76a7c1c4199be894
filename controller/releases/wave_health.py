"""Whether a device of a rollout's wave is healthy on the new version, from what the controller
already records of it: its own ``healthy`` report, then the telemetry store's view (the
``devices`` row the heartbeats write, the ``device_events`` its faults leave). Pure: the rows and
the time come in, a verdict goes out.

| verdict     | when                                                                        |
|-------------|-----------------------------------------------------------------------------|
| unhealthy   | reader or camera faults since it confirmed the new version, a reader or     |
|             | camera in fault in its last beat, or its outbox grew for                    |
|             | ``BACKLOG_RISING_BEATS`` beats in a row (uploads not flowing)               |
| waiting     | not yet confirmed, not soaked yet, or no heartbeat on the new version since |
|             | the soak ended (a device switched off waits; it is not failed)              |
| settled     | confirmed, soaked, and still beating on the new version after the soak      |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from controller.fleet.rules import BACKLOG_RISING_BEATS

__all__ = ["FAULT_EVENT_KINDS", "DeviceHealth", "wave_health"]

FAULT_EVENT_KINDS = ("KIND_READER_FAULT", "KIND_CAMERA_LOST")
_FAULT_STATE = "COMPONENT_STATE_FAULT"


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """What the telemetry store holds of one device (``devices`` row, fault events since)."""

    software_version: str
    last_seen: datetime | None
    last_heartbeat: dict[str, Any]
    backlog_rising: int
    faults_since_confirmed: int


def wave_health(
    *,
    version: str,
    state: str,
    healthy_at: datetime | None,
    soak_s: int,
    device: DeviceHealth,
    now: datetime,
) -> tuple[str, str]:
    """``(verdict, reason)`` for a device of the current wave; see the module's table."""
    if state != "healthy" or healthy_at is None:
        return "waiting", "尚未确认新版本健康 (not confirmed yet)"
    if device.faults_since_confirmed:
        return "unhealthy", (
            f"新版本运行后出现 {device.faults_since_confirmed} 次读卡器/摄像头故障 "
            "(reader or camera faults since the update)"
        )
    beat = device.last_heartbeat or {}
    broken = [c for c in ("reader", "camera") if beat.get(c) == _FAULT_STATE]
    if broken and device.software_version == version:
        return "unhealthy", f"新版本下 {'、'.join(broken)} 故障 ({' and '.join(broken)} in fault)"
    if device.backlog_rising >= BACKLOG_RISING_BEATS and device.software_version == version:
        return "unhealthy", (
            f"新版本下待上传记录连续 {device.backlog_rising} 次心跳增长 (uploads are not flowing)"
        )
    soaked = healthy_at + timedelta(seconds=soak_s)
    if soaked > now:
        return "waiting", "观察期未满 (soaking)"
    if device.software_version != version or device.last_seen is None:
        return "waiting", "尚无新版本的心跳 (no heartbeat on the new version yet)"
    if device.last_seen < soaked:
        return "waiting", "观察期结束后尚无心跳 (no heartbeat since the soak ended)"
    return "settled", ""
