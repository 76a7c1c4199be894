"""Telemetry consumer: keeps each device's state from its retained status (with the last will),
heartbeats and events. Messages are applied in small batches, one transaction per batch, so one
process keeps up with a national fleet's heartbeats.

Two jobs under the controller's supervisor: ``run`` (the broker connections: the telemetry
subscription, read by the controller's own MQTT intake into the buffer, and the client the
command sender publishes through; when either goes away it raises and the supervisor reconnects
after a jittered backoff) and ``flush_forever`` (apply the buffer every ``telemetry_flush_s``).

The buffer is bounded (``telemetry_buffer_max`` messages, counting a batch being applied). It
fills only when the database falls behind. When it is full:

1. it is compacted: a device's status and heartbeat are superseded by its newer ones, so only
   the newest status and the newest heartbeat of each device are kept (in arrival order), and
   the ones dropped are counted in ``messages_superseded`` (nothing is lost: the newer message
   carries the device's current state);
2. if that frees less than a tenth of the buffer, the buffer is *saturated*: every message that
   arrives until the next successful flush is dropped, events and acks included, counted in
   ``messages_dropped`` and logged as a warning with the count. (A dropped ack leaves its
   command ``sent``; it is sent again when the device comes back online, or it expires.)

A batch that fails for what it holds (not for the database being away) is applied in halves
down to the message that fails, which is refused for good: logged with its device and counted in
``messages_refused``. Without that, the batch went back to fail again at every flush, and one
device's unforeseen value stopped every device's telemetry.

``/api/v1/telemetry`` reports these counts next to ``messages_received`` and ``messages_applied``
(messages that changed something), and ``messages_handled``: messages whose fate is settled
(applied, found stale or duplicate, superseded or dropped), so that a reader can tell the process
has caught up even when replicas sharing the load see a device's beats out of order.

Intakes other than this MQTT connection (``controller/fleet/telemetry_nats.py``) feed the same
buffer through ``receive``; one that must acknowledge a message only once it is in the database
(a JetStream consumer) registers ``after_flush`` callbacks, run once the batch holding everything
received before them has committed.

A revoked device's messages are dropped on arrival, whatever the broker still lets through (a
TLS session opened before the revocation lives until it closes). The one kind kept is the ack
of a command the centre sent it (the revoke itself, a wipe): it changes only that command's
state, and it is how an admin sees the device obeyed. The consumer keeps the set of
revoked device ids cached, refreshed every ``REVOKED_REFRESH_S`` of the clock by the flush loop
(one query, not one per message), and the store checks again when it applies a batch. Each drop
is counted in ``messages_from_revoked`` and logged, the first per device per refresh as a
warning.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable

import aiomqtt
import structlog
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SqlTimeoutError

from controller.devices.pki_store import ControllerPki
from controller.fleet.mqtt_intake import MqttIntake, MqttIntakeError
from controller.fleet.telemetry_buffer import TelemetryBuffer
from controller.fleet.telemetry_store import DeviceStateStore, Message
from controller.settings import ControllerSettings
from muster import topics
from muster.backoff import Backoff
from muster.clock import Clock
from muster.mqtt import client_tls_context, parse_broker_url
from muster.tasks import first_to_end

log = structlog.get_logger(__name__)

# Heartbeats at QoS 0: each is superseded by the next one within a minute, so a beat lost with a
# broken connection costs nothing, while acknowledging every beat cost a send() per message (the
# largest single item of the receive path's profile). Statuses, events and acks keep QoS 1.
SUBSCRIBE_QOS: dict[topics.Kind, int] = {"status": 1, "telemetry": 0, "event": 1, "ack": 1}
# Failures that say the database is away (or busy), not that a message is wrong: the batch is
# kept whole for the next flush. Anything else is isolated to the message that causes it.
DATABASE_AWAY = (OperationalError, InterfaceError, DisconnectionError, SqlTimeoutError, OSError)
# The telemetry connection's MQTT keepalive.
KEEPALIVE_S = 30
# How often the cached set of revoked devices is read again.
REVOKED_REFRESH_S = 5.0


class TelemetryConsumer:
    def __init__(
        self,
        settings: ControllerSettings,
        store: DeviceStateStore,
        clock: Clock,
        pki: ControllerPki | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock
        self._pki = pki
        self._buffer = TelemetryBuffer(settings.telemetry_buffer_max)
        # Flushes that fail (the database away) are retried after a backoff, not every 0.2 s.
        self._flush_backoff = Backoff(
            settings.telemetry_flush_s, 30.0, rng if rng is not None else random.Random(0)
        )
        self.connected = asyncio.Event()
        self.messages_applied = 0
        self.messages_received = 0
        self.messages_refused = 0
        # Run after the next batch commits (see the module docstring): a JetStream intake's acks.
        self._after_flush: list[Callable[[], Awaitable[None]]] = []
        self._revoked: frozenset[str] = frozenset()
        self._revoked_read_at: float | None = None
        self._revoked_logged: set[str] = set()
        self._dropped_revoked = 0
        # The live broker connection, for whoever publishes through it (the command sender).
        self.client: aiomqtt.Client | None = None

    @property
    def messages_superseded(self) -> int:
        return self._buffer.superseded

    @property
    def messages_dropped(self) -> int:
        return self._buffer.dropped

    @property
    def pending(self) -> int:
        return len(self._buffer)

    @property
    def messages_handled(self) -> int:
        """Messages received whose fate is settled: neither buffered nor in the batch being
        applied."""
        return self.messages_received - len(self._buffer) - self._buffer.in_flight

    def is_revoked(self, device_id: str) -> bool:
        """In the cached revoked set (``receive`` drops all but acks of such a device)."""
        return device_id in self._revoked

    def after_flush(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` once everything received so far is in the database (or, when the
        buffer was empty, at the next flush)."""
        self._after_flush.append(callback)

    @property
    def messages_from_revoked(self) -> int:
        """Messages of revoked devices dropped, on arrival or when their batch was applied."""
        return self._dropped_revoked + self._store.dropped_revoked

    def refresh_revoked(self) -> frozenset[str]:
        """Read the revoked set again (a query); the flush loop calls it on the clock."""
        revoked = self._store.revoked_devices()
        if revoked != self._revoked:
            log.info("revoked devices refreshed", revoked=len(revoked))
        self._revoked = revoked
        self._revoked_logged.clear()
        self._revoked_read_at = self._clock.monotonic()
        return revoked

    def _refresh_revoked_if_due(self) -> None:
        read_at = self._revoked_read_at
        if read_at is None or self._clock.monotonic() - read_at >= REVOKED_REFRESH_S:
            self.refresh_revoked()

    def receive(self, device_id: str, kind: str, payload: bytes) -> bool:
        """Buffer one decoded message; False when it was dropped (full buffer, revoked device)."""
        self.messages_received += 1
        if device_id in self._revoked and kind != "ack":
            self._dropped_revoked += 1
            if device_id not in self._revoked_logged:
                self._revoked_logged.add(device_id)
                log.warning("messages of a revoked device dropped", device_id=device_id, kind=kind)
            return False
        return self._buffer.add((device_id, kind, payload))

    async def run(self) -> None:
        """The broker connections, until one breaks: the telemetry subscription
        (:mod:`controller.fleet.mqtt_intake`, unless telemetry comes from NATS) and the client
        the command sender publishes through. Their end raises; the supervisor reconnects after
        a jittered backoff."""
        address = parse_broker_url(self._settings.mqtt_url)
        tls = None
        if address.tls and self._pki is not None:  # mqtts://: TLS with our client certificate
            tls = client_tls_context(
                self._pki.ca_cert_path, self._pki.client_cert_path, self._pki.client_key_path
            )
        identifier = f"muster-controller-{uuid.uuid4().hex[:8]}"
        intake: MqttIntake | None = None
        try:
            async with aiomqtt.Client(
                address.host,
                address.port,
                identifier=identifier,
                tls_context=tls,
                keepalive=30,
            ) as client:
                if self._settings.telemetry_transport == "mqtt":
                    intake = MqttIntake(self._on_publish, self._clock)
                    await intake.subscribe(
                        address.host,
                        address.port,
                        tls,
                        f"{identifier}-telemetry",
                        KEEPALIVE_S,
                        [
                            (topics.wildcard(kind, self._settings.mqtt_shared_group), qos)
                            for kind, qos in SUBSCRIBE_QOS.items()
                        ],
                    )
                self.client = client
                self.connected.set()
                log.info("telemetry consumer connected", broker=self._settings.mqtt_url)
                # Each raises why its connection ended; the first to end ends both.
                connections = [self._until_lost(client)]
                if intake is not None:
                    connections.append(intake.closed())
                await first_to_end(*connections)
                raise MqttIntakeError("the broker connection ended")
        finally:
            if intake is not None:
                intake.close()
            self.client = None
            self.connected.clear()

    @staticmethod
    async def _until_lost(client: aiomqtt.Client) -> None:
        # aiomqtt raises when the connection drops; should the stream ever end quietly, that is
        # a lost connection too.
        async for _ in client.messages:
            pass
        raise aiomqtt.MqttError("the broker ended the message stream")

    def _on_publish(self, topic: str, payload: bytes) -> None:
        parsed = topics.parse(topic)
        if parsed is not None:
            self.receive(parsed[0], parsed[1], payload)

    async def flush_forever(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self._refresh_revoked_if_due)
            except Exception:
                # The database away: keep the last set; the store still checks every batch.
                log.warning("revoked devices not refreshed; keeping the cached set")
            if await self.flush():
                self._flush_backoff.reset()
                await self._clock.sleep(self._settings.telemetry_flush_s)
            else:
                await self._clock.sleep(self._flush_backoff.next_delay())

    async def flush(self) -> bool:
        """Apply what is buffered, in one transaction; False (and kept) when that failed."""
        callbacks, self._after_flush = self._after_flush, []
        if not len(self._buffer):
            self._buffer.report_drops()
            await self._run_after_flush(callbacks)
            return True
        batch = self._buffer.take()
        try:
            self.messages_applied += await asyncio.to_thread(self._apply_isolating, batch)
        except asyncio.CancelledError:
            self._buffer.done(batch)  # the worker thread still applies it
            raise  # the callbacks do not run: their messages are redelivered
        except Exception:
            log.exception("telemetry batch failed; it will be retried", size=len(batch))
            self._buffer.give_back(batch)
            self._after_flush[:0] = callbacks
            return False
        self._buffer.done(batch)
        await self._run_after_flush(callbacks)
        return True

    def _apply_isolating(self, batch: list[Message]) -> int:
        """Apply ``batch``; when it fails for what it holds rather than for the database being
        away, apply its halves, down to the one message that fails, which is refused: logged,
        counted and never retried, so one device's message the store cannot take does not stop
        everyone's telemetry at every flush. The database away still fails the whole batch,
        which is kept for the next flush."""
        try:
            return self._store.apply(batch)
        except DATABASE_AWAY:
            raise
        except Exception:
            if len(batch) == 1:
                device_id, kind, payload = batch[0]
                self.messages_refused += 1
                log.exception(
                    "telemetry message refused: the store cannot apply it",
                    device_id=device_id,
                    kind=kind,
                    size=len(payload),
                    refused_total=self.messages_refused,
                )
                return 0
            middle = len(batch) // 2
            return self._apply_isolating(batch[:middle]) + self._apply_isolating(batch[middle:])

    @staticmethod
    async def _run_after_flush(callbacks: list[Callable[[], Awaitable[None]]]) -> None:
        for callback in callbacks:
            try:
                await callback()
            except Exception:
                # An ack that did not reach the broker: the message comes again, and applying it
                # twice is harmless for everything but an event (stored twice, at-least-once).
                log.warning("telemetry after-flush callback failed", exc_info=True)


__all__ = [
    "SUBSCRIBE_QOS",
    "DeviceStateStore",
    "Message",
    "TelemetryConsumer",
]
