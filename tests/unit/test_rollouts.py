"""Rollout waves on a real database with the virtual clock: who is in which wave, when the next
wave opens, the failure threshold that pauses with an alert the fleet monitor leaves alone."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Alert, RolloutDevice, UpdateEvent
from controller.devices.pki_store import ControllerPki
from controller.fleet.monitor import FleetMonitor
from controller.fleet.telemetry_store import DeviceStateStore
from controller.releases.keys import load_release_keys
from controller.releases.rollouts import (
    MAX_ATTEMPTS,
    RETRY_AFTER_S,
    RolloutStatus,
    abort_rollout,
    advance_rollouts,
    create_rollout,
    offer_entry,
    offer_for,
    record_report,
    resume_rollout,
    retry_device,
    rollout_status,
)
from controller.releases.store import add_release
from controller.releases.wave_health import DeviceHealth, wave_health
from muster.clock import VirtualClock
from muster.crypto import generate_device_key
from muster.errors import ConflictError, NotFoundError
from muster.v1 import device_pb2
from tests.unit.conftest import NOW
from tests.unit.test_enrollment import enrol_directly
from tests.unit.test_releases import artifact


def _world(
    tmp_path: Path, pki: ControllerPki, sessions: sessionmaker[Session], n: int
) -> list[str]:
    ids = [enrol_directly(sessions, pki, generate_device_key()).device_id for _ in range(n)]
    ids.append(
        enrol_directly(sessions, pki, generate_device_key(), township="370903001000").device_id
    )
    ring = load_release_keys(pki.directory)
    with sessions.begin() as session:
        add_release(
            session,
            pki.directory.parent,
            artifact(tmp_path, ring.signing.key),
            ring.trusted(),
            now=NOW,
        )
    return ids


def offered(sessions: sessionmaker[Session], ids: list[str]) -> list[str]:
    with sessions() as session:
        return [d for d in ids if offer_for(session, d) is not None]


def status_of(sessions: sessionmaker[Session], rollout_id: int) -> RolloutStatus:
    with sessions() as session:
        return rollout_status(session, rollout_id)


def _report(session: Session, rollout_id: int, device: str, state: str, at: timedelta) -> None:
    record_report(
        session,
        device,
        rollout_id=rollout_id,
        version="0.2.0",
        state=state,
        reason="crash_loop: x" if state == "rolled_back" else "",
        running_version="0.1.0",
        now=NOW + at,
    )


def beat(
    sessions: sessionmaker[Session],
    devices: list[str],
    at: timedelta,
    *,
    version: str = "0.2.0",
    outbox: int = 0,
    reader: int = device_pb2.COMPONENT_STATE_OK,
) -> None:
    """Heartbeats through the real telemetry store, as the consumer applies them."""
    clock = VirtualClock(NOW + at)
    sequence = int(at.total_seconds()) + 1
    DeviceStateStore(sessions, clock).apply(
        [
            (
                d,
                "telemetry",
                device_pb2.Heartbeat(
                    device_id=d,
                    sequence=sequence,
                    software_version=version,
                    outbox_depth=outbox,
                    reader=reader,  # type: ignore[arg-type]
                ).SerializeToString(),
            )
            for d in devices
        ]
    )


def event(sessions: sessionmaker[Session], device: str, kind: int, at: timedelta) -> None:
    DeviceStateStore(sessions, VirtualClock(NOW + at)).apply(
        [(device, "event", device_pb2.Event(kind=kind, message="x").SerializeToString())]  # type: ignore[arg-type]
    )


def test_waves_open_one_after_another_after_the_soak(
    tmp_path: Path, pki: ControllerPki, sessions: sessionmaker[Session]
) -> None:
    ids = _world(tmp_path, pki, sessions, 100)
    with sessions.begin() as session:
        rollout = create_rollout(
            session,
            version="0.2.0",
            region_prefix="370902",
            profiles=[],
            waves=[1, 10, 100],
            soak_s=600,
            health_window_s=900,
            failure_threshold=0.2,
            now=NOW,
        )
        rid = rollout.id
    status = status_of(sessions, rid)
    assert [w.devices for w in status.waves] == [1, 9, 90]  # the other county's device is out
    with sessions() as session:
        waves = {r.device_id: r.wave for r in session.scalars(select(RolloutDevice))}
    assert ids[-1] not in waves
    first = offered(sessions, ids)
    assert len(first) == 1
    with sessions.begin() as session:
        _report(session, rid, first[0], "healthy", timedelta(minutes=1))
    beat(sessions, first, timedelta(minutes=2))
    with sessions.begin() as session:
        assert advance_rollouts(session, NOW + timedelta(minutes=5)) == []  # still soaking
        # Soaked, but no heartbeat since the soak ended: the wave waits for one.
        assert advance_rollouts(session, NOW + timedelta(minutes=12)) == []
    beat(sessions, first, timedelta(minutes=12))
    with sessions.begin() as session:
        assert advance_rollouts(session, NOW + timedelta(minutes=12)) == [(rid, "wave 2")]
    second = offered(sessions, ids)
    assert len(second) == 9 and first[0] not in second
    with sessions.begin() as session:
        for d in second:
            _report(session, rid, d, "healthy", timedelta(minutes=20))
    beat(sessions, second, timedelta(minutes=31))
    with sessions.begin() as session:
        advance_rollouts(session, NOW + timedelta(minutes=31))
    with sessions.begin() as session:
        for d in ids[:-1]:
            _report(session, rid, d, "healthy", timedelta(minutes=40))
    beat(sessions, ids[:-1], timedelta(minutes=55))
    with sessions.begin() as session:
        assert advance_rollouts(session, NOW + timedelta(hours=1)) == [(rid, "completed")]
    assert status_of(sessions, rid).state == "completed"


def test_a_failing_wave_pauses_with_an_alert_that_only_resume_resolves(
    tmp_path: Path, pki: ControllerPki, sessions: sessionmaker[Session]
) -> None:
    ids = _world(tmp_path, pki, sessions, 20)
    with sessions.begin() as session:
        rid = create_rollout(
            session,
            version="0.2.0",
            region_prefix="",
            profiles=["simulator"],
            waves=[25, 100],
            soak_s=0,
            health_window_s=900,
            failure_threshold=0.2,
            now=NOW,
        ).id
    first = offered(sessions, ids)
    assert len(first) == 6
    with sessions.begin() as session:
        _report(session, rid, first[0], "rolled_back", timedelta(minutes=1))
        assert advance_rollouts(session, NOW + timedelta(minutes=2)) == []  # 1/6 < 20 %
        _report(session, rid, first[1], "rolled_back", timedelta(minutes=3))
        assert advance_rollouts(session, NOW + timedelta(minutes=4)) == [(rid, "paused")]
    assert not offered(sessions, ids)
    # The fleet monitor's sweep resolves only the alerts of its own rules.
    FleetMonitor(sessions, clock=VirtualClock(NOW + timedelta(minutes=5))).sweep()
    with sessions() as session:
        alert = session.scalar(select(Alert).where(Alert.kind == "rollout"))
        assert alert is not None and alert.resolved_at is None and "2/6" in alert.message
    with sessions.begin() as session:
        resume_rollout(session, rid, NOW + timedelta(minutes=6))
    with sessions() as session:
        assert session.scalar(select(Alert.resolved_at).where(Alert.kind == "rollout"))
    status = status_of(sessions, rid)
    assert status.state == "running" and len(status.failures) == 2
    # The failed devices are not offered the release again; the rest of the wave is.
    assert set(offered(sessions, ids)) == set(first[2:])


def _one_wave(
    tmp_path: Path, pki: ControllerPki, sessions: sessionmaker[Session], *, healthy: bool = True
) -> tuple[int, list[str]]:
    ids = _world(tmp_path, pki, sessions, 4)[:-1]
    with sessions.begin() as session:
        rid = create_rollout(
            session,
            version="0.2.0",
            region_prefix="370902",
            profiles=[],
            waves=[100],
            soak_s=300,
            health_window_s=900,
            failure_threshold=0.3,
            now=NOW,
        ).id
        for d in ids if healthy else []:
            _report(session, rid, d, "healthy", timedelta(minutes=1))
    return rid, ids


def test_a_reader_fault_after_the_update_fails_the_device_and_pauses_the_rollout(
    tmp_path: Path, pki: ControllerPki, sessions: sessionmaker[Session]
) -> None:
    """Faults from before the switch do not count; one after the device confirmed the new
    version fails it (reason kept, in its history) and, past the threshold, pauses."""
    rid, ids = _one_wave(tmp_path, pki, sessions)
    event(sessions, ids[0], device_pb2.Event.KIND_READER_FAULT, timedelta(seconds=30))
    beat(sessions, ids, timedelta(minutes=2))
    with sessions.begin() as session:
        assert advance_rollouts(session, NOW + timedelta(minutes=3)) == []
    assert status_of(sessions, rid).failures == []
    event(sessions, ids[1], device_pb2.Event.KIND_CAMERA_LOST, timedelta(minutes=4))
    event(sessions, ids[2], device_pb2.Event.KIND_READER_FAULT, timedelta(minutes=4))
    with sessions.begin() as session:
        assert advance_rollouts(session, NOW + timedelta(minutes=5)) == [(rid, "paused")]
    status = status_of(sessions, rid)
    assert status.state == "paused"
    assert [(d, s) for d, s, _ in status.failures] == sorted((d, "unhealthy") for d in ids[1:3])
    assert all("faults since the update" in r for _, _, r in status.failures)
    with sessions() as session:
        history = list(
            session.scalars(select(UpdateEvent.state).where(UpdateEvent.device_id == ids[1]))
        )
    assert history == ["healthy", "unhealthy"]


def test_uploads_not_flowing_or_a_reader_in_fault_on_the_new_version_fail_the_device(
    tmp_path: Path, pki: ControllerPki, sessions: sessionmaker[Session]
) -> None:
    rid, ids = _one_wave(tmp_path, pki, sessions)
    for n in range(7):  # the outbox grows beat after beat
        beat(sessions, [ids[0]], timedelta(minutes=2, seconds=n), outbox=10 + n)
    beat(sessions, [ids[1]], timedelta(minutes=2), reader=device_pb2.COMPONENT_STATE_FAULT)
    beat(sessions, [ids[2]], timedelta(minutes=2))
    with sessions.begin() as session:
        advance_rollouts(session, NOW + timedelta(minutes=3))
    reasons = {d: r for d, _, r in status_of(sessions, rid).failures}
    assert "uploads are not flowing" in reasons[ids[0]]
    assert "reader in fault" in reasons[ids[1]]
    assert ids[2] not in reasons


def test_a_device_still_beating_on_the_old_version_holds_the_wave(
    tmp_path: Path, pki: ControllerPki, sessions: sessionmaker[Session]
) -> None:
    """A device that said it is healthy but whose heartbeats still name the old version (a
    report the telemetry store does not bear out) does not close the wave."""
    rid, ids = _one_wave(tmp_path, pki, sessions)
    beat(sessions, ids[:-1], timedelta(minutes=7))
    beat(sessions, ids[-1:], timedelta(minutes=7), version="0.1.0")
    with sessions.begin() as session:
        assert advance_rollouts(session, NOW + timedelta(minutes=8)) == []
    beat(sessions, ids[-1:], timedelta(minutes=9))
    with sessions.begin() as session:
        assert advance_rollouts(session, NOW + timedelta(minutes=9)) == [(rid, "completed")]


LATER = NOW + timedelta(hours=2)
FAULT = "COMPONENT_STATE_FAULT"


@pytest.mark.parametrize(
    ("state", "device", "now", "verdict"),
    [
        ("switched", DeviceHealth("0.2.0", LATER, {}, 0, 0), LATER, "waiting"),
        ("healthy", DeviceHealth("0.2.0", NOW, {}, 0, 0), NOW, "waiting"),  # soaking
        ("healthy", DeviceHealth("0.2.0", None, {}, 0, 0), LATER, "waiting"),  # never beat
        ("healthy", DeviceHealth("", LATER, {}, 0, 0), LATER, "waiting"),  # old version beats
        ("healthy", DeviceHealth("0.2.0", NOW, {}, 0, 0), LATER, "waiting"),  # none since soak
        ("healthy", DeviceHealth("0.2.0", LATER, {}, 0, 0), LATER, "settled"),
        ("healthy", DeviceHealth("0.2.0", LATER, {}, 0, 1), LATER, "unhealthy"),
        ("healthy", DeviceHealth("0.2.0", LATER, {"camera": FAULT}, 0, 0), LATER, "unhealthy"),
        ("healthy", DeviceHealth("0.2.0", LATER, {}, 5, 0), LATER, "unhealthy"),
        # A fault or a backlog while it still runs the old version is not the new one's.
        ("healthy", DeviceHealth("0.1.0", LATER, {"camera": FAULT}, 9, 0), LATER, "waiting"),
        # Junk in the stored beat is ignored, not trusted.
        (
            "healthy",
            DeviceHealth("0.2.0", LATER, {"reader": ["x"], "camera": None}, 0, 0),
            LATER,
            "settled",
        ),
    ],
)
def test_the_wave_health_table(
    state: str, device: DeviceHealth, now: datetime, verdict: str
) -> None:
    """Each line of controller/releases/wave_health.py's table, and its edges."""
    got, reason = wave_health(
        version="0.2.0",
        state=state,
        healthy_at=None if state != "healthy" else NOW,
        soak_s=3600,
        device=device,
        now=now,
    )
    assert got == verdict, reason
    assert (reason == "") == (got == "settled")


def _refuse(session: Session, rid: int, device: str, reason: str, at: timedelta) -> None:
    record_report(
        session,
        device,
        rollout_id=rid,
        version="0.2.0",
        state="refused",
        reason=reason,
        running_version="0.1.0",
        now=NOW + at,
    )


def test_a_transient_failure_is_retried_with_backoff_then_given_up_with_its_reason(
    tmp_path: Path, pki: ControllerPki, sessions: sessionmaker[Session]
) -> None:
    rid, ids = _one_wave(tmp_path, pki, sessions, healthy=False)
    device = ids[0]
    waits = []
    for attempt in (1, 2):
        with sessions() as session:
            found = offer_entry(session, device, NOW + timedelta(hours=10))
            assert found is not None and found[2].attempts == attempt
        with sessions.begin() as session:
            _refuse(session, rid, device, "hash_mismatch: 部件 x 的 SHA-256 不符", timedelta(0))
            entry = session.get(RolloutDevice, (rid, device))
            assert entry is not None and entry.state == "retrying"
            assert entry.reason.startswith("hash_mismatch") and entry.next_attempt_at
            waits.append(entry.next_attempt_at - NOW)
            assert offer_for(session, device, NOW + waits[-1] - timedelta(seconds=1)) is None
            assert offer_for(session, device, NOW + waits[-1]) is not None
            # Waiting to retry is not failed: the wave does not pause for it.
            assert advance_rollouts(session, NOW + timedelta(minutes=1)) == []
    assert waits == [timedelta(seconds=RETRY_AFTER_S), timedelta(seconds=2 * RETRY_AFTER_S)]
    with sessions.begin() as session:
        _refuse(session, rid, device, "hash_mismatch: again", timedelta(hours=2))
        entry = session.get(RolloutDevice, (rid, device))
        assert entry is not None and entry.state == "refused" and entry.attempts == MAX_ATTEMPTS
        assert offer_for(session, device, NOW + timedelta(days=30)) is None


def test_a_release_fault_is_not_retried_by_itself_but_an_admin_can_retry_the_device(
    tmp_path: Path, pki: ControllerPki, sessions: sessionmaker[Session]
) -> None:
    rid, ids = _one_wave(tmp_path, pki, sessions, healthy=False)
    with sessions.begin() as session:
        _refuse(session, rid, ids[0], "wrong_profile: another profile", timedelta(0))
        _report(session, rid, ids[1], "rolled_back", timedelta(minutes=2))
    for device in ids[:2]:
        with sessions() as session:
            assert offer_for(session, device, NOW + timedelta(days=1)) is None
    with sessions.begin() as session:
        entry = retry_device(session, rid, ids[1], by="admin1", now=NOW + timedelta(hours=1))
        assert (entry.state, entry.attempts) == ("pending", 2)
    with sessions() as session:
        found = offer_entry(session, ids[1], NOW + timedelta(hours=1))
        assert found is not None and found[2].attempts == 2
        history = list(
            session.scalars(
                select(UpdateEvent).where(UpdateEvent.device_id == ids[1]).order_by(UpdateEvent.id)
            )
        )
    assert [e.state for e in history] == ["rolled_back", "retry"]
    assert "admin1" in history[-1].reason and "crash_loop" in history[-1].reason


def test_bad_retries_are_refused_and_change_nothing(
    tmp_path: Path, pki: ControllerPki, sessions: sessionmaker[Session]
) -> None:
    rid, ids = _one_wave(tmp_path, pki, sessions)
    outsider = "370903001000-XXXXXX"
    cases = [
        (rid + 99, ids[0], NotFoundError, "没有发布计划"),
        (rid, outsider, NotFoundError, "不在发布计划"),
        (rid, ids[0], ConflictError, "无需重试"),  # it is healthy
        (rid, "x" * 5000, NotFoundError, "不在发布计划"),
    ]
    for rollout_id, device, error, words in cases:
        with sessions.begin() as session, pytest.raises(error, match=words):
            retry_device(session, rollout_id, device, by="a", now=NOW)
    with sessions.begin() as session:
        _report(session, rid, ids[1], "rolled_back", timedelta(minutes=2))
        abort_rollout(session, rid, "done", NOW)
    with sessions.begin() as session, pytest.raises(ConflictError, match="不能重试"):
        retry_device(session, rid, ids[1], by="a", now=NOW)
    with sessions() as session:
        entry = session.get(RolloutDevice, (rid, ids[1]))
        assert entry is not None and (entry.state, entry.attempts) == ("rolled_back", 1)
        assert not list(session.scalars(select(UpdateEvent).where(UpdateEvent.state == "retry")))
