"""The telemetry intake's MQTT 3.1.1 codec, byte for byte (OASIS MQTT 3.1.1), and what it does
with a broker's bytes however they are cut up, and with bytes that are not MQTT."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from muster import mqtt_wire
from muster.mqtt_wire import ConnAck, Oversized, PingResp, ProtocolError, Publish, SubAck


def publish_packet(
    topic: str, payload: bytes, qos: int = 0, packet_id: int = 0, retain: bool = False
) -> bytes:
    """A PUBLISH as a broker sends it (built here by hand, independently of the codec)."""
    body = len(topic.encode()).to_bytes(2, "big") + topic.encode()
    if qos:
        body += packet_id.to_bytes(2, "big")
    body += payload
    return _frame(0x30 | qos << 1 | int(retain), body)


def _frame(first: int, body: bytes) -> bytes:
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([first]) + bytes(encoded) + body


def test_connect_is_the_spec_s_bytes() -> None:
    # Protocol name "MQTT", level 4, clean session, keepalive 30, then the client id.
    assert mqtt_wire.connect("ctl", 30) == bytes.fromhex("100f00044d5154540402001e0003") + b"ctl"


def test_subscribe_puback_ping_and_disconnect_are_the_spec_s_bytes() -> None:
    assert mqtt_wire.subscribe(1, [("a/+", 0), ("$share/g/b/#", 1)]) == (
        bytes.fromhex("821700010003") + b"a/+" + b"\x00" + b"\x00\x0c$share/g/b/#" + b"\x01"
    )
    assert mqtt_wire.puback(0x1234) == bytes.fromhex("40021234")
    assert mqtt_wire.pingreq() == bytes.fromhex("c000")
    assert mqtt_wire.disconnect() == bytes.fromhex("e000")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mqtt_wire.connect("x", 70_000), "keepalive must be 0-65535"),
        (lambda: mqtt_wire.subscribe(0, [("a", 0)]), "packet id is 1-65535"),
        (lambda: mqtt_wire.subscribe(1, []), "at least one topic filter"),
        (lambda: mqtt_wire.subscribe(1, [("a", 3)]), "QoS is 0, 1 or 2"),
        (lambda: mqtt_wire.connect("x" * 70_000, 30), "at most 65535 bytes"),
    ],
)
def test_packets_it_cannot_build_are_refused_with_the_reason(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16_383, 16_384, 70_000])
def test_every_remaining_length_width_is_read(size: int) -> None:
    packet = publish_packet("muster/v1/dev/d/telemetry", b"x" * size, qos=1, packet_id=7)
    assert mqtt_wire.SubscriberStream(max_packet=1 << 20).feed(packet) == [
        Publish("muster/v1/dev/d/telemetry", b"x" * size, 1, 7, False)
    ]


def test_a_read_holding_many_packets_and_one_cut_in_half() -> None:
    stream = mqtt_wire.SubscriberStream()
    connack, suback = bytes.fromhex("20020100"), bytes.fromhex("900400010180")
    beat = publish_packet("t/1", b"beat", retain=True)
    status = publish_packet("t/2", b"status", qos=1, packet_id=9)
    data = connack + suback + beat + bytes.fromhex("d000") + status
    cut = len(data) - 3
    assert stream.feed(data[:cut]) == [
        ConnAck(0, True),
        SubAck(1, (1, 0x80)),
        Publish("t/1", b"beat", 0, 0, True),
        PingResp(),
    ]
    assert stream.feed(data[cut:]) == [Publish("t/2", b"status", 1, 9, False)]
    assert stream.feed(b"") == []


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(
        st.tuples(
            st.text(min_size=1, max_size=40),
            st.binary(max_size=300),
            st.sampled_from([0, 1]),
            st.integers(1, 0xFFFF),
            st.booleans(),
        ),
        max_size=20,
    ),
    cuts=st.lists(st.integers(0, 10_000), max_size=30),
)
def test_however_the_reads_are_cut_the_same_messages_come_out_in_order(
    messages: list[tuple[str, bytes, int, int, bool]], cuts: list[int]
) -> None:
    data = b"".join(
        publish_packet(topic, payload, qos, packet_id, retain)
        for topic, payload, qos, packet_id, retain in messages
    )
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    stream = mqtt_wire.SubscriberStream()
    got: list[object] = []
    for start, end in itertools.pairwise(points):
        got += stream.feed(data[start:end])
    assert got == [
        Publish(topic, payload, qos, packet_id if qos else 0, retain)
        for topic, payload, qos, packet_id, retain in messages
    ]


@pytest.mark.parametrize("step", [1, 3, 1000, 10**6])
def test_an_oversized_publish_is_skipped_and_acked_not_fatal(step: int) -> None:
    """One device's huge message must not drop the centre's subscription: it is reported with
    its packet id (the broker holds a QoS 1 message in flight until acked) and skipped, and the
    message after it is read as usual."""
    big = publish_packet("muster/v1/dev/d/event", b"y" * 5000, qos=1, packet_id=42)
    after = publish_packet("muster/v1/dev/e/telemetry", b"beat")
    data = big + after
    stream = mqtt_wire.SubscriberStream(max_packet=1024)
    got: list[object] = []
    for start in range(0, len(data), step):
        got += stream.feed(data[start : start + step])
    assert got == [
        Oversized("muster/v1/dev/d/event", len(big) - 3, 1, 42),
        Publish("muster/v1/dev/e/telemetry", b"beat", 0, 0, False),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bytes.fromhex("30ffffffff01"), "longer than four bytes"),
        (bytes.fromhex("3606000174") + b"x\x00\x01", "QoS 3"),
        (bytes.fromhex("3205000174") + b"\x00\x00", "packet id 0"),
        (bytes.fromhex("30050003ff") + b"\xfe" + b"a", "not UTF-8"),
        (bytes.fromhex("3005000a") + b"abc", "shorter than its topic"),
        (bytes.fromhex("300100"), "without a topic"),
        (bytes.fromhex("62020001"), "does not send packet type 6"),  # PUBREL: QoS 2 never asked
        (bytes.fromhex("100c00044d5154540402001e0000"), "does not send packet type 1"),
        (bytes.fromhex("200300000000"), "CONNACK must be exactly 2 bytes"),
        (bytes.fromhex("9003000105"), "return codes (5,)"),
        (bytes.fromhex("d00100"), "PINGRESP with a 1-byte body"),
        (bytes.fromhex("90ff7f"), "exceeds the 1024-byte limit"),
    ],
)
def test_bytes_that_are_not_a_subscriber_s_mqtt_are_refused_with_the_reason(
    data: bytes, message: str
) -> None:
    stream = mqtt_wire.SubscriberStream(max_packet=1024)
    with pytest.raises(ProtocolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        stream.feed(data)
    # The connection is done for: the stream says so again rather than read past the error.
    with pytest.raises(ProtocolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        stream.feed(bytes.fromhex("d000"))


def test_what_a_read_brought_before_bad_bytes_is_kept_on_the_error() -> None:
    stream = mqtt_wire.SubscriberStream()
    with pytest.raises(ProtocolError) as refused:
        stream.feed(publish_packet("t", b"beat") + bytes.fromhex("62020001"))
    assert refused.value.events == [Publish("t", b"beat", 0, 0, False)]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_any_bytes_give_events_or_a_protocol_error_and_nothing_else(reads: list[bytes]) -> None:
    stream = mqtt_wire.SubscriberStream(max_packet=256)
    try:
        for data in reads:
            for event in stream.feed(data):
                assert isinstance(event, ConnAck | SubAck | Publish | Oversized | PingResp)
    except ProtocolError:
        pass


def test_a_stream_needs_room_for_a_packet_header() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        mqtt_wire.SubscriberStream(max_packet=8)
