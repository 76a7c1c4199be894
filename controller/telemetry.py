"""Telemetry consumer: keeps each device's state from its retained status (with the last will),
heartbeats and events. Messages are applied in small batches, one transaction per batch, so one
process keeps up with a national fleet's heartbeats."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import structlog
from google.protobuf.message import DecodeError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.commands import apply_ack
from controller.db.models import Device, DeviceEvent
from controller.fleet_rules import OFFLINE, ONLINE
from controller.fleet_state import record_state
from controller.settings import ControllerSettings
from muster import topics
from muster.mqtt import client_tls_context, parse_broker_url
from muster.v1 import device_pb2
from provisioning.pki_store import ControllerPki

log = structlog.get_logger(__name__)

Message = tuple[str, str, bytes]  # device id, kind, payload


def _ts(message: Any, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    value: datetime = getattr(message, field).ToDatetime(tzinfo=UTC)
    return value


class DeviceStateStore:
    """Applies decoded telemetry to the devices table."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._clock = clock

    def apply(self, batch: list[Message]) -> int:
        """Apply a batch; returns how many messages changed something."""
        now = self._clock()
        ids = {device_id for device_id, _, _ in batch}
        applied = 0
        with self._sessions.begin() as session:
            devices = {d.id: d for d in session.scalars(select(Device).where(Device.id.in_(ids)))}
            for device_id, kind, payload in batch:
                device = devices.get(device_id)
                if device is None:
                    continue  # not enrolled here (yet): nothing to keep state on
                try:
                    applied += self._apply_one(session, device, kind, payload, now)
                except DecodeError:
                    log.warning("undecodable telemetry", device_id=device_id, kind=kind)
        return applied

    def _apply_one(
        self, session: Session, device: Device, kind: str, payload: bytes, now: datetime
    ) -> bool:
        if kind == "status":
            status = device_pb2.DeviceStatus.FromString(payload)
            since = _ts(status, "since") or now
            current = (
                device.status_since.replace(tzinfo=UTC)
                if device.status_since and device.status_since.tzinfo is None
                else device.status_since
            )
            if current is not None and since < current:
                return False  # an older retained status than what we know
            device.online = status.state == device_pb2.DeviceStatus.STATE_ONLINE
            device.status_since = since
            if device.online:
                device.last_seen = now
                record_state(session, device, ONLINE, "已连接", since)
            else:
                reason = "设备正常关机" if status.graceful else "连接中断（遗嘱消息）"
                record_state(session, device, OFFLINE, reason, since)
            return True
        if kind == "telemetry":
            beat = device_pb2.Heartbeat.FromString(payload)
            if beat.sequence and beat.sequence <= device.heartbeat_sequence and device.online:
                return False  # duplicate delivery (QoS 1 may deliver twice)
            device.heartbeat_sequence = beat.sequence
            device.last_seen = now
            if not device.online:
                device.online = True
                device.status_since = now
            if device.state != ONLINE:
                record_state(session, device, ONLINE, "心跳恢复", now)
            if beat.outbox_depth > device.outbox_depth:
                device.backlog_rising += 1
            elif beat.outbox_depth < device.outbox_depth or beat.outbox_depth == 0:
                device.backlog_rising = 0
            device.outbox_depth = beat.outbox_depth
            device.licence_days_left = beat.licence_days_left
            device.collection_allowed = beat.collection_allowed
            device.collection_refusal = beat.collection_refusal
            device.clock_skew_s = beat.clock_skew_s
            device.software_version = beat.software_version or device.software_version
            device.last_heartbeat = {
                "uptime_s": beat.uptime_s,
                "records_sealed": beat.records_sealed,
                "records_acked": beat.records_acked,
                "oldest_unsent_age_s": beat.oldest_unsent_age_s,
                "disk_free_bytes": beat.disk_free_bytes,
                "reader": device_pb2.ComponentState.Name(beat.reader),
                "camera": device_pb2.ComponentState.Name(beat.camera),
                "sent_at": (_ts(beat, "sent_at") or now).isoformat(),
            }
            return True
        if kind == "event":
            event = device_pb2.Event.FromString(payload)
            session.add(
                DeviceEvent(
                    device_id=device.id,
                    at=_ts(event, "at") or now,
                    kind=device_pb2.Event.Kind.Name(event.kind),
                    message=event.message,
                    details=dict(event.details),
                )
            )
            return True
        if kind == "ack":
            return apply_ack(session, device.id, device_pb2.CommandAck.FromString(payload), now)
        return False


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
