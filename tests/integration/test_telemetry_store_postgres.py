"""Two controller replicas applying the same devices' heartbeats at once, on PostgreSQL: shared
subscriptions (or a NATS queue group) hand a device's beats to either replica, so their batches
overlap. Neither deadlocks, and the newest beat of each device is what stays: an older one applied
late by the other replica does not write over it."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.db import make_engine, migrate, session_factory
from controller.db.models import Device
from controller.demo.simulated_fleet import register_simulated
from controller.fleet.telemetry_store import DeviceStateStore
from muster.clock import VirtualClock
from muster.fleet_layout import simulated_device
from muster.v1 import device_pb2

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DEVICES = 40
BEATS = 30


@pytest.fixture
def sessions(postgres_url: str) -> Iterator[sessionmaker[Session]]:
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    yield session_factory(engine)
    engine.dispose()


def _beat(device: str, sequence: int) -> tuple[str, str, bytes]:
    payload = device_pb2.Heartbeat(
        device_id=device, sequence=sequence, outbox_depth=sequence, collection_allowed=True
    ).SerializeToString()
    return (device, "telemetry", payload)


def test_two_replicas_apply_overlapping_batches_without_deadlock_or_going_back(
    sessions: sessionmaker[Session],
) -> None:
    register_simulated(sessions, DEVICES, now=T0)
    ids = [simulated_device(n).device_id for n in range(DEVICES)]
    clock = VirtualClock(T0)
    # Each replica gets every device's beats, in its own shuffled order of devices per batch
    # and with the sequences split between them, as a shared subscription would deliver them.
    plans: list[list[list[tuple[str, str, bytes]]]] = [[], []]
    rng = random.Random(7)
    for sequence in range(1, BEATS + 1):
        for replica in (0, 1):
            batch = [
                _beat(d, sequence)
                for d in ids
                if (sequence + replica) % 2 == 0 or rng.random() < 0.5
            ]
            rng.shuffle(batch)
            plans[replica].append(batch)
    errors: list[BaseException] = []

    def run(replica: int) -> None:
        store = DeviceStateStore(sessions, clock)
        try:
            for batch in plans[replica]:
                store.apply(batch)
        except BaseException as exc:  # a deadlock surfaces here as OperationalError
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    with sessions() as session:
        rows = session.execute(select(Device.id, Device.heartbeat_sequence, Device.outbox_depth))
        kept = {device: (sequence, depth) for device, sequence, depth in rows}
    # The newest beat each device sent is the one kept, whichever replica applied it last.
    newest = dict.fromkeys(ids, 0)
    for plan in plans:
        for batch in plan:
            for device, _, payload in batch:
                sequence = device_pb2.Heartbeat.FromString(payload).sequence
                newest[device] = max(newest[device], sequence)
    assert {d: kept[d] for d in ids} == {d: (n, n) for d, n in newest.items()}
