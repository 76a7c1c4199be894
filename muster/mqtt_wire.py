"""The MQTT 3.1.1 packets a subscriber exchanges with its broker, sans-I/O: bytes to send are
built by functions, bytes received go into :class:`SubscriberStream`, which hands back events.

It is the controller's telemetry intake. A general client (paho under aiomqtt) spent about
36 µs of interpreter time on each message it delivered, a third of what a heartbeat cost the
controller; this parser takes whole socket reads and yields their messages in one pass.

What a subscriber at QoS 0 and 1 meets, and nothing else: CONNECT, CONNACK, SUBSCRIBE, SUBACK,
PUBLISH (received), PUBACK (sent), PINGREQ, PINGRESP, DISCONNECT (OASIS MQTT 3.1.1, sections
2-3). Anything else a broker sends, or a packet that breaks the rules, raises
:class:`ProtocolError` naming what was wrong; the owner drops the connection and starts a new
one. A PUBLISH larger than ``max_packet`` does not: it is skipped as its bytes arrive and
reported as :class:`Oversized` (with its packet id, to be acknowledged, since a QoS 1 message
left unacknowledged holds one of the broker's few in-flight slots for this connection), so one
device publishing a huge message cannot keep the centre's subscription cycling.
"""

from __future__ import annotations

from typing import NamedTuple

from muster.errors import TransportError

__all__ = [
    "CONNACK_REFUSALS",
    "ConnAck",
    "Event",
    "Oversized",
    "PingResp",
    "ProtocolError",
    "Publish",
    "SubAck",
    "SubscriberStream",
    "connect",
    "disconnect",
    "pingreq",
    "puback",
    "subscribe",
]

# Packet types (the high nibble of the first byte).
_CONNECT, _CONNACK, _PUBLISH, _PUBACK = 1, 2, 3, 4
_SUBSCRIBE, _SUBACK, _PINGREQ, _PINGRESP, _DISCONNECT = 8, 9, 12, 13, 14
_MAX_REMAINING = 268_435_455  # four length bytes of seven bits
SUBACK_FAILURE = 0x80

CONNACK_REFUSALS = {
    1: "the broker does not speak MQTT 3.1.1",
    2: "the broker refused the client id",
    3: "the broker is unavailable",
    4: "the broker refused the user name or password: bad credentials",
    5: "the broker refused this client: not authorised",
}


class ProtocolError(TransportError):
    """The broker sent bytes that are not the MQTT a subscriber expects. ``events`` holds what
    the same read brought before them, still to be handled."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.events: list[Event] = []


class ConnAck(NamedTuple):
    return_code: int
    session_present: bool


class SubAck(NamedTuple):
    packet_id: int
    granted: tuple[int, ...]  # one per filter: the QoS granted, or 0x80 refused


class Publish(NamedTuple):
    topic: str
    payload: bytes
    qos: int
    packet_id: int  # 0 at QoS 0
    retain: bool


class Oversized(NamedTuple):
    topic: str
    size: int  # the packet's remaining length
    qos: int
    packet_id: int


class PingResp(NamedTuple):
    pass


Event = ConnAck | SubAck | Publish | Oversized | PingResp


def _string(value: str) -> bytes:
    data = value.encode("utf-8")
    if len(data) > 0xFFFF:
        raise ValueError(f"an MQTT string holds at most 65535 bytes, got {len(data)}")
    return len(data).to_bytes(2, "big") + data


def _packet(first: int, body: bytes) -> bytes:
    length = len(body)
    if length > _MAX_REMAINING:
        raise ValueError(f"an MQTT packet holds at most {_MAX_REMAINING} bytes, got {length}")
    header = bytearray([first])
    while True:
        byte, length = length & 0x7F, length >> 7
        header.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(header) + body


def connect(client_id: str, keepalive_s: int, *, clean_session: bool = True) -> bytes:
    """CONNECT without user name or password: the broker knows this client by its TLS
    certificate."""
    if not 0 <= keepalive_s <= 0xFFFF:
        raise ValueError(f"keepalive must be 0-65535 seconds, got {keepalive_s}")
    flags = 0x02 if clean_session else 0x00
    body = _string("MQTT") + bytes([4, flags]) + keepalive_s.to_bytes(2, "big")
    return _packet(_CONNECT << 4, body + _string(client_id))


def subscribe(packet_id: int, filters: list[tuple[str, int]]) -> bytes:
    if not 1 <= packet_id <= 0xFFFF:
        raise ValueError(f"a packet id is 1-65535, got {packet_id}")
    if not filters:
        raise ValueError("SUBSCRIBE needs at least one topic filter")
    body = bytearray(packet_id.to_bytes(2, "big"))
    for topic_filter, qos in filters:
        if qos not in (0, 1, 2):
            raise ValueError(f"QoS is 0, 1 or 2, got {qos} for {topic_filter!r}")
        body += _string(topic_filter) + bytes([qos])
    return _packet(_SUBSCRIBE << 4 | 0x02, bytes(body))


def puback(packet_id: int) -> bytes:
    return bytes([_PUBACK << 4, 2]) + packet_id.to_bytes(2, "big")


def pingreq() -> bytes:
    return bytes([_PINGREQ << 4, 0])


def disconnect() -> bytes:
    return bytes([_DISCONNECT << 4, 0])


class SubscriberStream:
    """Bytes from the broker in, events out. ``feed`` keeps an incomplete packet for the next
    read; after a :class:`ProtocolError` the stream is unusable (the connection must go)."""

    def __init__(self, max_packet: int = 1 << 20) -> None:
        if max_packet < 16:
            raise ValueError(f"max_packet must be at least 16 bytes, got {max_packet}")
        self.max_packet = max_packet
        self._buffer = bytearray()
        self._skipping = 0  # bytes of an oversized PUBLISH still to discard
        self._broken: ProtocolError | None = None

    def feed(self, data: bytes) -> list[Event]:
        if self._broken is not None:
            raise ProtocolError(str(self._broken))
        events: list[Event] = []
        try:
            self._feed(data, events)
        except ProtocolError as error:
            error.events = events
            self._broken = error
            raise
        return events

    def _feed(self, data: bytes, events: list[Event]) -> None:
        if self._skipping:
            skipped = min(self._skipping, len(data))
            self._skipping -= skipped
            data = data[skipped:]
        buffer = self._buffer
        buffer += data
        view = memoryview(buffer)
        end = len(buffer)
        at = 0
        try:
            while end - at >= 2:
                first = buffer[at]
                # Remaining length: up to four bytes of seven bits, low bits first.
                length = 0
                shift = 0
                index = at + 1
                while True:
                    if index >= end:
                        return  # the length itself is not all here yet
                    byte = buffer[index]
                    length |= (byte & 0x7F) << shift
                    index += 1
                    if not byte & 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        raise ProtocolError("remaining length longer than four bytes")
                kind = first >> 4
                if length > self.max_packet:
                    if kind != _PUBLISH:
                        raise ProtocolError(
                            f"packet type {kind} of {length} bytes exceeds the"
                            f" {self.max_packet}-byte limit"
                        )
                    oversized = self._oversized(buffer, first, index, end, length)
                    if oversized is None:
                        return  # its topic and packet id are not all here yet
                    events.append(oversized)
                    if end - index >= length:  # all of it came in this read
                        at = index + length
                        continue
                    self._skipping = length - (end - index)
                    at = end
                    break
                if end - index < length:
                    return
                body_end = index + length
                if kind == _PUBLISH:
                    events.append(self._publish(buffer, view, first, index, body_end))
                elif kind == _PINGRESP:
                    if length:
                        raise ProtocolError(f"PINGRESP with a {length}-byte body")
                    events.append(PingResp())
                elif kind == _CONNACK:
                    if length != 2 or first & 0x0F:
                        raise ProtocolError("CONNACK must be exactly 2 bytes with no flags")
                    events.append(ConnAck(buffer[index + 1], bool(buffer[index] & 0x01)))
                elif kind == _SUBACK:
                    if length < 3 or first & 0x0F:
                        raise ProtocolError("SUBACK needs a packet id and a return code")
                    granted = tuple(buffer[index + 2 : body_end])
                    if any(code not in (0, 1, 2, SUBACK_FAILURE) for code in granted):
                        raise ProtocolError(f"SUBACK return codes {granted} are not 0-2 or 0x80")
                    events.append(SubAck(int.from_bytes(buffer[index : index + 2]), granted))
                else:
                    raise ProtocolError(f"a broker does not send packet type {kind} to this client")
                at = body_end
        finally:
            view.release()
            del buffer[:at]

    @staticmethod
    def _publish(buffer: bytearray, view: memoryview, first: int, start: int, end: int) -> Publish:
        qos = (first >> 1) & 0x03
        if qos == 3:
            raise ProtocolError("PUBLISH with QoS 3")
        if end - start < 2:
            raise ProtocolError("PUBLISH without a topic")
        topic_end = start + 2 + (buffer[start] << 8 | buffer[start + 1])
        payload_start = topic_end + (2 if qos else 0)
        if payload_start > end:
            raise ProtocolError("PUBLISH shorter than its topic and packet id")
        try:
            topic = str(view[start + 2 : topic_end], "utf-8")
        except UnicodeDecodeError as error:
            raise ProtocolError(f"PUBLISH topic is not UTF-8: {error}") from None
        packet_id = buffer[topic_end] << 8 | buffer[topic_end + 1] if qos else 0
        if qos and not packet_id:
            raise ProtocolError("PUBLISH at QoS 1 or 2 with packet id 0")
        return Publish(topic, bytes(view[payload_start:end]), qos, packet_id, bool(first & 0x01))

    @staticmethod
    def _oversized(
        buffer: bytearray, first: int, start: int, end: int, length: int
    ) -> Oversized | None:
        """The head of a PUBLISH too large to keep, once its topic and packet id are here."""
        qos = (first >> 1) & 0x03
        if qos == 3:
            raise ProtocolError("PUBLISH with QoS 3")
        if end - start < 2:
            return None
        topic_end = start + 2 + (buffer[start] << 8 | buffer[start + 1])
        head_end = topic_end + (2 if qos else 0)
        if head_end > start + length:
            raise ProtocolError("PUBLISH shorter than its topic and packet id")
        if head_end > end:
            return None
        topic = bytes(buffer[start + 2 : topic_end]).decode("utf-8", "replace")
        packet_id = buffer[topic_end] << 8 | buffer[topic_end + 1] if qos else 0
        return Oversized(topic, length, qos, packet_id)
