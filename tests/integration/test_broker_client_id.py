"""Client-id takeover, replayed against the real Mosquitto in its production shape: on the
devices' listener the client id is bound to the certificate's CN, so device B's certificate
connecting under device A's id gets B's own session and A stays connected with its queued
commands; the controller's replicas, which share one certificate, connect on the centre's
listener with their own ids and do not push each other off; the device self-test checks the
broker without touching the daemon's session."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from controller.devices.pki_store import ControllerPki, ensure_controller_pki
from edge.identity import Enrolment, IdentityStore
from muster import topics
from muster.clock import SystemClock
from muster.crypto.pki import certificate_pem
from muster.mqtt import client_tls_context, parse_broker_url
from provisioning.selftest import PASS, broker_check
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.secure_broker import SecureBrokerFactory
from tests.integration.test_broker_acl import device_identity

DEVICE_A = "370902001000-AAAAAA"
DEVICE_B = "370902002000-BBBBBB"


class Client:
    """A paho client on one of the broker's listeners that records its messages and every
    disconnection it suffers."""

    def __init__(
        self,
        url: str,
        pki: ControllerPki,
        cert: Path,
        key: Path,
        client_id: str,
        *,
        clean_session: bool = True,
    ) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.disconnects = 0
        self._lock = threading.Lock()
        self._connected = threading.Event()
        address = parse_broker_url(url)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        self.client.tls_set_context(client_tls_context(pki.ca_cert_path, cert, key))
        self.client.reconnect_delay_set(60, 60)  # a takeover must show, not heal itself
        self.client.on_message = self._on_message
        self.client.on_connect = lambda *_: self._connected.set()
        self.client.on_disconnect = self._on_disconnect
        self.client.connect(address.host, address.port, keepalive=30)
        self.client.loop_start()
        assert self._connected.wait(10), f"{client_id} could not connect"

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((message.topic, bytes(message.payload)))

    def _on_disconnect(self, *_: object) -> None:
        with self._lock:
            self.disconnects += 1

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        time.sleep(0.3)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def payloads(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.received if t == topic]

    def wait_for(self, topic: str, payload: bytes, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while payload not in self.payloads(topic):
            if time.monotonic() > deadline:
                raise AssertionError(f"{payload!r} never arrived on {topic}: {self.received}")
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def world(
    secure_mosquitto: SecureBrokerFactory, tmp_path: Path
) -> tuple[MosquittoBroker, ControllerPki, dict[str, tuple[Path, Path]]]:
    broker = secure_mosquitto(tmp_path / "controller")
    pki = ensure_controller_pki(tmp_path / "controller", ["127.0.0.1"], now=datetime.now(UTC))
    identities = {d: device_identity(pki, tmp_path, d) for d in (DEVICE_A, DEVICE_B)}
    return broker, pki, identities


def controller(broker: MosquittoBroker, pki: ControllerPki, client_id: str) -> Client:
    return Client(broker.centre_url, pki, pki.client_cert_path, pki.client_key_path, client_id)


def test_another_devices_certificate_cannot_take_over_a_devices_client_id(
    world: tuple[MosquittoBroker, ControllerPki, dict[str, tuple[Path, Path]]],
) -> None:
    """Attack: B's certificate connects three times, a second apart, with A's client id (and a
    persistent session, to inherit A's subscriptions). Refused in effect: the broker gives B's
    connection B's id, so A is never disconnected and keeps receiving its commands, and B
    receives none of A's commands. Nothing else changes: B still gets its own commands."""
    broker, pki, ids = world
    centre = controller(broker, pki, "muster-controller-test0001")
    a = Client(broker.url, pki, *ids[DEVICE_A], DEVICE_A, clean_session=False)
    a.subscribe(topics.topic(DEVICE_A, "cmd"))
    attackers = []
    for _ in range(3):
        attackers.append(Client(broker.url, pki, *ids[DEVICE_B], DEVICE_A, clean_session=False))
        time.sleep(1.0)
    b = attackers[-1]
    b.subscribe(topics.topic(DEVICE_B, "cmd"))
    try:
        centre.publish(topics.topic(DEVICE_A, "cmd"), b"for A")
        centre.publish(topics.topic(DEVICE_B, "cmd"), b"for B")
        a.wait_for(topics.topic(DEVICE_A, "cmd"), b"for A")
        b.wait_for(topics.topic(DEVICE_B, "cmd"), b"for B")
        time.sleep(0.5)
        assert a.disconnects == 0, broker.log()
        assert b.payloads(topics.topic(DEVICE_A, "cmd")) == []
        assert f"as {DEVICE_B} " in broker.log()  # B's connections carried B's id
    finally:
        for client in (*attackers, a, centre):
            client.close()


def test_a_takeover_with_a_clean_session_does_not_wipe_a_devices_queued_commands(
    world: tuple[MosquittoBroker, ControllerPki, dict[str, tuple[Path, Path]]],
) -> None:
    """Attack: while A is offline with a command queued in its persistent session, B's
    certificate connects under A's id with a clean session (which would discard A's session).
    Neutralised: when A comes back it still receives the command queued for it."""
    broker, pki, ids = world
    centre = controller(broker, pki, "muster-controller-test0002")
    a = Client(broker.url, pki, *ids[DEVICE_A], DEVICE_A, clean_session=False)
    a.subscribe(topics.topic(DEVICE_A, "cmd"))
    a.close()
    centre.publish(topics.topic(DEVICE_A, "cmd"), b"queued while away")
    attacker = Client(broker.url, pki, *ids[DEVICE_B], DEVICE_A, clean_session=True)
    attacker.close()
    back = Client(broker.url, pki, *ids[DEVICE_A], DEVICE_A, clean_session=False)
    try:
        back.wait_for(topics.topic(DEVICE_A, "cmd"), b"queued while away")
    finally:
        back.close()
        centre.close()


def test_two_controller_replicas_with_one_certificate_both_stay_connected(
    world: tuple[MosquittoBroker, ControllerPki, dict[str, tuple[Path, Path]]],
) -> None:
    """The controller's replicas share a certificate and choose random client ids; on the
    centre's listener neither pushes the other off, and both read the devices' telemetry."""
    broker, pki, ids = world
    first = controller(broker, pki, "muster-controller-aaaaaaaa")
    second = controller(broker, pki, "muster-controller-bbbbbbbb")
    device = Client(broker.url, pki, *ids[DEVICE_A], DEVICE_A)
    try:
        for replica in (first, second):
            replica.subscribe(topics.wildcard("telemetry", ""))
        time.sleep(1.5)
        device.publish(topics.topic(DEVICE_A, "telemetry"), b"beat")
        for replica in (first, second):
            replica.wait_for(topics.topic(DEVICE_A, "telemetry"), b"beat")
        assert (first.disconnects, second.disconnects) == (0, 0), broker.log()
    finally:
        for client in (device, first, second):
            client.close()


def test_the_self_test_checks_the_broker_without_taking_over_the_daemons_session(
    world: tuple[MosquittoBroker, ControllerPki, dict[str, tuple[Path, Path]]],
    tmp_path: Path,
) -> None:
    """The device self-test's broker check, run while the daemon (A's persistent session) is
    connected and while a command waits for it offline: it passes (TLS reachable, certificate
    accepted), the connected daemon is not disconnected, and the queued command is still
    delivered when the daemon reconnects."""
    broker, pki, ids = world
    cert, key = ids[DEVICE_A]
    store = IdentityStore(tmp_path / "device")
    store.save(
        key_pem=key.read_bytes(),
        cert_pem=cert.read_bytes(),
        ca_pem=certificate_pem(pki.ca_cert),
        licence=b"",
        enrolment=Enrolment(DEVICE_A, DEVICE_A[:12], "simulator", broker.url, "", "", ""),
    )
    centre = controller(broker, pki, "muster-controller-test0003")
    daemon = Client(broker.url, pki, cert, key, DEVICE_A, clean_session=False)
    daemon.subscribe(topics.topic(DEVICE_A, "cmd"))
    check = broker_check(store, timeout_s=5, clock=SystemClock())
    assert check.verdict == PASS, check
    assert "TLS" in check.detail
    daemon.close()
    centre.publish(topics.topic(DEVICE_A, "cmd"), b"wait for me")
    assert broker_check(store, timeout_s=5, clock=SystemClock()).verdict == PASS
    back = Client(broker.url, pki, cert, key, DEVICE_A, clean_session=False)
    try:
        back.wait_for(topics.topic(DEVICE_A, "cmd"), b"wait for me")
        assert daemon.disconnects == 1  # only its own close
    finally:
        back.close()
        centre.close()


def test_the_self_test_reports_a_certificate_the_broker_refuses(
    world: tuple[MosquittoBroker, ControllerPki, dict[str, tuple[Path, Path]]],
    tmp_path: Path,
) -> None:
    """A certificate from another CA is refused at the TLS layer, and the check says so with
    the fix, so the TLS-only check still tells a refused device from an accepted one."""
    broker, pki, _ids = world
    other = ensure_controller_pki(tmp_path / "other", ["127.0.0.1"], now=datetime.now(UTC))
    cert, key = device_identity(other, tmp_path, DEVICE_A)
    store = IdentityStore(tmp_path / "device")
    store.save(
        key_pem=key.read_bytes(),
        cert_pem=cert.read_bytes(),
        ca_pem=certificate_pem(pki.ca_cert),
        licence=b"",
        enrolment=Enrolment(DEVICE_A, DEVICE_A[:12], "simulator", broker.url, "", "", ""),
    )
    check = broker_check(store, timeout_s=5, clock=SystemClock())
    assert check.failed and "证书" in check.fix, check
