"""Telemetry consumer: keeps each device's state from its retained status (with the last will),
heartbeats and events. Messages are applied in small batches, one transaction per batch, so one
process keeps up with a national fleet's heartbeats."""

from __future__ import annotations

import asyncio
import random
import uuid

import aiomqtt
import structlog

from controller.device_state import DeviceStateStore, Message
from controller.settings import ControllerSettings
from muster import topics
from muster.mqtt import client_tls_context, parse_broker_url
from provisioning.pki_store import ControllerPki

log = structlog.get_logger(__name__)


class TelemetryConsumer:
    def __init__(
        self,
        settings: ControllerSettings,
        store: DeviceStateStore,
        pki: ControllerPki | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._pki = pki
        self._pending: list[Message] = []
        self.connected = asyncio.Event()
        self.messages_applied = 0
        self.messages_received = 0
        # The live broker connection, for whoever publishes through it (the command sender).
        self.client: aiomqtt.Client | None = None

    async def run(self) -> None:
        """Consume until cancelled, reconnecting with jittered backoff when the broker goes away."""
        address = parse_broker_url(self._settings.mqtt_url)
        tls = None
        if address.tls and self._pki is not None:  # mqtts://: TLS with our client certificate
            tls = client_tls_context(
                self._pki.ca_cert_path, self._pki.client_cert_path, self._pki.client_key_path
            )
        backoff = 0.5
        async with asyncio.TaskGroup() as group:
            group.create_task(self._flush_forever(), name="telemetry-flush")
            while True:
                try:
                    async with aiomqtt.Client(
                        address.host,
                        address.port,
                        identifier=f"muster-controller-{uuid.uuid4().hex[:8]}",
                        tls_context=tls,
                        keepalive=30,
                    ) as client:
                        for kind in ("status", "telemetry", "event", "ack"):
                            await client.subscribe(
                                topics.wildcard(kind, self._settings.mqtt_shared_group), qos=1
                            )
                        self.client = client
                        self.connected.set()
                        log.info("telemetry consumer connected", broker=self._settings.mqtt_url)
                        backoff = 0.5
                        async for message in client.messages:
                            parsed = topics.parse(str(message.topic))
                            if parsed is not None and isinstance(message.payload, bytes):
                                self.messages_received += 1
                                self._pending.append((parsed[0], parsed[1], message.payload))
                except aiomqtt.MqttError as exc:
                    self.client = None
                    self.connected.clear()
                    log.warning(
                        "broker unreachable; retrying", error=str(exc), retry_in_s=round(backoff, 1)
                    )
                    await asyncio.sleep(backoff * (0.5 + random.random()))
                    backoff = min(backoff * 2, 30.0)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.telemetry_flush_s)
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            self.messages_applied += await asyncio.to_thread(self._store.apply, batch)
        except Exception:
            log.exception("telemetry batch failed; it will be retried", size=len(batch))
            self._pending[:0] = batch


__all__ = ["DeviceStateStore", "Message", "TelemetryConsumer"]
