"""Rollout waves on a real database with the virtual clock: who is in which wave, when the next
wave opens, the failure threshold that pauses with an alert the fleet monitor leaves alone."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Alert, RolloutDevice
from controller.devices.pki_store import ControllerPki
from controller.fleet.monitor import FleetMonitor
from controller.releases.keys import load_release_keys
from controller.releases.rollouts import (
    RolloutStatus,
    advance_rollouts,
    create_rollout,
    offer_for,
    record_report,
    resume_rollout,
    rollout_status,
)
from controller.releases.store import add_release
from muster.clock import VirtualClock
from muster.crypto import generate_device_key
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
        assert advance_rollouts(session, NOW + timedelta(minutes=5)) == []  # still soaking
        assert advance_rollouts(session, NOW + timedelta(minutes=12)) == [(rid, "wave 2")]
    second = offered(sessions, ids)
    assert len(second) == 9 and first[0] not in second
    with sessions.begin() as session:
        for d in second:
            _report(session, rid, d, "healthy", timedelta(minutes=20))
        advance_rollouts(session, NOW + timedelta(minutes=31))
    with sessions.begin() as session:
        for d in ids[:-1]:
            _report(session, rid, d, "healthy", timedelta(minutes=40))
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
