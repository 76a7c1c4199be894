"""A device's broker node dies (kill -9) in the 3-node NATS cluster: the device's real MQTT link
(edge/uplink/telemetry.py, with a certificate the controller's enrolment issued) fails over to
the next node of its list, and the controller's side (a fresh subscriber's retained status on a
surviving node, the real telemetry consumer against NATS, the fleet monitor's sweep) reads
offline-or-online-again, never the dead session's "online" with no connection behind it.

What NATS 2.9 does with the last will of a client whose node dies, seen here: nothing. The will
lives only in the memory of the node that holds the connection, so it dies with it; the
retained status stays the dead session's "online". Two things keep the centre truthful:

- a device that fails over publishes a new retained "online" stamped with the new session's
  time (``since``), which supersedes the old one on every node and in the controller's store
  (any status replaces an online it holds: ``telemetry_store.supersedes``);
- a device that does not come back (it had only that node, or it died too) goes silent, and the
  controller's sweep (controller/fleet/monitor.py) marks it stale after 3 heartbeat intervals
  and raises its offline alert after the profile's allowance, whatever the retained status says.

Over 400 lines because both scenarios stand on one world built here (the controller's PKI and
database, the cluster trusting its CA, the device's link, the controller's consumer, fresh
subscribers and the waits a cluster that lost a node needs); split, each half would carry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.db import make_engine, migrate, session_factory
from controller.db.models import Alert, Device
from controller.devices.enrolment import publish_upload_keys
from controller.devices.pki_store import ControllerPki, ensure_controller_pki
from controller.fleet.monitor import FleetMonitor
from controller.fleet.rules import ONLINE, STALE
from controller.fleet.telemetry_consumer import TelemetryConsumer
from controller.fleet.telemetry_store import DeviceStateStore
from controller.settings import ControllerSettings
from edge.uplink.telemetry import TelemetryLink
from muster import topics
from muster.clock import SystemClock, VirtualClock
from muster.crypto import generate_device_key, write_private_key, write_public_file
from muster.crypto.pki import certificate_pem, load_certificate
from muster.mqtt import client_tls_context
from muster.v1 import device_pb2
from tests.fixtures.nats_cluster import ClientCert, NatsCluster, NatsNode
from tests.integration.test_broker_cluster import Client
from tests.unit.test_enrollment import enrol_directly

pytestmark = pytest.mark.timeout(300)

TOWNSHIP = "370902001000"
# The simulator profile the device is enrolled with: a heartbeat every 5 s, stale after 3 of
# them, the offline alert after 60 s.
PROFILE_BEAT_S, STALE_AFTER_S, OFFLINE_ALERT_S = 5.0, 15.0, 60.0
Status = device_pb2.DeviceStatus


@dataclass
class World:
    cluster: NatsCluster
    pki: ControllerPki
    sessions: sessionmaker[Session]
    device_id: str
    cert: ClientCert  # the device's, issued by the controller's enrolment
    other: ClientCert  # another device of the cluster
    ctl_dir: Path

    def device_row(self) -> Device:
        with self.sessions() as session:
            row = session.get(Device, self.device_id)
            assert row is not None
            return row


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    now = datetime.now(UTC)  # TLS checks certificates against the real time
    ctl_dir = tmp_path / "ctl"
    pki = ensure_controller_pki(ctl_dir, ["127.0.0.1", "localhost"], now=now)
    url = f"sqlite:///{tmp_path / 'controller.db'}"
    migrate(url)
    sessions = session_factory(make_engine(url))
    with sessions.begin() as session:
        publish_upload_keys(session, pki, now)
    key = generate_device_key()
    enrolled = enrol_directly(sessions, pki, key, township=TOWNSHIP, now=now)
    directory = tmp_path / "device"
    write_private_key(directory / "client.key", key)
    write_public_file(
        directory / "client.crt", certificate_pem(load_certificate(enrolled.certificate_der))
    )
    cert = ClientCert(
        directory, enrolled.device_id, directory / "client.crt", directory / "client.key"
    )
    cluster = NatsCluster(tmp_path / "nats", authority=(pki.ca_key, pki.ca_cert))
    # Every device before the start: a reload (SIGHUP) while MQTT clients are connected stops
    # NATS 2.9 delivering QoS 1 messages to their subscriptions (see the fixture's docstring).
    cluster.grant(enrolled.device_id)
    other = cluster.add_device("other-device")
    try:
        cluster.start()
        yield World(cluster, pki, sessions, enrolled.device_id, cert, other, ctl_dir)
    finally:
        cluster.stop()


@dataclass
class DeviceSide:
    """The device's real telemetry link, with a heartbeat sequence and the commands it got."""

    world: World
    brokers: list[str]
    sequence: int = 0
    commands: list[bytes] = field(default_factory=list)
    link: TelemetryLink = field(init=False)

    def __post_init__(self) -> None:
        tls = client_tls_context(
            self.world.pki.ca_cert_path, self.world.cert.cert, self.world.cert.key
        )
        self.link = TelemetryLink(
            self.world.device_id,
            self.brokers,
            self._beat,
            interval_s=1.0,
            tls_context=tls,
            clock=SystemClock(),
            on_command=self._command,
        )

    def _beat(self) -> device_pb2.Heartbeat:
        self.sequence += 1
        return device_pb2.Heartbeat(
            device_id=self.world.device_id,
            sequence=self.sequence,
            licence_days_left=300,
            collection_allowed=True,
        )

    async def _command(self, payload: bytes) -> None:
        self.commands.append(payload)

    def on(self, node: NatsNode) -> bool:
        at = self.link.connected_to
        return at is not None and at.port == node.mqtt_port


async def until(condition: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def centre(world: World, node: NatsNode) -> AsyncIterator[TelemetryConsumer]:
    """The controller's real telemetry consumer on ``node`` (plain subscriptions: NATS has no
    ``$share``), reconnecting as its supervisor would, and its flush loop."""
    settings = ControllerSettings(
        data_dir=world.ctl_dir, mqtt_url=world.cluster.url(node), telemetry_flush_s=0.2
    )
    clock = SystemClock()
    consumer = TelemetryConsumer(
        settings, DeviceStateStore(world.sessions, clock), clock, world.pki
    )

    async def consume() -> None:
        while True:
            with contextlib.suppress(aiomqtt.MqttError):
                await consumer.run()
            await asyncio.sleep(0.5)  # a node refuses MQTT until its JetStream has a leader

    tasks = [asyncio.create_task(consume()), asyncio.create_task(consumer.flush_forever())]
    try:
        await until(consumer.connected.is_set, 60, "the controller to connect")
        yield consumer
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def decode(payload: bytes) -> tuple[Status.State.ValueType, datetime]:
    status = Status.FromString(payload)
    return status.state, status.since.ToDatetime(tzinfo=UTC)


async def retained_status(
    world: World, node: NatsNode, accept: Callable[[Status.State.ValueType, datetime], bool]
) -> tuple[Status.State.ValueType, datetime]:
    """What a subscriber arriving now on ``node`` is told the device's status is, polled until
    ``accept`` holds (retained messages reach the other nodes asynchronously)."""
    deadline = time.monotonic() + 30
    seen: tuple[Status.State.ValueType, datetime] | None = None
    while time.monotonic() < deadline:
        fresh = await asyncio.to_thread(Client, world.cluster, world.cluster.controller, node)
        try:
            fresh.subscribe(topics.topic(world.device_id, "status"))
            message = await asyncio.to_thread(fresh.next, 3)
        finally:
            await asyncio.to_thread(fresh.close)
        if message is not None and message.retain:
            seen = decode(bytes(message.payload))
            if accept(*seen):
                return seen
        await asyncio.sleep(0.5)
    raise AssertionError(f"retained status on {node.name} stayed {seen}")


def statuses(watcher: Client) -> list[tuple[Status.State.ValueType, datetime]]:
    out = []
    while (message := watcher.next(0.01)) is not None:
        if message.topic.endswith("/status"):
            out.append(decode(bytes(message.payload)))
    return out


async def test_a_device_whose_node_is_killed_fails_over_and_the_centre_never_believes_the_dead_session(
    world: World,
) -> None:
    n1, n2, n3 = world.cluster.nodes
    device_id = world.device_id
    watcher = await asyncio.to_thread(Client, world.cluster, world.cluster.controller, n3)
    watcher.subscribe(topics.topic(device_id, "status"))
    async with centre(world, n3) as consumer:
        device = DeviceSide(world, [world.cluster.url(node) for node in world.cluster.nodes])
        running = asyncio.create_task(device.link.run())
        try:
            await until(lambda: device.link.connected.is_set(), 60, "the device to connect")
            assert device.on(n1), "the first node of the list answers: the device is there"
            await until(
                lambda: world.device_row().online and world.device_row().heartbeat_sequence > 2,
                30,
                "the controller to see the device online with heartbeats",
            )
            first_since = world.device_row().status_since
            assert first_since is not None
            assert consumer.client is not None
            await consumer.client.publish(topics.topic(device_id, "cmd"), b"before", qos=1)
            await until(lambda: b"before" in device.commands, 30, "a command on node 1")

            killed_at = datetime.now(UTC)
            world.cluster.kill(n1)
            # Within its backoff (at most 30 s a step), on the next node of its list (n3 when
            # n2 was still electing its JetStream leaders and refused).
            await until(
                lambda: device.link.connected.is_set() and not device.on(n1),
                60,
                f"the device to fail over\n{world.cluster.logs()}",
            )
            assert device.on(n2) or device.on(n3)
            assert device.link.connections == 2

            # A subscriber arriving on a surviving node reads the new session's "online".
            state, since = await retained_status(
                world, n2, lambda _state, since: since >= killed_at
            )
            assert state == Status.STATE_ONLINE and since >= killed_at
            # So does the controller, with heartbeats arriving again through the new node.
            beats = world.device_row().heartbeat_sequence
            await until(
                lambda: (
                    (row := world.device_row()).status_since is not None
                    and row.status_since.replace(tzinfo=UTC) >= killed_at
                    and row.heartbeat_sequence > beats
                ),
                30,
                "the controller to see the new session and its heartbeats",
            )
            row = world.device_row()
            assert row.online and row.state == ONLINE

            # NATS fired no last will for the session its dead node held: every status the
            # centre's watcher saw is an "online", the old session's then the new one's.
            seen = await asyncio.to_thread(statuses, watcher)
            assert [state for state, _ in seen] == [Status.STATE_ONLINE] * len(seen), seen
            assert seen[0][1] == first_since.replace(tzinfo=UTC) and seen[-1][1] >= killed_at

            # Its rights follow it to node 2: its certificate publishes under its own id only.
            other = world.other
            centre_view = await asyncio.to_thread(
                Client, world.cluster, world.cluster.controller, n3
            )
            await subscribed(centre_view, f"{topics.PREFIX}/+/#")
            victim = await asyncio.to_thread(Client, world.cluster, other, n2)
            await subscribed(victim, topics.topic("other-device", "cmd"))
            same_cert = await asyncio.to_thread(Client, world.cluster, world.cert, n2)
            # Not its own: refused (a SUBACK failure) or granted and empty, never delivering.
            same_cert.subscribe(topics.topic("other-device", "cmd"))
            # The subscriptions are live once a message passes each (a node that lost a peer
            # takes a while to set up QoS 1 consumers): the device's own event, the centre's
            # command to the other device.
            await delivered(same_cert, centre_view, topics.topic(device_id, "event"), b"own")
            assert consumer.client is not None
            centre_client = consumer.client

            async def command_to_other() -> None:
                await centre_client.publish(
                    topics.topic("other-device", "cmd"), b"for-other", qos=1
                )

            await delivered(
                command_to_other, victim, topics.topic("other-device", "cmd"), b"for-other"
            )
            await asyncio.to_thread(
                same_cert.publish, topics.topic("other-device", "status"), b"forged"
            )
            await asyncio.to_thread(
                same_cert.publish, topics.topic("other-device", "cmd"), b"forged-cmd"
            )

            # The controller's command reaches the failed-over link's session, and only it
            # (sent again while the node's JetStream settles, as the controller re-sends a
            # command still "sent" when a device comes back online).
            async def command_to_device() -> None:
                await centre_client.publish(topics.topic(device_id, "cmd"), b"for-device", qos=1)

            deadline = time.monotonic() + 60
            while b"for-device" not in device.commands:
                assert time.monotonic() < deadline, "the command never reached the device"
                await command_to_device()
                with contextlib.suppress(AssertionError):
                    await until(lambda: b"for-device" in device.commands, 3, "the command")
            # A last message of its own after the forgeries: when it arrives, they would have.
            await delivered(same_cert, centre_view, topics.topic(device_id, "event"), b"last")
            await asyncio.sleep(1)
            leaked = [
                m.payload
                for client in (centre_view, victim, same_cert)
                for m in await asyncio.to_thread(drain, client)
            ]
            assert b"forged" not in leaked and b"forged-cmd" not in leaked
            assert b"for-other" not in [
                m.payload for m in await asyncio.to_thread(drain, same_cert)
            ]
            assert set(device.commands) == {b"before", b"for-device"}
            for client in (centre_view, victim, same_cert):
                await asyncio.to_thread(client.close)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await asyncio.to_thread(watcher.close)


def drain(client: Client) -> list[mqtt.MQTTMessage]:
    out: list[mqtt.MQTTMessage] = []
    while (message := client.next(0.01)) is not None:
        out.append(message)
    return out


async def subscribed(client: Client, topic: str) -> None:
    """Subscribe until the node grants it: after a peer died, a NATS node refuses QoS 1
    subscriptions for a while (its JetStream times out creating their consumers)."""
    deadline = time.monotonic() + 60
    while not await asyncio.to_thread(client.subscribed, topic):
        assert time.monotonic() < deadline, f"{topic} never granted"
        await asyncio.sleep(1)


async def delivered(
    sender: Client | Callable[[], Awaitable[None]], receiver: Client, topic: str, payload: bytes
) -> None:
    """Publish ``payload`` on ``topic`` until ``receiver`` gets it (30 s at most)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if isinstance(sender, Client):
            await asyncio.to_thread(sender.publish, topic, payload)
        else:
            await sender()
        if await asyncio.to_thread(receiver.wait_for, topic, payload, 2):
            return
    raise AssertionError(f"{payload!r} on {topic} never arrived")


async def test_a_device_lost_with_its_node_is_found_silent_by_the_sweep_then_returns(
    world: World,
) -> None:
    """A device whose list has only node 1 (or that died with it): no will fires, the retained
    status stays the dead session's "online", and the controller's sweep is what tells the
    truth: stale after 3 silent intervals, the offline alert after the profile's allowance.
    When node 1 comes back, so does the device, online again."""
    n1, n2, n3 = world.cluster.nodes
    async with centre(world, n3):
        device = DeviceSide(world, [world.cluster.url(n1)])
        running = asyncio.create_task(device.link.run())
        try:
            await until(lambda: device.on(n1), 60, "the device to connect to node 1")
            await until(
                lambda: world.device_row().online and world.device_row().heartbeat_sequence > 2,
                30,
                "the controller to see the device online with heartbeats",
            )
            first_since = world.device_row().status_since
            assert first_since is not None
            world.cluster.kill(n1)
            await until(lambda: not device.link.connected.is_set(), 30, "the link to notice")

            # NATS fired no will: a subscriber arriving on node 2 still reads the dead
            # session's "online", and no offline status ever reached the controller.
            state, since = await retained_status(world, n2, lambda _s, _t: True)
            assert (state, since) == (Status.STATE_ONLINE, first_since.replace(tzinfo=UTC))
            await asyncio.sleep(2)
            silent = world.device_row()
            assert silent.online and silent.status_since == first_since

            # The sweep goes by silence, not by the retained status.
            last_seen = silent.last_seen
            assert last_seen is not None
            sweep_clock = VirtualClock(last_seen.replace(tzinfo=UTC))
            monitor = FleetMonitor(world.sessions, clock=sweep_clock)
            sweep_clock.advance_now(STALE_AFTER_S + 1)
            await asyncio.to_thread(monitor.sweep)
            assert world.device_row().state == STALE
            sweep_clock.advance_now(OFFLINE_ALERT_S)
            await asyncio.to_thread(monitor.sweep)
            with world.sessions() as session:
                open_alerts = set(
                    session.scalars(
                        select(Alert.kind).where(
                            Alert.device_id == world.device_id, Alert.resolved_at.is_(None)
                        )
                    )
                )
            assert "offline" in open_alerts
            assert world.device_row().state == STALE

            # Node 1 back: the device returns within its backoff, online again everywhere.
            back_at = datetime.now(UTC)
            world.cluster.restart(n1)
            await until(lambda: device.on(n1), 90, f"the device to return\n{world.cluster.logs()}")
            state, since = await retained_status(world, n2, lambda _s, since: since >= back_at)
            assert state == Status.STATE_ONLINE
            await until(
                lambda: (
                    (row := world.device_row()).status_since is not None
                    and row.status_since.replace(tzinfo=UTC) >= back_at
                ),
                30,
                "the controller to see the device back",
            )
            now_clock = VirtualClock(datetime.now(UTC))
            await asyncio.to_thread(FleetMonitor(world.sessions, clock=now_clock).sweep)
            assert world.device_row().state == ONLINE
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
