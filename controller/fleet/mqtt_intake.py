"""The telemetry subscription's connection: :mod:`muster.mqtt_wire` on an asyncio transport.

Each socket read is parsed in one pass and its messages handed to ``on_message`` synchronously,
in the order the broker sent them; QoS 1 messages are acknowledged on receipt, a read's
acknowledgements in one write (as a general client does, acknowledgement means received, not
stored: the buffer and the store say what happened next). A PINGREQ goes every half keepalive
of the clock; a broker silent for a whole keepalive is taken as gone.

``subscribe`` returns once the broker has granted every filter; ``closed`` then finishes with
:class:`MqttIntakeError` when the connection ends, for whatever reason, so the supervisor starts
a new one.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

import structlog

from muster import mqtt_wire
from muster.clock import Clock
from muster.errors import BrokenError

log = structlog.get_logger(__name__)

__all__ = ["MqttIntake", "MqttIntakeError"]

# CONNACK and SUBACK must come within this many seconds of asking.
HANDSHAKE_TIMEOUT_S = 10.0


class MqttIntakeError(BrokenError):
    """The telemetry subscription could not be made, or its connection ended."""


class _Protocol(asyncio.Protocol):
    def __init__(self, intake: MqttIntake) -> None:
        self._intake = intake

    def data_received(self, data: bytes) -> None:
        self._intake._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._intake._lost(exc)


class MqttIntake:
    def __init__(
        self,
        on_message: Callable[[str, bytes], None],
        clock: Clock,
        *,
        max_packet: int = 1 << 20,
    ) -> None:
        self._on_message = on_message
        self._clock = clock
        self._stream = mqtt_wire.SubscriberStream(max_packet)
        self._transport: asyncio.Transport | None = None
        self._handshake: asyncio.Future[mqtt_wire.ConnAck | mqtt_wire.SubAck] | None = None
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Retrieved here, so an end nobody waited for (a failed subscribe) is not logged again.
        self._closed.add_done_callback(lambda closed: closed.exception())
        self._pinger: asyncio.Task[None] | None = None
        self._heard_at = 0.0
        self.oversized = 0

    async def subscribe(
        self,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        client_id: str,
        keepalive_s: int,
        filters: list[tuple[str, int]],
    ) -> None:
        """Connect, subscribe to ``filters`` and start keeping the connection alive."""
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Protocol(self),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                ),
                HANDSHAKE_TIMEOUT_S,
            )
        except (OSError, TimeoutError) as error:
            raise MqttIntakeError(f"cannot reach the broker at {host}:{port}: {error}") from error
        self._transport = transport
        try:
            connack = await self._ask(mqtt_wire.connect(client_id, keepalive_s), "CONNACK")
            if not isinstance(connack, mqtt_wire.ConnAck):
                raise MqttIntakeError(f"the broker answered CONNECT with {connack!r}")
            if connack.return_code:
                reason = mqtt_wire.CONNACK_REFUSALS.get(connack.return_code, "refused")
                raise MqttIntakeError(
                    f"the broker refused the connection: {reason} (code {connack.return_code})"
                )
            suback = await self._ask(mqtt_wire.subscribe(1, filters), "SUBACK")
            if not isinstance(suback, mqtt_wire.SubAck) or suback.packet_id != 1:
                raise MqttIntakeError(f"the broker answered SUBSCRIBE with {suback!r}")
            refused = [
                topic
                for (topic, _), code in zip(filters, suback.granted, strict=False)
                if code == mqtt_wire.SUBACK_FAILURE
            ]
            if refused or len(suback.granted) != len(filters):
                raise MqttIntakeError(
                    f"the broker refused the subscription to {refused or filters};"
                    " check the controller's entries in the broker's ACL"
                )
        except BaseException:
            self.close()
            raise
        self._heard_at = self._clock.monotonic()
        self._pinger = asyncio.get_running_loop().create_task(self._keep_alive(keepalive_s))

    async def closed(self) -> None:
        """Wait until the connection ends; raises :class:`MqttIntakeError` saying why."""
        await asyncio.shield(self._closed)

    def close(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(mqtt_wire.disconnect())
            self._transport.close()

    async def _ask(self, packet: bytes, answer: str) -> mqtt_wire.ConnAck | mqtt_wire.SubAck:
        assert self._transport is not None
        self._handshake = asyncio.get_running_loop().create_future()
        self._transport.write(packet)
        waiting: asyncio.Future[Any] = asyncio.ensure_future(
            asyncio.wait_for(self._handshake, HANDSHAKE_TIMEOUT_S)
        )
        closed: asyncio.Future[Any] = self._closed
        done, _ = await asyncio.wait({waiting, closed}, return_when=asyncio.FIRST_COMPLETED)
        if waiting not in done:
            waiting.cancel()
            self._closed.result()  # raises why it closed
        try:
            answer_packet: mqtt_wire.ConnAck | mqtt_wire.SubAck = waiting.result()
            return answer_packet
        except TimeoutError:
            raise MqttIntakeError(
                f"no {answer} from the broker within {HANDSHAKE_TIMEOUT_S:.0f} s"
            ) from None
        finally:
            self._handshake = None

    async def _keep_alive(self, keepalive_s: int) -> None:
        interval = max(1.0, keepalive_s / 2)
        while not self._closed.done():
            await self._clock.sleep(interval)
            if self._closed.done() or self._transport is None:
                return
            if self._clock.monotonic() - self._heard_at > keepalive_s + interval:
                self._fail(MqttIntakeError(f"the broker was silent for over {keepalive_s} s"))
                return
            self._transport.write(mqtt_wire.pingreq())

    def _received(self, data: bytes) -> None:
        self._heard_at = self._clock.monotonic()
        try:
            events = self._stream.feed(data)
        except mqtt_wire.ProtocolError as error:
            self._handle(error.events)  # what came before the bad bytes is good
            self._fail(MqttIntakeError(f"the broker sent malformed MQTT: {error}"))
            return
        self._handle(events)

    def _handle(self, events: list[mqtt_wire.Event]) -> None:
        acks: list[bytes] = []
        on_message = self._on_message
        for event in events:
            if type(event) is mqtt_wire.Publish:
                if event.qos:
                    acks.append(mqtt_wire.puback(event.packet_id))
                on_message(event.topic, event.payload)
            elif type(event) is mqtt_wire.Oversized:
                self.oversized += 1
                if event.qos:
                    acks.append(mqtt_wire.puback(event.packet_id))
                log.warning(
                    "telemetry message too large; skipped",
                    topic=event.topic,
                    size=event.size,
                    limit=self._stream.max_packet,
                )
            elif (
                isinstance(event, mqtt_wire.ConnAck | mqtt_wire.SubAck)
                and self._handshake is not None
                and not self._handshake.done()
            ):
                self._handshake.set_result(event)
        if acks and self._transport is not None:
            self._transport.write(b"".join(acks))

    def _fail(self, error: MqttIntakeError) -> None:
        if not self._closed.done():
            self._closed.set_exception(error)
        if self._transport is not None:
            self._transport.abort()

    def _lost(self, exc: Exception | None) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
        if not self._closed.done():
            why = f": {exc}" if exc is not None else ""
            self._closed.set_exception(MqttIntakeError(f"the broker connection ended{why}"))
