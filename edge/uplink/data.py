"""The data link over gRPC with mutual TLS: uploads the outbox and keeps clock, upload keys and
revocation in step with the controller.

Upload protocol: one long-lived bidirectional stream. Records go out in outbox order with at most
``window`` unacknowledged; each ack is written to the outbox before the record is forgotten. A
broken stream is simply reopened and everything not yet acked is sent again; the controller
recognises resends by record id and content hash.

A record's sealed attachment chunks go up just before it, outside the window (HTTP/2 flow
control paces them). When the controller answers ``STATUS_INCOMPLETE`` (it lacks a chunk), the
stream is closed once the acks in hand are written and reopened, which sends every unacked record
and its chunks again.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, timedelta

import grpc
import structlog

from edge.identity import IdentityStore
from edge.outbox import Outbox
from muster.backoff import Backoff
from muster.clock import Clock, wait_for_event
from muster.tasks import first_to_end
from muster.v1 import data_pb2, data_pb2_grpc

log = structlog.get_logger(__name__)

_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 30_000),
]


def device_channel(store: IdentityStore) -> grpc.aio.Channel:
    """The mutual-TLS channel to the controller's data port, opened as the daemon opens it
    (the technician's self-test opens this same one, so its pass speaks for the daemon)."""
    enrolment = store.enrolment()
    credentials = grpc.ssl_channel_credentials(
        root_certificates=store.ca_path.read_bytes(),
        private_key=store.key_path.read_bytes(),
        certificate_chain=store.cert_path.read_bytes(),
    )
    return grpc.aio.secure_channel(enrolment.data_endpoint, credentials, options=_CHANNEL_OPTIONS)


async def check_health(
    store: IdentityStore, *, clock: Clock, timeout_s: float
) -> tuple[data_pb2.HealthResponse, timedelta]:
    """One Health call on :func:`device_channel`: the answer and the round trip. Raises
    ``grpc.aio.AioRpcError`` as the daemon's own health call does."""
    async with device_channel(store) as channel:
        sent = clock.now()
        response: data_pb2.HealthResponse = await data_pb2_grpc.DeviceStub(channel).Health(
            data_pb2.HealthRequest(), timeout=timeout_s
        )
        return response, clock.now() - sent


class DataLink:
    def __init__(
        self,
        store: IdentityStore,
        outbox: Outbox,
        *,
        window: int = 256,
        batch: int = 64,
        health_every_s: float = 600.0,
        on_revoked: Callable[[], None] = lambda: None,
        on_keys: Callable[[dict[int, bytes]], None] = lambda keys: None,
        on_rejected: Callable[[data_pb2.RecordAck], None] = lambda ack: None,
        health_request: Callable[[], data_pb2.HealthRequest] = data_pb2.HealthRequest,
        after_health: Callable[[grpc.aio.Channel, data_pb2.HealthResponse], Awaitable[None]]
        | None = None,
        clock: Clock,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._window = window
        self._batch = max(1, min(batch, window))
        self._health_every = health_every_s
        self._on_revoked = on_revoked
        self._on_keys = on_keys
        self._on_rejected = on_rejected
        self._health_request = health_request
        self._after_health = after_health
        self._clock = clock
        self._new_records = asyncio.Event()
        self.clock_skew_s = 0.0
        self.connected = False
        self.acks_received = 0

    def notify_new_record(self) -> None:
        self._new_records.set()

    def _channel(self) -> grpc.aio.Channel:
        return device_channel(self._store)

    async def run(self) -> None:
        device_id = self._store.enrolment().device_id
        # Seeded by the device id: one device replays, a township's devices spread out.
        backoff = Backoff(maximum=60.0, rng=random.Random(f"{device_id}:data"))
        while True:
            async with self._channel() as channel:
                try:
                    await self.health(channel)
                    backoff.reset()
                    await self._session(channel, backoff)
                except grpc.aio.AioRpcError as error:
                    self.connected = False
                    log.warning(
                        "controller unreachable; records stay in the outbox",
                        code=error.code().name,
                        details=error.details(),
                    )
            await self._clock.sleep(backoff.next_delay())

    async def _session(self, channel: grpc.aio.Channel, backoff: Backoff) -> None:
        """Upload and refresh health until either fails or the controller ends the stream."""
        # The RPC error that ended the session is raised.
        await first_to_end(self._health_forever(channel), self._upload_forever(channel, backoff))

    async def health(self, channel: grpc.aio.Channel) -> None:
        stub = data_pb2_grpc.DeviceStub(channel)
        sent = self._clock.now()
        response: data_pb2.HealthResponse = await stub.Health(self._health_request(), timeout=15)
        received = self._clock.now()
        midpoint = sent + (received - sent) / 2
        self.clock_skew_s = (midpoint - response.server_time.ToDatetime(tzinfo=UTC)).total_seconds()
        self.connected = True
        if response.revoked:
            self._on_revoked()
        self._on_keys({k.version: k.x25519_public_key for k in response.upload_keys})
        if self._after_health is not None:
            await self._after_health(channel, response)

    async def _health_forever(self, channel: grpc.aio.Channel) -> None:
        while True:
            await self._clock.sleep(self._health_every)
            await self.health(channel)

    async def _upload_forever(self, channel: grpc.aio.Channel, backoff: Backoff) -> None:
        stub = data_pb2_grpc.UploadsStub(channel)
        in_flight = asyncio.Semaphore(self._window)
        outstanding = 0
        last_seq = 0

        async def requests() -> AsyncIterator[data_pb2.UploadRequest]:
            nonlocal last_seq, outstanding
            while True:
                batch = await asyncio.to_thread(self._outbox.pending, last_seq, self._batch)
                if not batch:
                    self._new_records.clear()
                    await wait_for_event(self._clock, self._new_records, 5.0)
                    continue
                for _ in batch:
                    await in_flight.acquire()
                last_seq = batch[-1].seq
                outstanding += len(batch)
                for item in batch:
                    for chunk in item.chunks:
                        yield data_pb2.UploadRequest(
                            chunk=data_pb2.AttachmentChunk.FromString(chunk)
                        )
                # The outbox holds the serialised SealedRecord; it goes out as it is.
                yield data_pb2.UploadRequest(
                    batch=data_pb2.RecordBatch(
                        records=[data_pb2.SealedRecord.FromString(item.sealed) for item in batch]
                    )
                )

        call = stub.Upload(requests())
        acks: list[data_pb2.RecordAck] = []
        async for response in call:
            received = list(response.acks.acks) if response.HasField("acks") else [response.ack]
            acks.extend(received)
            outstanding -= len(received)
            for _ in received:
                in_flight.release()
            incomplete = [a for a in received if a.status == data_pb2.RecordAck.STATUS_INCOMPLETE]
            # Write acks in groups: one fsync per group, not per record. A crash before the
            # write only means those records are sent again and acknowledged as duplicates.
            if len(acks) >= 64 or outstanding == 0 or incomplete:
                await self._commit_acks(acks)
                acks = []
                backoff.reset()
            if incomplete:
                log.warning(
                    "controller lacks attachments; sending the records again",
                    records=len(incomplete),
                    record_id=incomplete[0].record_id,
                )
                call.cancel()
                return
        if acks:
            await self._commit_acks(acks)

    async def _commit_acks(self, acks: list[data_pb2.RecordAck]) -> None:
        await asyncio.to_thread(self._outbox.apply_acks, acks)
        self.acks_received += len(acks)
        for ack in acks:
            if ack.status == data_pb2.RecordAck.STATUS_REJECTED:
                self._on_rejected(ack)
