"""Telemetry over MQTT: a retained ``online`` status with an ``offline`` last will, a heartbeat
every interval, and events. Never blocks collection: events wait in a bounded buffer while the
broker is away, and the oldest are dropped (with a warning) if it stays away too long.

The link holds a list of broker addresses (the nodes of a cluster) and fails over between them
as :mod:`edge.uplink.brokers` decides; after every (re)connection it publishes its retained
``online`` status again, stamped with the time of that attempt, so the retained status always
belongs to the newest session (the one a will of which would say ``offline``)."""

from __future__ import annotations

import asyncio
import collections
import random
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import aiomqtt
import structlog

from edge.uplink.brokers import Attempt, BrokerRotation, keep_connected, parse_broker_list
from muster import topics
from muster.backoff import Backoff
from muster.clock import Clock, wait_for_event
from muster.mqtt import BrokerAddress
from muster.v1 import device_pb2

log = structlog.get_logger(__name__)

Status = device_pb2.DeviceStatus


def _status(
    device_id: str, state: Status.State.ValueType, since: datetime, *, graceful: bool = False
) -> bytes:
    message = Status(device_id=device_id, state=state, graceful=graceful)
    message.since.FromDatetime(since)
    return message.SerializeToString()


def _refused(granted: Sequence[object]) -> bool:
    """A SUBACK that refused (MQTT 3.1.1 return code 0x80, a failure reason code in 5)."""
    return any(
        bool(getattr(code, "is_failure", False)) or (isinstance(code, int) and code >= 0x80)
        for code in granted
    )


# How long a refusal of our certificate may take to arrive after the TLS handshake (TLS 1.3:
# the broker checks the client certificate after the handshake and answers with an alert).
REFUSAL_WAIT_S = 2.0


@dataclass(frozen=True, slots=True)
class BrokerProbe:
    """What :meth:`TelemetryLink.probe_tls` saw: ``accepted`` (TLS up, certificate taken),
    ``plain`` (reachable, no TLS), ``unreachable``, ``untrusted`` (the broker's certificate is not
    from our CA), ``refused`` (the broker refused our certificate) or ``bad_identity`` (ours
    cannot be loaded)."""

    outcome: Literal["accepted", "plain", "unreachable", "untrusted", "refused", "bad_identity"]
    detail: str = ""


class TelemetryLink:
    def __init__(
        self,
        device_id: str,
        broker_url: str | Sequence[str],
        heartbeat: Callable[[], device_pb2.Heartbeat],
        *,
        interval_s: float,
        tls_context: ssl.SSLContext | None = None,
        clock: Clock,
        buffer: int = 1000,
        on_command: Callable[[bytes], Awaitable[None]] | None = None,
    ) -> None:
        self._device_id = device_id
        # One URL or the cluster's list, tried in order (edge.uplink.brokers).
        self._brokers = parse_broker_list(
            [broker_url] if isinstance(broker_url, str) else broker_url
        )
        # Seeded by the device id: one device replays, a township's devices spread out.
        self._rotation = BrokerRotation(
            self._brokers,
            Backoff(maximum=30.0, rng=random.Random(f"{device_id}:telemetry")),
        )
        self._heartbeat = heartbeat
        self._interval = interval_s
        self._tls = tls_context
        self._clock = clock
        self._events: collections.deque[device_pb2.Event] = collections.deque(maxlen=buffer)
        # Acks that could not be published yet wait here (the controller times out the rest).
        self._acks: collections.deque[device_pb2.CommandAck] = collections.deque(maxlen=buffer)
        self._on_command = on_command
        self._event_ready = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        # The broker of the live connection, None while there is none.
        self.connected_to: BrokerAddress | None = None
        self.heartbeats_sent = 0
        self.connections = 0

    @property
    def broker(self) -> tuple[str, int]:
        """The first broker of the list (the one the self-test probes)."""
        return self._brokers[0].host, self._brokers[0].port

    @property
    def brokers(self) -> tuple[BrokerAddress, ...]:
        return self._brokers

    def probe_tls(self, timeout_s: float) -> BrokerProbe:
        """Reach the broker with this link's address and TLS context, stopping at the TLS layer:
        the broker binds the client id to the certificate, so an MQTT CONNECT with it *is* the
        daemon's session and would push the running daemon off (and, with a clean session,
        wipe its queued commands). Blocking; for the self-test."""
        try:
            raw = socket.create_connection(self.broker, timeout=timeout_s)
        except OSError as exc:
            return BrokerProbe("unreachable", str(exc))
        with raw:
            if self._tls is None:
                return BrokerProbe("plain")
            try:
                with self._tls.wrap_socket(raw, server_hostname=self._brokers[0].host) as tls:
                    tls.settimeout(min(timeout_s, REFUSAL_WAIT_S))
                    try:
                        answer = tls.recv(1)
                    except TimeoutError:
                        answer = None  # silence: the broker waits for our CONNECT, it took us
                    if answer == b"":
                        return BrokerProbe("refused", "closed after the handshake")
            except ssl.SSLCertVerificationError as exc:
                return BrokerProbe("untrusted", str(exc.verify_message))
            except ssl.SSLError as exc:
                return BrokerProbe("refused", str(exc.reason or exc))
            except OSError as exc:
                return BrokerProbe("unreachable", str(exc))
        return BrokerProbe("accepted")

    def emit(self, kind: device_pb2.Event.Kind.ValueType, message: str, **details: str) -> None:
        event = device_pb2.Event(
            device_id=self._device_id, kind=kind, message=message, details=details
        )
        event.at.FromDatetime(self._clock.now())
        if len(self._events) == self._events.maxlen:
            log.warning("event buffer full; dropping the oldest event")
        self._events.append(event)
        self._event_ready.set()

    async def run(self) -> None:
        await keep_connected(
            self._rotation,
            self._clock,
            self._session,
            retry_on=(aiomqtt.MqttError,),
            on_lost=self._lost,
        )

    def _lost(self, broker: BrokerAddress, error: Exception | None, then: Attempt) -> None:
        log.warning(
            "broker unreachable; buffering",
            broker=f"{broker.host}:{broker.port}",
            error=str(error) if error is not None else "connection ended",
            next_broker=f"{then.address.host}:{then.address.port}",
            retry_in_s=round(then.wait_s, 1),
        )

    async def _session(self, broker: BrokerAddress) -> None:
        """One connection to ``broker``: the will (``offline``), the command subscription, the
        retained ``online``, then publishing and receiving until it breaks."""
        since = self._clock.now()
        will = aiomqtt.Will(
            topics.topic(self._device_id, "status"),
            _status(self._device_id, Status.STATE_OFFLINE, since),
            qos=1,
            retain=True,
        )
        try:
            async with aiomqtt.Client(
                broker.host,
                broker.port,
                identifier=self._device_id,
                username=self._device_id if self._tls is None else None,
                will=will,
                tls_context=self._tls if broker.tls else None,
                keepalive=max(10, int(self._interval * 2)),
                # A persistent session: the broker keeps commands sent while we are away.
                clean_session=False,
            ) as client:
                self._client = client
                if self._on_command is not None:
                    # Before saying online: a node may take the connection but refuse the
                    # subscription (NATS while its JetStream elects leaders after a peer died),
                    # and a device deaf to its commands must try the next node instead.
                    granted = await client.subscribe(topics.topic(self._device_id, "cmd"), qos=1)
                    if _refused(granted):
                        raise aiomqtt.MqttError(
                            f"{broker.host}:{broker.port} refused the command subscription"
                        )
                await client.publish(
                    topics.topic(self._device_id, "status"),
                    _status(self._device_id, Status.STATE_ONLINE, since),
                    qos=1,
                    retain=True,
                )
                # Accepted and serving: the next loss starts the backoff from the beginning.
                self._rotation.connected()
                self.connected_to = broker
                self.connections += 1
                self.connected.set()
                log.info("telemetry connected", broker=f"{broker.host}:{broker.port}")
                await self._serve(client)
        finally:
            self.connected.clear()
            self.connected_to = None
            self._client = None

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Publish and receive commands side by side until either fails."""
        tasks = [asyncio.create_task(self._publish_loop(client), name="telemetry-publish")]
        if self._on_command is not None:
            tasks.append(asyncio.create_task(self._command_loop(client), name="telemetry-cmd"))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _command_loop(self, client: aiomqtt.Client) -> None:
        assert self._on_command is not None
        own = topics.topic(self._device_id, "cmd")
        async for message in client.messages:
            if str(message.topic) == own and isinstance(message.payload, bytes):
                await self._on_command(message.payload)

    async def send_ack(self, ack: device_pb2.CommandAck) -> None:
        """Publish an ack now if the broker is there (waiting for it to take it), else queue it."""
        client = self._client
        if client is not None:
            try:
                await client.publish(
                    topics.topic(self._device_id, "ack"), ack.SerializeToString(), qos=1
                )
                return
            except aiomqtt.MqttError:
                log.warning("ack not published; queued", command_id=ack.command_id)
        self._acks.append(ack)
        self._event_ready.set()

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        clock = self._clock
        next_beat = clock.monotonic()
        while True:
            while self._acks:
                await client.publish(
                    topics.topic(self._device_id, "ack"), self._acks[0].SerializeToString(), qos=1
                )
                self._acks.popleft()
            while self._events:
                event = self._events[0]
                await client.publish(
                    topics.topic(self._device_id, "event"), event.SerializeToString(), qos=1
                )
                self._events.popleft()
            if clock.monotonic() >= next_beat:
                beat = self._heartbeat()
                await client.publish(
                    topics.topic(self._device_id, "telemetry"),
                    beat.SerializeToString(),
                    qos=topics.QOS["telemetry"],
                )
                self.heartbeats_sent += 1
                next_beat = clock.monotonic() + self._interval
            self._event_ready.clear()
            await wait_for_event(clock, self._event_ready, next_beat - clock.monotonic())

    async def say_goodbye(self) -> None:
        """Before a planned stop: a last heartbeat, the buffered events, then a graceful offline
        status (the last will covers unplanned stops)."""
        client = self._client
        if client is None:
            return
        try:
            async with asyncio.timeout(3.0):
                while self._acks:
                    await client.publish(
                        topics.topic(self._device_id, "ack"),
                        self._acks.popleft().SerializeToString(),
                        qos=1,
                    )
                while self._events:
                    await client.publish(
                        topics.topic(self._device_id, "event"),
                        self._events.popleft().SerializeToString(),
                        qos=1,
                    )
                await client.publish(
                    topics.topic(self._device_id, "telemetry"),
                    self._heartbeat().SerializeToString(),
                    qos=topics.QOS["telemetry"],
                )
                await client.publish(
                    topics.topic(self._device_id, "status"),
                    _status(
                        self._device_id, Status.STATE_OFFLINE, self._clock.now(), graceful=True
                    ),
                    qos=1,
                    retain=True,
                )
        except (aiomqtt.MqttError, TimeoutError):
            log.warning("could not say goodbye to the broker; the last will will do it")
