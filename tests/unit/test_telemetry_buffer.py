"""The controller's telemetry buffer is bounded: when the database falls behind, a device's older
status and heartbeat are superseded by its newer ones, and only a buffer full of messages that
cannot be superseded drops anything, counted and logged. Failed flushes keep their batch and
retry after a backoff, in virtual time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker
from structlog.testing import capture_logs

from controller.accounts.admins import add_admin, issue_token
from controller.admin import create_admin_app
from controller.demo.simulated_fleet import register_simulated
from controller.fleet.telemetry_buffer import TelemetryBuffer, coalesce
from controller.fleet.telemetry_consumer import TelemetryConsumer
from controller.fleet.telemetry_store import DeviceStateStore, Message
from controller.settings import ControllerSettings
from muster.clock import VirtualClock
from muster.fleet_layout import simulated_device
from muster.v1 import device_pb2

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PASSWORD = "Passw0rd-for-tests"


def beat(device: str, sequence: int, depth: int = 0) -> Message:
    payload = device_pb2.Heartbeat(
        device_id=device, sequence=sequence, outbox_depth=depth, collection_allowed=True
    ).SerializeToString()
    return (device, "telemetry", payload)


def status(device: str, online: bool) -> Message:
    state = (
        device_pb2.DeviceStatus.STATE_ONLINE if online else device_pb2.DeviceStatus.STATE_OFFLINE
    )
    message = device_pb2.DeviceStatus(device_id=device, state=state)
    message.since.FromDatetime(T0)
    return (device, "status", message.SerializeToString())


def event(device: str, text: str) -> Message:
    return (device, "event", device_pb2.Event(message=text).SerializeToString())


def test_coalesce_keeps_the_newest_status_and_heartbeat_and_every_event() -> None:
    """Per device, the last status and the last heartbeat survive, in the order they arrived
    (a heartbeat after a goodbye still comes after it); events and acks all survive."""
    messages = [
        beat("a", 1),
        status("a", True),
        event("a", "one"),
        beat("b", 1),
        beat("a", 2),
        status("a", False),
        (("a", "ack", b"x")),
        beat("a", 3),
        event("a", "two"),
    ]
    kept = coalesce(messages)
    assert kept == [
        event("a", "one"),
        beat("b", 1),
        status("a", False),
        ("a", "ack", b"x"),
        beat("a", 3),
        event("a", "two"),
    ]


def test_a_full_buffer_of_heartbeats_supersedes_instead_of_dropping() -> None:
    """Ten devices beating a thousand times into a buffer of 100 lose nothing that matters: the
    newest heartbeat of each device is kept, the rest are counted as superseded, none dropped."""
    buffer = TelemetryBuffer(100)
    for sequence in range(1, 1001):
        for n in range(10):
            assert buffer.add(beat(f"d{n}", sequence))
    assert buffer.dropped == 0
    assert buffer.superseded > 9000
    kept = coalesce(buffer.take())
    assert sorted(kept) == sorted(beat(f"d{n}", 1000) for n in range(10))


def test_a_buffer_full_of_events_drops_counts_and_warns_once_per_flush() -> None:
    """Events cannot be superseded: once the buffer is full of them, new messages are dropped,
    counted, and logged as a warning when it starts and with the count at the next flush."""
    buffer = TelemetryBuffer(50)
    with capture_logs() as logs:
        for n in range(80):
            buffer.add(event(f"d{n}", "fault"))
        assert buffer.dropped == 30 and len(buffer) == 50
        batch = buffer.take()
        buffer.done(batch)
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 2
    assert warnings[0]["dropped_total"] == 1
    assert warnings[1]["dropped"] == 30 and warnings[1]["dropped_total"] == 30
    assert buffer.add(event("d0", "after the flush"))  # room again


def test_a_batch_being_applied_counts_against_the_limit() -> None:
    """While a batch is in flight the buffer holds only what is left of the limit, and a batch
    given back after a failure goes ahead of what arrived meanwhile."""
    buffer = TelemetryBuffer(10)
    for n in range(8):
        buffer.add(event("a", str(n)))
    batch = buffer.take()
    for n in range(5):
        buffer.add(event("b", str(n)))
    assert len(buffer) == 2 and buffer.dropped == 3
    buffer.give_back(batch)
    assert len(buffer) == 10
    assert buffer.take()[:8] == batch


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="telemetry_buffer_max"):
        TelemetryBuffer(0)


class FlakyStore(DeviceStateStore):
    """The real store, with the database away for the first ``failures`` batches."""

    def __init__(self, sessions: sessionmaker[Session], clock: VirtualClock, failures: int) -> None:
        super().__init__(sessions, clock)
        self.failures = failures
        self.calls: list[float] = []
        self._clock_ = clock

    def apply(self, batch: list[Message]) -> int:
        self.calls.append(self._clock_.monotonic())
        if self.failures:
            self.failures -= 1
            raise OSError("database unreachable")
        return super().apply(batch)


async def test_failed_flushes_keep_their_batch_and_back_off(
    sessions: sessionmaker[Session],
) -> None:
    """Two failed flushes keep the batch and wait longer each time (virtual time); the third
    applies it, and the counters /api/v1/telemetry shows add up."""
    register_simulated(sessions, 2, now=T0)
    clock = VirtualClock(T0, monotonic_start=0.0)
    store = FlakyStore(sessions, clock, failures=2)
    settings = ControllerSettings(telemetry_flush_s=0.2, telemetry_buffer_max=1000)
    consumer = TelemetryConsumer(settings, store, clock)
    first, second = simulated_device(0).device_id, simulated_device(1).device_id
    for sequence in (1, 2):
        consumer.receive(first, "telemetry", beat(first, sequence)[2])
    consumer.receive(second, "status", status(second, True)[2])
    flushing = asyncio.create_task(consumer.flush_forever())
    await clock.advance(30, sleepers=1)
    flushing.cancel()
    await asyncio.gather(flushing, return_exceptions=True)

    assert len(store.calls) == 3
    waits = [b - a for a, b in zip(store.calls, store.calls[1:], strict=False)]
    assert 0.1 <= waits[0] < 0.3 and 0.2 <= waits[1] < 0.6  # 0.2 s then 0.4 s, jittered
    assert consumer.pending == 0
    assert (consumer.messages_received, consumer.messages_applied) == (3, 3)
    assert (consumer.messages_dropped, consumer.messages_superseded) == (0, 0)


async def test_the_telemetry_api_reports_drops_next_to_received_and_applied(
    sessions: sessionmaker[Session],
) -> None:
    """/api/v1/telemetry shows what a full buffer superseded and dropped beside the counts of
    messages received and applied."""
    clock = VirtualClock(T0)
    with sessions.begin() as session:
        add_admin(session, username="ops", role="ministry", region="", password=PASSWORD, now=T0)
        token = issue_token(session, "ops", T0)
    settings = ControllerSettings(telemetry_buffer_max=3)
    consumer = TelemetryConsumer(settings, DeviceStateStore(sessions, clock), clock)
    for n in range(5):
        consumer.receive(f"d{n}", "event", event(f"d{n}", "x")[2])
    app = create_admin_app(sessions, clock=clock)
    app.state.consumer = consumer
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        response = await client.get(
            "/api/v1/telemetry", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["messages_received"] == 5 and stats["messages_applied"] == 0
    assert (stats["messages_pending"], stats["messages_dropped"]) == (3, 2)
    assert stats["messages_superseded"] == 0 and stats["connected"] is False
