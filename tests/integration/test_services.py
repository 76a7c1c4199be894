"""The fixtures that start real services do what the other tests rely on them to do."""

from __future__ import annotations

import datetime as dt
import ipaddress
import queue
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.fixtures.components import require
from tests.fixtures.mosquitto import MosquittoBroker, MosquittoFactory

TIMEOUT = 10.0


class MqttProbe:
    """A paho client driven from a test thread: connect, subscribe, collect messages."""

    def __init__(self, client_id: str, ssl_context: ssl.SSLContext | None = None) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if ssl_context is not None:
            self.client.tls_set_context(ssl_context)
        self.connected = threading.Event()
        self.settled = threading.Event()
        self.subscribed = threading.Event()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self._looping = False

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if not reason.is_failure:
            self.connected.set()
        self.settled.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self.settled.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.settled.set()

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.messages.put(msg)

    def connect(self, broker: MosquittoBroker) -> bool:
        """True once the broker accepted the session; False if it refused or hung up."""
        try:
            self.client.connect(broker.host, broker.port, keepalive=30)
        except (ssl.SSLError, OSError):
            return False
        self.client.loop_start()
        self._looping = True
        self.settled.wait(TIMEOUT)
        return self.connected.is_set()

    def subscribe(self, topic: str) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(TIMEOUT), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published(), f"no PUBACK for {topic}"

    def next_message(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=TIMEOUT)

    def close(self) -> None:
        if self.connected.is_set():
            self.client.disconnect()
        if self._looping:
            self.client.loop_stop()


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    dir: Path

    def client_context(self, cn: str | None) -> ssl.SSLContext:
        """A client TLS context trusting the test CA, presenting `cn`'s certificate if given."""
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        if cn is not None:
            ctx.load_cert_chain(self.dir / f"{cn}.crt", self.dir / f"{cn}.key")
        return ctx


def _issue(
    subject_cn: str,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    is_ca: bool = False,
    san_ip: str | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if is_ca else issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if san_ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(san_ip))]),
            critical=False,
        )
    signer = key if is_ca else issuer_key
    return builder.sign(signer, hashes.SHA256()), key


def _write(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    (directory / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A throwaway CA, a broker certificate for 127.0.0.1, and client certificates."""
    directory = tmp_path / "pki"
    directory.mkdir()
    ca_cert, ca_key = _issue(
        "muster test CA", x509.Name([]), ec.generate_private_key(ec.SECP256R1()), is_ca=True
    )
    _write(directory, "ca", ca_cert, ca_key)
    server_cert, server_key = _issue("broker", ca_cert.subject, ca_key, san_ip="127.0.0.1")
    _write(directory, "server", server_cert, server_key)
    for cn in ("dev-001", "dev-002", "controller"):
        cert, key = _issue(cn, ca_cert.subject, ca_key)
        _write(directory, cn, cert, key)
    return Pki(directory / "ca.crt", directory / "server.crt", directory / "server.key", directory)


def test_require_fails_rather_than_skips_when_a_component_is_missing() -> None:
    """A missing binary fails the test with a message naming it and pointing at setup.sh."""
    with pytest.raises(pytest.fail.Exception) as failure:
        require("muster-no-such-binary", "by this test")
    message = str(failure.value)
    assert "muster-no-such-binary" in message
    assert "scripts/setup.sh" in message


def test_retained_message_survives_a_broker_restart(mosquitto: MosquittoBroker) -> None:
    """A retained QoS 1 message published before stop() reaches a subscriber after start()."""
    topic = "muster/v1/dev/dev-001/status"
    publisher = MqttProbe("publisher")
    try:
        assert publisher.connect(mosquitto), mosquitto.log()
        publisher.publish(topic, b"online", retain=True)
    finally:
        publisher.close()

    port = mosquitto.port
    mosquitto.stop()
    mosquitto.start()
    assert mosquitto.port == port
    assert mosquitto.url == f"mqtt://127.0.0.1:{port}"

    subscriber = MqttProbe("subscriber")
    try:
        assert subscriber.connect(mosquitto), mosquitto.log()
        subscriber.subscribe(topic)
        message = subscriber.next_message()
        assert (message.topic, message.payload, message.retain) == (topic, b"online", True)
    finally:
        subscriber.close()


def test_tls_broker_refuses_a_client_without_a_certificate(
    mosquitto_factory: MosquittoFactory, pki: Pki
) -> None:
    """In TLS mode a client that trusts the CA but shows no certificate never gets a session,
    while one with a CA-signed certificate does (so the refusal is not a broken listener)."""
    broker = mosquitto_factory(
        ca_cert=pki.ca_cert, server_cert=pki.server_cert, server_key=pki.server_key
    )
    assert broker.url.startswith("mqtts://127.0.0.1:")

    anonymous = MqttProbe("anonymous", pki.client_context(None))
    try:
        assert not anonymous.connect(broker)
    finally:
        anonymous.close()

    device = MqttProbe("dev-001", pki.client_context("dev-001"))
    try:
        assert device.connect(broker), broker.log()
    finally:
        device.close()


def test_tls_acl_confines_a_device_to_its_own_topics(
    mosquitto_factory: MosquittoFactory, pki: Pki
) -> None:
    """The ACL keyed on the certificate CN lets a device publish only under its own id and read
    only its own commands, while the controller identity reads all devices and sends commands."""
    broker = mosquitto_factory(
        ca_cert=pki.ca_cert,
        server_cert=pki.server_cert,
        server_key=pki.server_key,
        controller_user="controller",
    )
    controller = MqttProbe("controller", pki.client_context("controller"))
    device = MqttProbe("dev-001", pki.client_context("dev-001"))
    try:
        assert controller.connect(broker), broker.log()
        assert device.connect(broker), broker.log()
        controller.subscribe("muster/v1/dev/+/#")
        device.subscribe("muster/v1/dev/+/cmd")

        # Denied publishes are dropped silently in MQTT 3.1.1; messages from one client arrive
        # in order, so seeing the last allowed one proves the forged ones were not delivered.
        device.publish("muster/v1/dev/dev-002/telemetry", b"forged")
        device.publish("muster/v1/dev/dev-001/telemetry", b"mine")
        seen = controller.next_message()
        assert (seen.topic, seen.payload) == ("muster/v1/dev/dev-001/telemetry", b"mine")

        controller.publish("muster/v1/dev/dev-002/cmd", b"for someone else")
        controller.publish("muster/v1/dev/dev-001/cmd", b"for you")
        received = device.next_message()
        assert (received.topic, received.payload) == ("muster/v1/dev/dev-001/cmd", b"for you")
    finally:
        device.close()
        controller.close()


def test_postgres_url_gives_a_fresh_database_for_a_round_trip(postgres_url: str) -> None:
    """postgres_url points at a reachable, empty database where SQLAlchemy can write and read."""
    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    engine = sa.create_engine(postgres_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE probe (id integer PRIMARY KEY, name text)"))
            conn.execute(sa.text("INSERT INTO probe VALUES (1, '乡镇')"))
        with engine.connect() as conn:
            assert (
                conn.execute(sa.text("SELECT name FROM probe WHERE id = 1")).scalar_one() == "乡镇"
            )
    finally:
        engine.dispose()
