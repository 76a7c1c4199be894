"""The controller's background loops (fleet sweep, CRL publisher, command sender) run on the
clock they are handed and, under the supervisor, are restarted after a growing backoff when
they fail: offline detection, CRL retries and command retries tested in virtual time."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Alert, Command, Device
from controller.demo.simulated_fleet import register_simulated
from controller.devices.pki_store import ControllerPki
from controller.devices.revocation import CrlPublisher, revoke_device
from controller.fleet.commands import CommandSender, Publish, issue_command
from controller.fleet.monitor import FleetMonitor
from controller.fleet.telemetry_consumer import DeviceStateStore
from muster.clock import VirtualClock
from muster.crypto import generate_device_key
from muster.fleet_layout import simulated_device
from muster.supervisor import Supervisor, TaskFailure
from muster.v1 import device_pb2
from tests.unit.test_enrollment import enrol_directly

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
KIOSK = simulated_device(0).device_id  # fixed-kiosk: 60 s heartbeat, offline alert after 900 s


def supervised(
    clock: VirtualClock, jobs: dict[str, Callable[[], Awaitable[None]]]
) -> tuple[Supervisor, list[TaskFailure], asyncio.Task[None]]:
    failures: list[TaskFailure] = []
    supervisor = Supervisor(clock, rng=random.Random(5), on_failure=failures.append)
    for name, job in jobs.items():
        supervisor.add(name, job)
    return supervisor, failures, asyncio.create_task(supervisor.run())


async def stop(running: asyncio.Task[None]) -> None:
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


async def test_the_fleet_monitor_finds_a_silent_device_offline_in_virtual_time(
    sessions: sessionmaker[Session],
) -> None:
    """A kiosk heard from at T0 and then silent is stale after 3 heartbeats and raises its
    offline alert after 900 s, found by the monitor's own loop as virtual time passes."""
    register_simulated(sessions, 1, now=T0)
    clock = VirtualClock(T0, monotonic_start=0.0)
    beat = device_pb2.Heartbeat(
        device_id=KIOSK, sequence=1, collection_allowed=True, licence_days_left=300
    )
    DeviceStateStore(sessions, clock).apply([(KIOSK, "telemetry", beat.SerializeToString())])
    monitor = FleetMonitor(sessions, interval_s=10, clock=clock)
    _supervisor, failures, running = supervised(clock, {"fleet-monitor": monitor.run})

    await clock.advance(200, sleepers=1)
    with sessions() as session:
        device = session.get(Device, KIOSK)
        assert device is not None and device.state == "stale"
        assert list(session.scalars(select(Alert.kind))) == []
    await clock.advance(800, sleepers=1)
    await stop(running)
    with sessions() as session:
        assert list(session.scalars(select(Alert.kind))) == ["offline"]
    assert failures == []


class FlakyCrlPublisher(CrlPublisher):
    """The real publisher with the database away for its first ``failures`` rounds."""

    def __init__(self, *args: object, failures: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.failures = failures

    def publish_if_changed(self) -> bool:
        if self.failures:
            self.failures -= 1
            raise OSError("database unreachable")
        return super().publish_if_changed()


async def test_the_crl_publisher_is_retried_with_backoff_then_follows_revocations(
    sessions: sessionmaker[Session], pki: ControllerPki
) -> None:
    """Two failed rounds are reported and retried after growing delays; then the CRL is
    written, and rewritten within one period of a revocation, never in between."""
    device_id = enrol_directly(sessions, pki, generate_device_key(), now=T0).device_id
    clock = VirtualClock(T0, monotonic_start=0.0)
    crl = FlakyCrlPublisher(sessions, pki, every_s=10.0, clock=clock, failures=2)
    _supervisor, failures, running = supervised(clock, {"crl": crl.run})

    await clock.advance(5, sleepers=1)
    assert [f.failures for f in failures] == [1, 2]
    first, second = (f.restart_in_s for f in failures)
    assert 0.5 <= first < 1.5 and 1.0 <= second < 3.0
    assert pki.crl_path.exists()
    written = pki.crl_path.stat().st_mtime_ns

    await clock.advance(30, sleepers=1)
    assert pki.crl_path.stat().st_mtime_ns == written  # nothing changed, nothing rewritten
    revoke_device(sessions, device_id, reason="stolen", by="t", now=clock.now())
    await clock.advance(10, sleepers=1)
    await stop(running)
    assert pki.crl_path.stat().st_mtime_ns != written
    assert len(failures) == 2


async def test_the_command_sender_waits_for_the_broker_and_survives_a_database_failure(
    sessions: sessionmaker[Session],
) -> None:
    """While the broker is away nothing is claimed; once it is back the command goes out at the
    next interval. A failure in the loop is reported and the sender restarted."""
    register_simulated(sessions, 1, now=T0)
    with sessions.begin() as session:
        command_id = issue_command(session, KIOSK, "restart", now=T0).id
    clock = VirtualClock(T0, monotonic_start=0.0)
    published: list[str] = []
    broker: dict[str, Publish | None] = {"publish": None}

    async def publish(topic: str, payload: bytes) -> None:
        published.append(topic)

    sender = CommandSender(sessions, clock, interval_s=0.5)
    _supervisor, failures, running = supervised(
        clock, {"commands": lambda: sender.run(lambda: broker["publish"])}
    )
    await clock.advance(5, sleepers=1)
    with sessions() as session:
        command = session.get(Command, command_id)
        assert command is not None and command.state == "pending"

    broker["publish"] = publish
    await clock.advance(1, sleepers=1)
    assert published == [f"muster/v1/dev/{KIOSK}/cmd"]
    with sessions() as session:
        command = session.get(Command, command_id)
        assert command is not None and command.state == "sent"
    assert failures == []
    await stop(running)

    # The loop's own failure: reported, and the sender runs again after the backoff.
    calls = 0

    def flaky() -> Publish | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("connection reset")
        return publish

    _supervisor, failures, running = supervised(clock, {"commands": lambda: sender.run(flaky)})
    await clock.advance(5, sleepers=1)
    await stop(running)
    assert [f.name for f in failures] == ["commands"]
    assert calls > 2
