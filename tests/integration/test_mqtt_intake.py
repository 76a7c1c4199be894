"""The telemetry subscription's own MQTT connection against a real Mosquitto, and against
brokers that misbehave (a local TCP server speaking what a broken or hostile broker would)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import aiomqtt
import pytest

from controller.fleet import mqtt_intake
from controller.fleet.mqtt_intake import MqttIntake, MqttIntakeError
from muster.clock import SystemClock
from tests.fixtures.mosquitto import MosquittoBroker

pytestmark = pytest.mark.timeout(60)

FILTERS = [("muster/v1/dev/+/telemetry", 0), ("muster/v1/dev/+/status", 1)]


class Received:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    def __call__(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))

    async def until(self, count: int) -> None:
        async with asyncio.timeout(20):
            while len(self.messages) < count:  # noqa: ASYNC110 (a callback fills it)
                await asyncio.sleep(0.02)


async def test_every_message_arrives_in_order_and_qos1_is_acknowledged(
    mosquitto: MosquittoBroker,
) -> None:
    """600 messages, 300 at QoS 1: the broker lets at most 20 go unacknowledged to a client, so
    all 300 arriving proves each was acknowledged."""
    received = Received()
    intake = MqttIntake(received, SystemClock())
    await intake.subscribe(mosquitto.host, mosquitto.port, None, "intake-test", 30, FILTERS)
    try:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as device:
            for n in range(300):
                await device.publish("muster/v1/dev/a/status", f"s{n}".encode(), qos=1)
                await device.publish("muster/v1/dev/b/telemetry", f"t{n}".encode(), qos=0)
            await device.publish("muster/v1/dev/a/event", b"not subscribed", qos=1)
        await received.until(600)
        statuses = [p for t, p in received.messages if t.endswith("/status")]
        beats = [p for t, p in received.messages if t.endswith("/telemetry")]
        assert statuses == [f"s{n}".encode() for n in range(300)]
        assert beats == [f"t{n}".encode() for n in range(300)]
    finally:
        intake.close()


async def test_a_huge_message_is_skipped_and_the_subscription_lives_on(
    mosquitto: MosquittoBroker,
) -> None:
    received = Received()
    intake = MqttIntake(received, SystemClock(), max_packet=4096)
    await intake.subscribe(mosquitto.host, mosquitto.port, None, "intake-big", 30, FILTERS)
    closed = asyncio.ensure_future(intake.closed())
    try:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as device:
            await device.publish("muster/v1/dev/a/status", b"z" * 1_000_000, qos=1)
            for n in range(30):  # more than the broker's in-flight window: the big one was acked
                await device.publish("muster/v1/dev/a/status", f"after{n}".encode(), qos=1)
        await received.until(30)
        assert received.messages[0] == ("muster/v1/dev/a/status", b"after0")
        assert intake.oversized == 1
        assert not closed.done()
    finally:
        closed.cancel()
        intake.close()


async def test_the_broker_going_away_ends_the_subscription_with_the_reason(
    mosquitto: MosquittoBroker,
) -> None:
    intake = MqttIntake(Received(), SystemClock())
    await intake.subscribe(mosquitto.host, mosquitto.port, None, "intake-gone", 30, FILTERS)
    mosquitto.stop()
    with pytest.raises(MqttIntakeError, match="connection ended"):
        async with asyncio.timeout(15):
            await intake.closed()


async def test_no_broker_listening_is_a_clear_error() -> None:
    intake = MqttIntake(Received(), SystemClock())
    with pytest.raises(MqttIntakeError, match=r"cannot reach the broker at 127\.0\.0\.1:1"):
        await intake.subscribe("127.0.0.1", 1, None, "intake-none", 30, FILTERS)


Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def fake_broker(answer: Answer) -> AsyncIterator[int]:
    """A TCP server on loopback whose replies to each read are ``answer``'s."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                await answer(data, writer)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


CONNACK_OK = bytes.fromhex("20020000")
SUBACK_OK = bytes.fromhex("900400010001")


def handshake_then(after: bytes = b"", *, suback: bytes = SUBACK_OK) -> Answer:
    """Accept the connection and the subscription, send ``after`` a moment later, then answer
    nothing (not even PINGREQ)."""

    async def answer(data: bytes, writer: asyncio.StreamWriter) -> None:
        if data[0] >> 4 == 1:  # CONNECT
            writer.write(CONNACK_OK)
        elif data[0] >> 4 == 8:  # SUBSCRIBE
            writer.write(suback)
            if after:
                asyncio.get_running_loop().call_later(0.2, writer.write, after)

    return answer


@pytest.mark.parametrize(
    ("code", "reason"),
    [(5, "not authorised"), (2, "refused the client id"), (3, "unavailable")],
)
async def test_a_refused_connection_says_why(code: int, reason: str) -> None:
    async def refuse(data: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(bytes([0x20, 2, 0, code]))

    async with fake_broker(refuse) as port:
        with pytest.raises(MqttIntakeError, match=f"{reason} \\(code {code}\\)"):
            await MqttIntake(Received(), SystemClock()).subscribe(
                "127.0.0.1", port, None, "x", 30, FILTERS
            )


async def test_a_refused_filter_points_at_the_acl() -> None:
    async with fake_broker(handshake_then(suback=bytes.fromhex("900400010180"))) as port:
        with pytest.raises(MqttIntakeError, match=r"muster/v1/dev/\+/status.*ACL"):
            await MqttIntake(Received(), SystemClock()).subscribe(
                "127.0.0.1", port, None, "x", 30, FILTERS
            )


async def test_a_broker_that_never_answers_connect_times_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mqtt_intake, "HANDSHAKE_TIMEOUT_S", 0.5)

    async def mute(data: bytes, writer: asyncio.StreamWriter) -> None:
        return None

    async with fake_broker(mute) as port:
        with pytest.raises(MqttIntakeError, match="no CONNACK from the broker"):
            await MqttIntake(Received(), SystemClock()).subscribe(
                "127.0.0.1", port, None, "x", 30, FILTERS
            )


async def test_garbage_from_the_broker_ends_the_connection_and_keeps_what_came_before() -> None:
    good = bytes([0x30, 3 + 4]) + b"\x00\x01t" + b"beat"  # topic "t", QoS 0
    received = Received()
    async with fake_broker(handshake_then(good + bytes.fromhex("62020001"))) as port:
        intake = MqttIntake(received, SystemClock())
        await intake.subscribe("127.0.0.1", port, None, "x", 30, FILTERS)
        with pytest.raises(MqttIntakeError, match=r"malformed MQTT.*packet type 6"):
            async with asyncio.timeout(10):
                await intake.closed()
    assert received.messages == [("t", b"beat")]


async def test_a_broker_that_stops_answering_pings_is_given_up() -> None:
    async with fake_broker(handshake_then()) as port:
        intake = MqttIntake(Received(), SystemClock())
        await intake.subscribe("127.0.0.1", port, None, "x", 2, FILTERS)
        with pytest.raises(MqttIntakeError, match="silent for over 2 s"):
            async with asyncio.timeout(15):
                await intake.closed()
