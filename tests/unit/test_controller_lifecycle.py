"""The controller process on a virtual clock, without a broker: it starts its servers and its
supervised jobs, keeps retrying the broker in virtual time, and stops cleanly and in order
(gRPC with grace, telemetry flushed, every job ended, the admin port released)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from controller.app import Controller
from controller.settings import ControllerSettings
from muster.clock import VirtualClock
from tests.fixtures.components import free_port
from tests.unit.conftest import NOW

# Jobs that sleep on the clock between rounds: telemetry (backing off), its flush, the CRL
# publisher, the fleet monitor and the command sender. The admin server waits on its socket.
SLEEPING_JOBS = 5


async def test_the_controller_retries_the_broker_in_virtual_time_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    """With the broker away the telemetry job fails and is restarted on the virtual clock while
    the admin server answers; stop() ends everything and the ports are free again."""
    clock = VirtualClock(NOW)
    admin_port = free_port()
    settings = ControllerSettings(
        data_dir=tmp_path / "ctl",
        enrol_port=free_port(),
        data_port=free_port(),
        admin_port=admin_port,
        mqtt_url=f"mqtt://127.0.0.1:{free_port()}",  # nothing listens there
    )
    controller = Controller.prepare(settings, clock)
    await controller.start()
    try:
        await clock.advance(10, sleepers=SLEEPING_JOBS)
        assert controller._supervisor is not None
        assert controller._supervisor.failures("telemetry") >= 3
        assert not controller.consumer.connected.is_set()
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{controller.admin_url}api/v1/telemetry")
        assert response.status_code == 401  # served, and refused without a login
    finally:
        await controller.stop()
    assert controller._running is not None and controller._running.done()
    # Every job ended when told; none was left for the 10 s cancel (the face-check job once was).
    assert not controller._running.cancelled()
    assert clock.sleepers == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", admin_port))  # released
