"""A device's status at the centre stays true when its clock lies, through a real Mosquitto: the
device's real MQTT link (edge/uplink/telemetry.py, its retained online and its last will) runs a
session with its clock 4.9 hours ahead and says goodbye, comes back on a true clock, and then
loses its connection without a word (the chaos suite's clock jump, then kill -9). The
controller's real telemetry consumer and store must read it offline, not online turning stale."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from controller.db import make_engine, migrate, session_factory
from controller.db.models import Device
from controller.demo.simulated_fleet import register_simulated
from controller.fleet.rules import OFFLINE, ONLINE
from controller.fleet.telemetry_consumer import TelemetryConsumer
from controller.fleet.telemetry_store import DeviceStateStore
from controller.settings import ControllerSettings
from edge.uplink.telemetry import TelemetryLink
from muster.clock import SystemClock
from muster.fleet_layout import simulated_device
from muster.v1 import device_pb2
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.tcp_proxy import TcpProxy
from tests.integration.test_broker_failover import until

pytestmark = pytest.mark.timeout(120)

AHEAD = timedelta(hours=4.9)


class AheadClock(SystemClock):
    """The wall clock of a device whose RTC runs ``offset`` ahead; its monotonic clock is true
    (as under libfaketime with FAKETIME_DONT_FAKE_MONOTONIC)."""

    def __init__(self, offset: timedelta) -> None:
        self._offset = offset

    def now(self) -> datetime:
        return super().now() + self._offset


@contextlib.asynccontextmanager
async def running(*jobs: Callable[[], Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    """The jobs as tasks for the block, cancelled (and awaited) when it ends."""
    tasks = [asyncio.create_task(job()) for job in jobs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def link(device_id: str, url: str, clock: SystemClock) -> TelemetryLink:
    """The device's real link, beating every second on ``clock``."""
    sequence = 0

    def beat() -> device_pb2.Heartbeat:
        nonlocal sequence
        sequence += 1
        message = device_pb2.Heartbeat(
            device_id=device_id, sequence=sequence, licence_days_left=300, collection_allowed=True
        )
        message.sent_at.FromDatetime(clock.now())
        return message

    return TelemetryLink(device_id, url, beat, interval_s=1.0, clock=clock)


async def test_a_device_that_ran_hours_ahead_and_then_died_reads_offline(
    mosquitto: MosquittoBroker,
    tcp_proxy_factory: Callable[[str, int], TcpProxy],
    tmp_path: Path,
) -> None:
    """Online, beats and goodbye stamped 4.9 h ahead, then a true session cut off: its last
    will (stamped when it connected) reaches the centre and the device reads offline."""
    url = f"sqlite:///{tmp_path / 'controller.db'}"
    migrate(url)
    sessions: sessionmaker[Session] = session_factory(make_engine(url))
    register_simulated(sessions, 1, now=datetime.now(UTC))
    device_id = simulated_device(0).device_id

    def row() -> Device:
        with sessions() as session:
            found = session.get(Device, device_id)
            assert found is not None
            return found

    clock = SystemClock()
    settings = ControllerSettings(
        data_dir=tmp_path / "ctl", mqtt_url=mosquitto.url, telemetry_flush_s=0.2
    )
    consumer = TelemetryConsumer(settings, DeviceStateStore(sessions, clock), clock)
    async with running(consumer.run, consumer.flush_forever):
        await until(consumer.connected.is_set, 30, "the controller to connect")

        jumped = link(device_id, mosquitto.url, AheadClock(AHEAD))
        async with running(jumped.run):
            await until(
                lambda: (
                    row().online
                    and (row().status_since or datetime.min).replace(tzinfo=UTC)
                    > datetime.now(UTC) + AHEAD / 2
                ),
                30,
                "the jumped session online at the centre",
            )
            await until(lambda: row().heartbeat_sequence >= 2, 30, "its beats")
            await jumped.say_goodbye()
        await until(lambda: not row().online, 30, "its goodbye")

        proxy = tcp_proxy_factory(mosquitto.host, mosquitto.port)
        true = link(device_id, f"mqtt://{proxy.address}", clock)
        async with running(true.run):
            await until(true.connected.is_set, 30, "the device back on a true clock")
            await until(
                lambda: row().online and row().heartbeat_sequence >= 2, 30, "its beats heard"
            )
            assert row().state == ONLINE
            proxy.cut()  # the connection dies without a DISCONNECT: the broker sends the will
            await until(lambda: not row().online, 30, "the last will to reach the centre")
        final = row()
        assert (final.state, final.state_reason) == (OFFLINE, "连接中断（遗嘱消息）"), (
            mosquitto.log()
        )
