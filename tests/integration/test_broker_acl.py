"""The broker confines each device to its own topics (DESIGN, wire contract): proved against real
Mosquitto with TLS client certificates from the controller's CA, the certificate's CN as the user
name, and the production ACL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from controller.devices.pki_store import (
    CONTROLLER_MQTT_IDENTITY,
    ControllerPki,
    ensure_controller_pki,
)
from muster import topics
from muster.crypto import generate_device_key, write_private_key, write_public_file
from muster.crypto.pki import build_csr, certificate_pem, issue_device_certificate
from muster.mqtt import client_tls_context
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.secure_broker import SecureBrokerFactory

DEVICE_A = "370902001000-AAAAAA"
DEVICE_B = "370902002000-BBBBBB"


class Peer:
    """A paho client with its own certificate that records what it receives."""

    def __init__(
        self,
        broker: MosquittoBroker,
        pki: ControllerPki,
        cert: Path,
        key: Path,
        name: str,
        port: int | None = None,
    ):
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name)
        self.client.tls_set_context(client_tls_context(pki.ca_cert_path, cert, key))
        self.client.on_message = self._on_message
        self.client.on_connect = lambda *_: self._connected.set()
        self.client.connect(broker.host, port or broker.port)
        self.client.loop_start()
        assert self._connected.wait(10), f"{name} could not connect"

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((message.topic, bytes(message.payload)))

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def topics_seen(self) -> set[str]:
        with self._lock:
            return {topic for topic, _ in self.received}

    def wait_for(self, topic: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while topic not in self.topics_seen():
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing arrived on {topic}; got {self.topics_seen()}")
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def device_identity(pki: ControllerPki, directory: Path, device_id: str) -> tuple[Path, Path]:
    key = generate_device_key()
    cert = issue_device_certificate(
        pki.ca_key, pki.ca_cert, build_csr(key), device_id, now=datetime.now(UTC)
    )
    write_private_key(directory / f"{device_id}.key", key)
    write_public_file(directory / f"{device_id}.crt", certificate_pem(cert))
    return directory / f"{device_id}.crt", directory / f"{device_id}.key"


@pytest.fixture
def peers(
    secure_mosquitto: SecureBrokerFactory, tmp_path: Path
) -> Iterator[tuple[MosquittoBroker, Peer, Peer, Peer]]:
    broker = secure_mosquitto(tmp_path / "controller")
    pki = ensure_controller_pki(tmp_path / "controller", ["127.0.0.1"], now=datetime.now(UTC))
    controller = Peer(
        broker,
        pki,
        pki.client_cert_path,
        pki.client_key_path,
        CONTROLLER_MQTT_IDENTITY,
        broker.centre_port,  # the controller's own listener
    )
    a = Peer(broker, pki, *device_identity(pki, tmp_path, DEVICE_A), DEVICE_A)
    b = Peer(broker, pki, *device_identity(pki, tmp_path, DEVICE_B), DEVICE_B)
    yield broker, controller, a, b
    for peer in (controller, a, b):
        peer.close()


def test_a_device_cannot_publish_as_another(
    peers: tuple[MosquittoBroker, Peer, Peer, Peer],
) -> None:
    """Device A's messages under B's id (telemetry, a forged offline status, a forged ack) never
    reach the controller, while A's own telemetry, sent after them, does."""
    broker, controller, a, _b = peers
    controller.subscribe(f"{topics.PREFIX}/+/#")
    time.sleep(0.3)
    forged = [topics.topic(DEVICE_B, kind) for kind in ("telemetry", "status", "ack", "event")]
    for topic in forged:
        a.publish(topic, b"forged by A")
    a.publish(topics.topic(DEVICE_A, "telemetry"), b"A's own heartbeat")
    controller.wait_for(topics.topic(DEVICE_A, "telemetry"))
    time.sleep(0.5)
    assert controller.topics_seen() == {topics.topic(DEVICE_A, "telemetry")}
    assert f"Denied PUBLISH from {DEVICE_A}" in broker.log()


def test_a_device_cannot_read_another_devices_commands(
    peers: tuple[MosquittoBroker, Peer, Peer, Peer],
) -> None:
    """A subscribes to B's command topic and to every command topic, yet only ever receives its
    own commands; B receives its own (so the commands were really sent)."""
    _broker, controller, a, b = peers
    a.subscribe(topics.topic(DEVICE_B, "cmd"))
    a.subscribe(f"{topics.PREFIX}/+/cmd")
    a.subscribe(topics.topic(DEVICE_A, "cmd"))
    b.subscribe(topics.topic(DEVICE_B, "cmd"))
    time.sleep(0.3)
    controller.publish(topics.topic(DEVICE_B, "cmd"), b"for B only")
    controller.publish(topics.topic(DEVICE_A, "cmd"), b"for A")
    b.wait_for(topics.topic(DEVICE_B, "cmd"))
    a.wait_for(topics.topic(DEVICE_A, "cmd"))
    time.sleep(0.5)
    assert a.topics_seen() == {topics.topic(DEVICE_A, "cmd")}
    assert b.topics_seen() == {topics.topic(DEVICE_B, "cmd")}


def test_a_device_cannot_read_other_devices_telemetry(
    peers: tuple[MosquittoBroker, Peer, Peer, Peer],
) -> None:
    """Devices read nothing but their commands: A sees none of B's heartbeats or statuses."""
    _broker, controller, a, b = peers
    a.subscribe(f"{topics.PREFIX}/#")
    controller.subscribe(topics.topic(DEVICE_B, "telemetry"))
    time.sleep(0.3)
    b.publish(topics.topic(DEVICE_B, "telemetry"), b"B's heartbeat")
    controller.wait_for(topics.topic(DEVICE_B, "telemetry"))
    time.sleep(0.5)
    assert a.topics_seen() == set()
