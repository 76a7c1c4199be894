"""Two controller replicas split telemetry on the real 3-node NATS cluster without ``$share``
(controller/fleet/telemetry_nats.py): each intake runs in a process of its own over one
database, on a different node, devices publish MQTT over TLS on the third; one replica is
``kill -9``-ed, and the other takes over every device's heartbeats from the next beat on and
stores every QoS 1 event, those the dead one had taken but not stored included.

Replica A never gets to write a batch (it runs no flush), so every message it takes
is one it holds when it dies: the events among them must come back through JetStream, and
nothing depends on when the kill falls between two flushes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from controller.db import make_engine, migrate, session_factory
from controller.db.models import Device, DeviceEvent
from controller.demo.simulated_fleet import register_simulated
from muster import topics
from muster.v1 import device_pb2
from tests.fixtures.components import log_tail, terminate
from tests.fixtures.nats_telemetry import DevicePublisher, TelemetryNatsCluster

pytestmark = pytest.mark.timeout(400)

ROOT = Path(__file__).resolve().parents[2]
DEVICES = 6
ACK_WAIT_S = 3.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[TelemetryNatsCluster]:
    cluster = TelemetryNatsCluster(tmp_path / "nats")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


class Replica:
    """One intake process (tests/fixtures/nats_telemetry.py) on one node."""

    def __init__(
        self,
        cluster: TelemetryNatsCluster,
        data_dir: Path,
        name: str,
        first_node: int,
        flush_s: float = 0.2,
    ) -> None:
        self.counts = data_dir / f"{name}.json"
        self.log = data_dir / f"{name}.log"
        nodes = cluster.nodes[first_node:] + cluster.nodes[:first_node]
        servers = [arg for node in nodes for arg in ("--server", cluster.client_url(node))]
        cert = cluster.controller
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.fixtures.nats_telemetry", "--data-dir",
                 str(data_dir), *servers, "--ca", str(cluster.ca_path), "--cert", str(cert.cert),
                 "--key", str(cert.key), "--name", name, "--counts", str(self.counts),
                 "--ack-wait", str(ACK_WAIT_S), "--flush-s", str(flush_s)],
                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def wait_ready(self) -> None:
        """Until its counters file appears (written once it is subscribed), or it died."""
        deadline = time.monotonic() + 60
        while not self.counts.exists():
            assert self.process.poll() is None, log_tail(self.log, 60)
            assert time.monotonic() < deadline, log_tail(self.log, 60)
            time.sleep(0.1)

    def taken(self) -> dict[str, int]:
        if not self.counts.exists():
            return {"core": 0, "stream": 0}
        value: dict[str, int] = json.loads(self.counts.read_text(encoding="utf-8"))
        return value


def _beat(sequence: int) -> bytes:
    return device_pb2.Heartbeat(sequence=sequence, software_version="1.0.0").SerializeToString()


def _event(device_id: str, round_: int) -> bytes:
    return device_pb2.Event(
        device_id=device_id,
        kind=device_pb2.Event.KIND_CARD_READ,
        message=f"round {round_}",
    ).SerializeToString()


def test_a_killed_replica_s_share_is_taken_over_at_the_next_beat_and_no_event_is_lost(
    cluster: TelemetryNatsCluster, tmp_path: Path
) -> None:
    data_dir = tmp_path / "controller"
    data_dir.mkdir()
    url = f"sqlite:///{data_dir / 'controller.db'}"
    migrate(url)
    sessions = session_factory(make_engine(url))
    register_simulated(sessions, DEVICES, now=datetime.now(UTC))
    with sessions() as session:
        ids = sorted(session.scalars(select(Device.id)))
    assert len(ids) == DEVICES
    certs = [cluster.add_device(device_id) for device_id in ids]
    n3 = cluster.nodes[2]

    a = Replica(cluster, data_dir, "replica-a", 0, flush_s=0.0)  # on n1 first
    b = Replica(cluster, data_dir, "replica-b", 1)  # on n2 first
    replicas = [a, b]
    devices: list[DevicePublisher] = []
    try:
        a.wait_ready()
        b.wait_ready()
        devices = [DevicePublisher(cluster, cert, n3) for cert in certs]
        time.sleep(1.0)  # the replicas' queue subscriptions reach n3

        def publish_round(round_: int) -> None:
            for device_id, device in zip(ids, devices, strict=True):
                device.publish(topics.topic(device_id, "telemetry"), _beat(round_), qos=0)
                device.publish(topics.topic(device_id, "event"), _event(device_id, round_))

        def wait_beats(round_: int) -> None:
            """Every device's stored heartbeat reaches ``round_`` (the deadline only fails)."""
            deadline = time.monotonic() + 60
            while True:
                with sessions() as session:
                    seen = {
                        row.id: row.heartbeat_sequence
                        for row in session.execute(select(Device.id, Device.heartbeat_sequence))
                    }
                if all(seen[d] >= round_ for d in ids):
                    assert all(seen[d] == round_ for d in ids), seen
                    return
                assert time.monotonic() < deadline, (
                    f"round {round_}: {seen}; a {a.taken()}, b {b.taken()}\n"
                    + log_tail(a.log, 30) + log_tail(b.log, 30)
                )  # fmt: skip
                time.sleep(0.2)

        # Both replicas take a share while both live (A's never reaches the database).
        for round_ in range(1, 6):
            publish_round(round_)
        deadline = time.monotonic() + 60
        while True:
            taken = [r.taken() for r in replicas]
            if sum(t["core"] for t in taken) >= 5 * DEVICES and all(
                t["core"] and t["stream"] for t in taken
            ):
                break
            assert time.monotonic() < deadline, f"a {taken[0]}, b {taken[1]}"
            time.sleep(0.2)

        a.process.send_signal(signal.SIGKILL)
        a.process.wait(timeout=10)

        # The first beat after the death is B's for every device, and the next ones too.
        for round_ in range(6, 9):
            publish_round(round_)
            wait_beats(round_)

        # Every event of every round is stored, those A had taken too (delivered to B again
        # after the ack wait); at-least-once, so one may be stored twice.
        expected = {(d, f"round {r}") for d in ids for r in range(1, 9)}
        deadline = time.monotonic() + 60
        while True:
            with sessions() as session:
                stored = {
                    (row.device_id, row.message)
                    for row in session.execute(select(DeviceEvent.device_id, DeviceEvent.message))
                }
            missing = expected - stored
            if not missing:
                break
            assert time.monotonic() < deadline, f"events never stored: {sorted(missing)}"
            time.sleep(0.5)
    finally:
        for device in devices:
            device.close()
        for replica in replicas:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGCONT)
                terminate(replica.process, grace=5)
