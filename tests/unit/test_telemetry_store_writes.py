"""The store's batched writes: a status and a heartbeat in one batch write different column sets
(the driver-level executemany per set), and what a message does not carry is left as it was."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Device, DeviceStateChange
from controller.demo.simulated_fleet import register_simulated
from controller.fleet.monitor import FleetMonitor, SweepResult
from controller.fleet.rules import STALE_AFTER_BEATS
from controller.fleet.telemetry_store import DeviceStateStore
from muster.clock import VirtualClock
from muster.fleet_layout import simulated_device
from muster.v1 import device_pb2
from tests.unit.test_telemetry_buffer import beat, status

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_a_status_and_a_heartbeat_in_one_batch_write_only_their_own_columns(
    sessions: sessionmaker[Session],
) -> None:
    register_simulated(sessions, 2, now=T0)
    first, second = simulated_device(0).device_id, simulated_device(1).device_id
    with sessions.begin() as session:
        session.get(Device, first).last_heartbeat = {"kept": True}  # type: ignore[union-attr]
    store = DeviceStateStore(sessions, VirtualClock(T0))

    applied = store.apply([status(first, True), beat(second, 4, depth=3), beat(second, 5, 7)])

    assert applied == 3
    with sessions() as session:
        only_status = session.get(Device, first)
        beating = session.get(Device, second)
        assert only_status is not None and beating is not None
        assert (only_status.online, only_status.state, only_status.status_since) == (
            True,
            "online",
            T0,
        )
        assert only_status.last_heartbeat == {"kept": True}  # a status does not touch it
        assert only_status.heartbeat_sequence == 0
        assert (beating.online, beating.heartbeat_sequence, beating.outbox_depth) == (True, 5, 7)
        assert beating.backlog_rising == 2  # both beats counted, one row written
        assert beating.last_seen == T0 and beating.last_heartbeat["sent_at"] == T0.isoformat()
        changes = session.query(DeviceStateChange).order_by(DeviceStateChange.device_id).all()
        assert {(c.device_id, c.state) for c in changes} == {(first, "online"), (second, "online")}


def test_a_duplicate_heartbeat_changes_nothing(sessions: sessionmaker[Session]) -> None:
    register_simulated(sessions, 1, now=T0)
    device = simulated_device(0).device_id
    store = DeviceStateStore(sessions, VirtualClock(T0))
    assert store.apply([beat(device, 3, depth=2)]) == 1
    assert store.apply([beat(device, 3, depth=9)]) == 0  # QoS 1 delivered it twice
    with sessions() as session:
        row = session.get(Device, device)
        assert row is not None and (row.heartbeat_sequence, row.outbox_depth) == (3, 2)


def test_a_restarted_daemon_is_heard_although_it_counts_its_beats_from_one_again(
    sessions: sessionmaker[Session],
) -> None:
    """A daemon killed and started again (by its launcher, after an update, on a new node)
    numbers its beats from 1. Its new session's status comes first and says so (a newer
    ``since``); from then on its beats are news, not duplicates of the old session's, so the
    device does not turn stale while it is beating."""
    register_simulated(sessions, 1, now=T0)
    device = simulated_device(0).device_id
    clock = VirtualClock(T0)
    store = DeviceStateStore(sessions, clock)
    assert store.apply([status(device, True), *(beat(device, n) for n in range(1, 6))]) == 6

    clock.advance_now(120)
    again = device_pb2.DeviceStatus(device_id=device, state=device_pb2.DeviceStatus.STATE_ONLINE)
    again.since.FromDatetime(clock.now())
    assert store.apply([(device, "status", again.SerializeToString())]) == 1
    clock.advance_now(30)
    assert store.apply([beat(device, 1, depth=4)]) == 1
    with sessions() as session:
        row = session.get(Device, device)
        assert row is not None
        assert (row.heartbeat_sequence, row.outbox_depth) == (1, 4)
        assert row.last_seen == clock.now()
    assert store.apply([beat(device, 1, depth=9)]) == 0  # still a duplicate within the session


def test_a_beat_brings_back_a_device_the_sweep_marked_stale_after_its_batch_was_read(
    sessions: sessionmaker[Session],
) -> None:
    """The store writes the indexed columns (online, state) only where the row holds something
    else, decided by the database at write time. A batch that read the device online, then saw
    the sweep mark it stale before the batch's own write, must still leave it online: it has just
    heard from it."""
    register_simulated(sessions, 1, now=T0)
    device = simulated_device(0).device_id
    clock = VirtualClock(T0)
    store = DeviceStateStore(sessions, clock)
    assert store.apply([status(device, True), beat(device, 1)]) == 2
    clock.advance_now(60 * STALE_AFTER_BEATS + 30)  # silent for three intervals and more
    monitor = FleetMonitor(sessions, clock=clock)
    engine = sessions.kw["bind"]
    swept: list[SweepResult] = []

    @event.listens_for(engine, "after_cursor_execute")
    def sweep_after_the_batch_read(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # The store's read of its batch (SQLite has no FOR UPDATE): the sweep runs right after.
        if (
            not swept
            and statement.lstrip().startswith("SELECT")
            and "revoked_at IS NOT" in statement
        ):
            swept.append(monitor.sweep())

    try:
        assert store.apply([beat(device, 2)]) == 1
    finally:
        event.remove(engine, "after_cursor_execute", sweep_after_the_batch_read)

    assert swept, "the sweep did not run between the batch's read and its write"
    with sessions() as session:
        history = [
            c.state
            for c in session.query(DeviceStateChange)
            .filter_by(device_id=device)
            .order_by(DeviceStateChange.id)
        ]
        row = session.get(Device, device)
        assert row is not None
    assert history[-1] == "stale"  # the sweep did mark it, in between
    assert (row.online, row.state, row.heartbeat_sequence) == (True, "online", 2)
    assert row.last_seen == clock.now()
