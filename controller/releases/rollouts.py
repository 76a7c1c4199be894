"""Rollouts: a stored release targeted at a region prefix and profiles, in waves.

Each wave is a cumulative percentage of the eligible devices (``1, 10, 100``: 1 %, then up to
10 %, then all), drawn in a seeded order so the same rollout always picks the same devices.
A device is offered the release only once its wave is open. A wave closes, and the next opens,
when every device of it reported healthy on the new version at least ``soak_s`` ago and the
telemetry store shows it kept beating on that version past the soak, with no new reader or
camera fault and its uploads flowing (controller/releases/wave_health.py); when the
share of its devices that rolled back or refused passes ``failure_threshold`` the rollout pauses
by itself and raises a ``rollout`` alert (``alerts`` table, ``open_key`` ``rollout:{id}``),
resolved by resume or abort.

A device inside its region's working hours (update_windows.py) waits for them to end unless the
admin forced the rollout, so the devices outside them take the wave first.

States: ``running`` → ``paused`` ⇄ ``running`` → ``completed``; ``aborted`` from either.

Over 400 lines because it is the one state machine of a rollout and its devices: creating,
offering, recording reports, retrying, gating the waves and reading the status all move the same
rows through the same states, and splitting them would scatter the transitions.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, true, update
from sqlalchemy.orm import Session

from controller.db.models import (
    Alert,
    Device,
    DeviceEvent,
    Release,
    Rollout,
    RolloutDevice,
    UpdateEvent,
)
from controller.releases.wave_health import FAULT_EVENT_KINDS, DeviceHealth, wave_health
from muster.errors import ConflictError, NotFoundError
from muster.regions import level_of
from muster.releases import ReleaseError, parse_version

__all__ = [
    "ACTIVE",
    "FAILED_STATES",
    "MAX_ATTEMPTS",
    "RolloutStatus",
    "WaveStatus",
    "abort_rollout",
    "advance_rollouts",
    "create_rollout",
    "offer_entry",
    "offer_for",
    "pause_rollout",
    "record_report",
    "resume_rollout",
    "retry_device",
    "rollout_status",
]

ACTIVE = ("running", "paused")
# "unhealthy": confirmed the new version, then the telemetry store saw it fail (wave_health.py).
FAILED_STATES = ("rolled_back", "refused", "unhealthy")
_DONE_STATES = ("healthy", *FAILED_STATES)
# A failure the world caused (a damaged or cut download, a full disk) is tried again by itself,
# ``MAX_ATTEMPTS`` tries in all, the wait doubling from ``RETRY_AFTER_S``; one the release or the
# device's trust caused (a crash loop, a foreign key, another profile) only by an admin's hand.
MAX_ATTEMPTS = 3
RETRY_AFTER_S = 900
RETRYABLE_REASONS = (
    "no_space",
    "hash_mismatch",
    "size_mismatch",
    "bad_download",
    "bad_artifact",
    "missing_part",
)
RETRYING = "retrying"
REPORT_STATES = (
    "downloading",
    "verified",
    "switched",
    "healthy",
    "rolled_back",
    "refused",
    "deferred",
)


def _waves(waves: list[float]) -> list[float]:
    if not waves or len(waves) > 10:
        raise ReleaseError("bad_waves", "波次应为 1 到 10 个百分比 (give 1 to 10 wave percentages)")
    if any(not 0 < w <= 100 for w in waves) or waves != sorted(set(waves)) or waves[-1] != 100:
        raise ReleaseError(
            "bad_waves",
            f"波次 {waves} 应严格递增且最后为 100 (cumulative percentages, e.g. 1,10,100)",
        )
    return waves


def create_rollout(
    session: Session,
    *,
    version: str,
    region_prefix: str,
    profiles: list[str],
    waves: list[float],
    soak_s: int,
    health_window_s: int,
    failure_threshold: float,
    now: datetime,
    ignore_working_hours: bool = False,
) -> Rollout:
    release = session.get(Release, version)
    if release is None:
        raise NotFoundError(
            f"没有版本 {version} (no such release): add it first with "
            "`muster controller release add FILE`"
        )
    level_of(region_prefix)  # a region code prefix of a known length, or a clear refusal
    profiles = sorted(set(profiles or release.profiles))
    outside = sorted(set(profiles) - set(release.profiles))
    if outside:
        raise ReleaseError(
            "wrong_profile",
            f"版本 {version} 不适用于型号 {', '.join(outside)} "
            f"(the release is for {', '.join(release.profiles)})",
        )
    if not 0 <= failure_threshold < 1:
        raise ReleaseError("bad_threshold", "失败率阈值应在 0 与 1 之间 (e.g. 0.2 for 20 %)")
    if soak_s < 0 or health_window_s <= 0:
        raise ReleaseError("bad_timing", "观察时间应为正数 (soak and health window in seconds)")
    waves = _waves(waves)
    for other in session.scalars(select(Rollout).where(Rollout.state.in_(ACTIVE))):
        p = other.region_prefix
        overlaps = region_prefix.startswith(p) or p.startswith(region_prefix)
        if overlaps and set(other.profiles) & set(profiles):
            raise ConflictError(
                f"发布计划 #{other.id}（版本 {other.version}，地区 {p or '全国'}）仍在进行，"
                "请先完成或中止它 (another rollout covers these devices; abort it first)"
            )
    rollout = Rollout(
        version=version,
        region_prefix=region_prefix,
        profiles=profiles,
        waves=waves,
        current_wave=0,
        state="running",
        state_reason="",
        soak_s=soak_s,
        health_window_s=health_window_s,
        failure_threshold=failure_threshold,
        created_at=now,
        wave_started_at=now,
        ignore_working_hours=ignore_working_hours,
    )
    session.add(rollout)
    session.flush()
    target = parse_version(version)
    eligible = [
        device_id
        for device_id, running in session.execute(
            select(Device.id, Device.software_version)
            .where(
                Device.township_code.startswith(region_prefix),
                Device.profile.in_(profiles),
                Device.revoked_at.is_(None),
            )
            .order_by(Device.id)
        )
        if not _at_least(running, target)
    ]
    random.Random(f"rollout:{rollout.id}").shuffle(eligible)
    start = 0
    rows: list[RolloutDevice] = []
    for index, percent in enumerate(waves):
        end = min(len(eligible), math.ceil(len(eligible) * percent / 100))
        rows.extend(
            RolloutDevice(rollout_id=rollout.id, device_id=d, wave=index, state="pending")
            for d in eligible[start:end]
        )
        start = end
    session.add_all(rows)
    session.flush()
    return rollout


def _at_least(running: str, target: tuple[int, ...]) -> bool:
    try:
        return parse_version(running) >= target
    except ReleaseError:
        return False


def _get(session: Session, rollout_id: int) -> Rollout:
    rollout = session.get(Rollout, rollout_id, with_for_update=True)
    if rollout is None:
        raise NotFoundError(f"没有发布计划 #{rollout_id} (no such rollout)")
    return rollout


def _resolve_alert(session: Session, rollout_id: int, now: datetime) -> None:
    session.execute(
        update(Alert)
        .where(Alert.open_key == f"rollout:{rollout_id}")
        .values(resolved_at=now, open_key=None)
    )


def pause_rollout(session: Session, rollout_id: int, reason: str, now: datetime) -> Rollout:
    rollout = _get(session, rollout_id)
    if rollout.state != "running":
        raise ConflictError(f"发布计划 #{rollout_id} 状态为 {rollout.state}，不能暂停")
    rollout.state, rollout.state_reason = "paused", reason[:300]
    return rollout


def resume_rollout(session: Session, rollout_id: int, now: datetime) -> Rollout:
    rollout = _get(session, rollout_id)
    if rollout.state != "paused":
        raise ConflictError(f"发布计划 #{rollout_id} 状态为 {rollout.state}，不能继续")
    rollout.state, rollout.state_reason = "running", ""
    # The failures that paused it stay counted: a resumed wave must not pause again at once for
    # them, so the failed devices are taken out of the wave's arithmetic from here on.
    session.execute(
        update(RolloutDevice)
        .where(
            RolloutDevice.rollout_id == rollout_id,
            RolloutDevice.state.in_(FAILED_STATES),
        )
        .values(wave=-1)
    )
    _resolve_alert(session, rollout_id, now)
    return rollout


def abort_rollout(session: Session, rollout_id: int, reason: str, now: datetime) -> Rollout:
    rollout = _get(session, rollout_id)
    if rollout.state not in ACTIVE:
        raise ConflictError(f"发布计划 #{rollout_id} 状态为 {rollout.state}，不能中止")
    rollout.state, rollout.state_reason = "aborted", reason[:300]
    _resolve_alert(session, rollout_id, now)
    return rollout


def offer_for(
    session: Session, device_id: str, now: datetime | None = None
) -> tuple[Rollout, Release] | None:
    """The release this device is to take now: its rollout runs, its wave is open, it has not
    finished (healthy) or given up on it (rolled back, refused), and a retry it waits for is
    due (``now``; without it, any retry is due)."""
    found = offer_entry(session, device_id, now)
    return None if found is None else (found[0], found[1])


def offer_entry(
    session: Session, device_id: str, now: datetime | None = None
) -> tuple[Rollout, Release, RolloutDevice] | None:
    """:func:`offer_for` with the device's entry (its attempt number)."""
    due = (
        (RolloutDevice.state != RETRYING) | (RolloutDevice.next_attempt_at <= now)
        if now is not None
        else true()
    )
    row = session.execute(
        select(Rollout, Release, RolloutDevice)
        .join(RolloutDevice, RolloutDevice.rollout_id == Rollout.id)
        .join(Release, Release.version == Rollout.version)
        .where(
            RolloutDevice.device_id == device_id,
            Rollout.state == "running",
            RolloutDevice.wave >= 0,
            RolloutDevice.wave <= Rollout.current_wave,
            RolloutDevice.state.not_in(_DONE_STATES),
            due,
        )
        .order_by(Rollout.id.desc())
        .limit(1)
    ).first()
    return None if row is None else (row[0], row[1], row[2])


def record_report(
    session: Session,
    device_id: str,
    *,
    rollout_id: int,
    version: str,
    state: str,
    reason: str,
    running_version: str,
    now: datetime,
) -> None:
    session.add(
        UpdateEvent(
            device_id=device_id,
            rollout_id=rollout_id or None,
            version=version[:32],
            state=state,
            reason=reason[:300],
            running_version=running_version[:32],
            at=now,
        )
    )
    entry = session.get(RolloutDevice, (rollout_id, device_id)) if rollout_id else None
    if entry is None:
        return
    rollout = session.get(Rollout, rollout_id)
    if rollout is None or rollout.version != version:
        return
    entry.state, entry.reason, entry.updated_at = state, reason[:300], now
    if state == "healthy" and entry.healthy_at is None:
        entry.healthy_at = now
    code = reason.split(":", 1)[0].strip()
    if state == "refused" and code in RETRYABLE_REASONS and entry.attempts < MAX_ATTEMPTS:
        # Waits, not failed: it does not count toward the wave's failure rate meanwhile.
        entry.state = RETRYING
        entry.next_attempt_at = now + timedelta(seconds=RETRY_AFTER_S * 2 ** (entry.attempts - 1))
        entry.attempts += 1


def retry_device(
    session: Session, rollout_id: int, device_id: str, *, by: str, now: datetime
) -> RolloutDevice:
    """An admin's retry of one device that failed (or waits to retry): offered again at once,
    as its next attempt, in the wave now open. The reason it failed stays in its history."""
    rollout = _get(session, rollout_id)
    if rollout.state not in ACTIVE:
        raise ConflictError(
            f"发布计划 #{rollout_id} 状态为 {rollout.state}，不能重试 (only a running or paused "
            "rollout retries a device; start a new rollout)"
        )
    entry = session.get(RolloutDevice, (rollout_id, device_id), with_for_update=True)
    if entry is None:
        raise NotFoundError(
            f"设备 {device_id} 不在发布计划 #{rollout_id} 中 (the device is not in this rollout)"
        )
    if entry.state not in (*FAILED_STATES, RETRYING):
        raise ConflictError(
            f"设备 {device_id} 在发布计划 #{rollout_id} 中的状态为 {entry.state}，无需重试 "
            "(only a failed device is retried)"
        )
    previous = entry.reason
    entry.state, entry.next_attempt_at, entry.healthy_at = "pending", None, None
    entry.attempts += 1
    entry.wave = min(max(entry.wave, 0), rollout.current_wave)
    entry.updated_at = now
    session.add(
        UpdateEvent(
            device_id=device_id,
            rollout_id=rollout_id,
            version=rollout.version,
            state="retry",
            reason=f"管理员 {by[:40]} 手动重试第 {entry.attempts} 次 (retried by hand); "
            f"上次: {previous}"[:300],
            at=now,
        )
    )
    session.flush()
    return entry


def advance_rollouts(session: Session, now: datetime) -> list[tuple[int, str]]:
    """Open the next wave, complete, or pause each running rollout; returns what changed."""
    changed: list[tuple[int, str]] = []
    for rollout in session.scalars(
        select(Rollout).where(Rollout.state == "running").with_for_update()
    ):
        entries = list(
            session.scalars(
                select(RolloutDevice).where(
                    RolloutDevice.rollout_id == rollout.id,
                    RolloutDevice.wave == rollout.current_wave,
                )
            )
        )
        verdicts = _judge_wave(session, rollout, entries, now)
        failed = [e for e in entries if e.state in FAILED_STATES]
        if entries and len(failed) / len(entries) > rollout.failure_threshold:
            reasons = sorted({e.reason for e in failed if e.reason})
            message = (
                f"发布计划 #{rollout.id}（版本 {rollout.version}）第 {rollout.current_wave + 1} 波 "
                f"{len(failed)}/{len(entries)} 台失败，已自动暂停: {'; '.join(reasons)[:150]}"
            )
            rollout.state, rollout.state_reason = "paused", message[:300]
            if session.scalar(select(Alert.id).where(Alert.open_key == f"rollout:{rollout.id}")):
                continue
            session.add(
                Alert(
                    device_id=failed[0].device_id,
                    kind="rollout",
                    message=message[:300],
                    raised_at=now,
                    open_key=f"rollout:{rollout.id}",
                )
            )
            changed.append((rollout.id, "paused"))
            continue
        if any(v != "settled" for v in verdicts.values()):
            continue
        if rollout.current_wave + 1 >= len(rollout.waves):
            rollout.state = "completed"
            changed.append((rollout.id, "completed"))
        else:
            rollout.current_wave += 1
            rollout.wave_started_at = now
            changed.append((rollout.id, f"wave {rollout.current_wave + 1}"))
    session.flush()
    return changed


def _judge_wave(
    session: Session, rollout: Rollout, entries: list[RolloutDevice], now: datetime
) -> dict[str, str]:
    """Each live entry's verdict (controller/releases/wave_health.py) from the telemetry
    store's rows; an unhealthy one is failed here, with its reason, and counts as failed."""
    live = {e.device_id: e for e in entries if e.state not in FAILED_STATES}
    if not live:
        return {}
    faults: dict[str, int] = {
        device_id: count
        for device_id, count in session.execute(
            select(RolloutDevice.device_id, func.count(DeviceEvent.id))
            .join(DeviceEvent, DeviceEvent.device_id == RolloutDevice.device_id)
            .where(
                RolloutDevice.rollout_id == rollout.id,
                RolloutDevice.wave == rollout.current_wave,
                RolloutDevice.healthy_at.is_not(None),
                DeviceEvent.at >= RolloutDevice.healthy_at,
                DeviceEvent.kind.in_(FAULT_EVENT_KINDS),
            )
            .group_by(RolloutDevice.device_id)
        )
    }
    verdicts: dict[str, str] = {}
    for device in session.scalars(select(Device).where(Device.id.in_(list(live)))):
        entry = live[device.id]
        verdict, reason = wave_health(
            version=rollout.version,
            state=entry.state,
            healthy_at=entry.healthy_at,
            soak_s=rollout.soak_s,
            device=DeviceHealth(
                software_version=device.software_version,
                last_seen=device.last_seen,
                last_heartbeat=device.last_heartbeat,
                backlog_rising=device.backlog_rising,
                faults_since_confirmed=faults.get(device.id, 0),
            ),
            now=now,
        )
        if verdict == "unhealthy":
            entry.state, entry.reason, entry.updated_at = "unhealthy", f"unhealthy: {reason}", now
            session.add(
                UpdateEvent(
                    device_id=device.id,
                    rollout_id=rollout.id,
                    version=rollout.version,
                    state="unhealthy",
                    reason=entry.reason[:300],
                    running_version=device.software_version[:32],
                    at=now,
                )
            )
        verdicts[device.id] = verdict
    return verdicts


@dataclass
class WaveStatus:
    index: int
    percent: float
    devices: int = 0
    states: dict[str, int] = field(default_factory=dict)


@dataclass
class RolloutStatus:
    id: int
    version: str
    region_prefix: str
    profiles: list[str]
    state: str
    state_reason: str
    current_wave: int
    waves: list[WaveStatus]
    failures: list[tuple[str, str, str]]  # device, state, reason


def rollout_status(session: Session, rollout_id: int) -> RolloutStatus:
    rollout = session.get(Rollout, rollout_id)
    if rollout is None:
        raise NotFoundError(f"没有发布计划 #{rollout_id} (no such rollout)")
    waves = [WaveStatus(i, p) for i, p in enumerate(rollout.waves)]
    failures: list[tuple[str, str, str]] = []
    for entry in session.scalars(
        select(RolloutDevice).where(RolloutDevice.rollout_id == rollout_id)
    ):
        if entry.state in FAILED_STATES:
            failures.append((entry.device_id, entry.state, entry.reason))
        if entry.wave < 0:  # failed before a resume; still shown among the failures
            continue
        wave = waves[entry.wave]
        wave.devices += 1
        wave.states[entry.state] = wave.states.get(entry.state, 0) + 1
    return RolloutStatus(
        rollout.id,
        rollout.version,
        rollout.region_prefix,
        list(rollout.profiles),
        rollout.state,
        rollout.state_reason,
        rollout.current_wave,
        waves,
        sorted(failures),
    )
