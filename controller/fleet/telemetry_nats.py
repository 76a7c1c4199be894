"""Telemetry from a NATS cluster, split between controller replicas without MQTT's ``$share``
(``telemetry_transport = "nats"``).

Devices speak MQTT to the cluster's MQTT listener; NATS carries topic ``muster/v1/dev/<id>/<kind>``
as subject ``muster.v1.dev.<id>.<kind>``. Every replica runs one intake, which feeds what it takes
into the replica's ``TelemetryConsumer`` (``receive``): the same buffer, coalescing and store as the
MQTT path, so the rules live in one place.

Why a queue group and a JetStream consumer, rather than topic partitions claimed by leases in the
database: the device topics carry no partition, so a replica claiming a share of devices would
subscribe to each of its devices' subjects one by one (100,000 subscriptions moved on every
takeover), and a lease can only be taken over once it expires, while the cluster notices a dead
replica's connection at once and stops giving it messages. The cost is that a device's messages
are not pinned to one replica; the store already judges every beat by its sequence and every
status by ``telemetry_store.supersedes``, so one that arrives after a newer one changes nothing
the device's next beat would not set right.

* Heartbeats and statuses: a core NATS queue subscription (group ``nats_queue_group``); each
  message goes to one replica of the group. This is at-most-once: a replica that dies loses what
  it held (at most one flush interval of beats), which the next beat of each device supersedes.
  When it dies, the cluster drops its connection and the next beat goes to a live replica.
* Events and acks: QoS 1, they must not be lost. They are also kept in a JetStream stream
  (``nats_stream``, work-queue retention, ``nats_stream_replicas`` copies) read through one durable
  pull consumer that every replica fetches from. A message is acknowledged to JetStream only
  after the batch holding it committed to the database (``TelemetryConsumer.after_flush``); one a
  replica took and never acknowledged (it died, its batch failed) is delivered to a replica again
  after ``nats_ack_wait_s``. So events and acks are at-least-once: an ack applied twice changes
  nothing the second time, an event may be stored twice.

The connection fails over between ``nats_urls`` and resubscribes by itself (nats-py); when it is
closed for good, ``run`` raises and the supervisor starts it again after a backoff.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from typing import Any

import nats
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import api
from nats.js.errors import NotFoundError

from controller.devices.pki_store import ControllerPki
from controller.fleet.telemetry_consumer import TelemetryConsumer
from controller.settings import ControllerSettings
from muster import topics
from muster.errors import ConfigError
from muster.mqtt import client_tls_context

__all__ = [
    "CORE_KINDS",
    "DURABLE",
    "STREAM_KINDS",
    "NatsTelemetryIntake",
    "nats_tls_context",
    "parse_subject",
    "subject_wildcard",
]

log = structlog.get_logger(__name__)

# Superseded by the next message of the same device: at-most-once is enough.
CORE_KINDS: tuple[topics.Kind, ...] = ("status", "telemetry")
# QoS 1 and not superseded: kept in the stream until a replica has stored them.
STREAM_KINDS: tuple[topics.Kind, ...] = ("event", "ack")
DURABLE = "muster-controllers"
FETCH_BATCH = 256
# A fetch waits this long for messages before asking again (and noticing a closed connection).
FETCH_WAIT_S = 1.0
# A message the buffer refused (full until the database catches up) comes back after this.
REFUSED_DELAY_S = 1.0


def subject_wildcard(kind: topics.Kind) -> str:
    """Every device's ``kind`` subject: NATS's mapping of the MQTT wildcard topic."""
    return topics.wildcard(kind).replace("/", ".").replace("+", "*")


def parse_subject(subject: str) -> tuple[str, str] | None:
    """(device id, kind) of a device subject, or None for anything else."""
    if "/" in subject:
        return None  # a '/' here was no MQTT separator: not a device topic
    parsed = topics.parse(subject.replace(".", "/"))
    return parsed if parsed is not None and parsed[0] else None


def nats_tls_context(pki: ControllerPki) -> ssl.SSLContext:
    """TLS with the controller's client certificate, as on the MQTT connection (the cluster maps
    the certificate's subject to the controller's rights)."""
    return client_tls_context(pki.ca_cert_path, pki.client_cert_path, pki.client_key_path)


class NatsTelemetryIntake:
    """One replica's share of the telemetry on a NATS cluster (see the module docstring)."""

    def __init__(
        self,
        settings: ControllerSettings,
        consumer: TelemetryConsumer,
        tls: ssl.SSLContext | None,
        *,
        name: str = "",
    ) -> None:
        if not settings.nats_urls:
            raise ConfigError(
                'telemetry_transport = "nats" needs nats_urls (the cluster\'s client URLs, '
                "e.g. tls://10.0.0.1:4222); set MUSTER_CONTROLLER_NATS_URLS"
            )
        self._settings = settings
        self._consumer = consumer
        self._tls = tls
        self._name = name or f"muster-controller-{uuid.uuid4().hex[:8]}"
        self.connected = asyncio.Event()
        self.taken = {"core": 0, "stream": 0}

    async def run(self) -> None:
        """Connect, subscribe and take messages until the connection is closed for good."""
        closed = asyncio.Event()

        async def on_closed() -> None:
            closed.set()

        async def on_disconnected() -> None:
            self.connected.clear()
            log.warning("telemetry intake lost its NATS server; failing over")

        async def on_reconnected() -> None:
            self.connected.set()
            log.info("telemetry intake reconnected to NATS")

        async def on_error(error: Exception) -> None:
            log.warning("telemetry intake NATS error", error=str(error))

        options: dict[str, Any] = {
            "servers": list(self._settings.nats_urls),
            "name": self._name,
            "connect_timeout": 5,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            "closed_cb": on_closed,
            "disconnected_cb": on_disconnected,
            "reconnected_cb": on_reconnected,
            "error_cb": on_error,
        }
        if self._tls is not None:
            options["tls"] = self._tls
        client: NatsClient = await nats.connect(**options)
        try:
            for kind in CORE_KINDS:
                await client.subscribe(
                    subject_wildcard(kind),
                    queue=self._settings.nats_queue_group,
                    cb=self._on_core,
                    pending_msgs_limit=self._settings.telemetry_buffer_max,
                )
            pull = await self._bind_stream(client)
            self.connected.set()
            log.info("telemetry intake subscribed on NATS", servers=self._settings.nats_urls)
            while not closed.is_set():
                await self._fetch(pull)
            raise ConnectionError("the NATS connection was closed")
        finally:
            self.connected.clear()
            if not client.is_closed:
                await client.close()

    async def _bind_stream(self, client: NatsClient) -> Any:
        settings = self._settings
        js = client.jetstream()
        subjects = [subject_wildcard(kind) for kind in STREAM_KINDS]
        try:
            await js.stream_info(settings.nats_stream)
        except NotFoundError:
            # Every replica may try at once; the same configuration twice is no error.
            await js.add_stream(
                api.StreamConfig(
                    name=settings.nats_stream,
                    subjects=subjects,
                    retention=api.RetentionPolicy.WORK_QUEUE,
                    storage=api.StorageType.FILE,
                    num_replicas=settings.nats_stream_replicas,
                    max_age=7 * 24 * 3600.0,
                )
            )
        await js.add_consumer(
            settings.nats_stream,
            api.ConsumerConfig(
                durable_name=DURABLE,
                ack_policy=api.AckPolicy.EXPLICIT,
                ack_wait=settings.nats_ack_wait_s,
                max_ack_pending=settings.telemetry_buffer_max,
                deliver_policy=api.DeliverPolicy.ALL,
            ),
        )
        return await js.pull_subscribe_bind(durable=DURABLE, stream=settings.nats_stream)

    async def _on_core(self, msg: Msg) -> None:
        parsed = parse_subject(msg.subject)
        if parsed is not None:
            self.taken["core"] += 1
            self._consumer.receive(parsed[0], parsed[1], msg.data)

    async def _fetch(self, pull: Any) -> None:
        try:
            messages: list[Msg] = await pull.fetch(FETCH_BATCH, timeout=FETCH_WAIT_S)
        except TimeoutError:
            # Nothing came. nats-py says so with its own TimeoutError, or, when the wait ran out
            # between its two requests (a busy event loop), with a bare asyncio.TimeoutError:
            # either is "ask again", never a reason to drop the subscriptions.
            return
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError):
            await asyncio.sleep(FETCH_WAIT_S)  # the client is failing over; ask again then
            return
        for msg in messages:
            await self._take(msg)

    async def _take(self, msg: Msg) -> None:
        parsed = parse_subject(msg.subject)
        if parsed is None:
            await msg.term()  # not a device's topic: never ours to store
            return
        device_id, kind = parsed
        self.taken["stream"] += 1
        if self._consumer.receive(device_id, kind, msg.data):
            self._consumer.after_flush(msg.ack)
        elif self._consumer.is_revoked(device_id):
            await msg.ack()  # dropped by rule, counted in messages_from_revoked
        else:
            await msg.nak(delay=REFUSED_DELAY_S)  # the buffer is full: come back later
