"""Slice sync over gRPC (mutual TLS): pull the township's initial data on enrolment, then deltas
whenever the controller's Health says the version moved, and at least every ``every_s``.

A thin pump around ``muster.slices.SliceReader``: read a chunk, feed it, apply the events to the
``SliceStore``. A dropped stream resumes after the last entry applied. A withdrawn or expired
slice is wiped.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import grpc
import structlog

from edge.identity import IdentityStore
from edge.slice_store import SliceStore
from edge.uplink.data import _CHANNEL_OPTIONS
from muster.backoff import Backoff
from muster.clock import Clock, wait_for_event
from muster.crypto import licence_public_from_bytes
from muster.slices import (
    ChunkReceived,
    ManifestAccepted,
    SliceComplete,
    SliceProtocolError,
    SliceReader,
    SliceWithdrawn,
)
from muster.v1 import data_pb2, data_pb2_grpc

log = structlog.get_logger(__name__)


class SliceSync:
    def __init__(
        self,
        store: IdentityStore,
        slices: SliceStore,
        *,
        every_s: float = 300.0,
        on_event: Callable[[str], None] = lambda message: None,
        clock: Clock,
    ) -> None:
        self._store = store
        self._slices = slices
        self._every = every_s
        self._on_event = on_event
        self._clock = clock
        self._wake = asyncio.Event()
        self.synced = asyncio.Event()
        self.last_error = ""

    def observe_health(self, response: data_pb2.HealthResponse) -> None:
        """Called with each Health answer: pull when the township's version moved."""
        if response.slice_revoked or response.slice_version != self._slices.version:
            self._wake.set()

    def request_sync(self) -> None:
        self._wake.set()

    def _channel(self) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self._store.ca_path.read_bytes(),
            private_key=self._store.key_path.read_bytes(),
            certificate_chain=self._store.cert_path.read_bytes(),
        )
        return grpc.aio.secure_channel(
            self._store.enrolment().data_endpoint, credentials, options=_CHANNEL_OPTIONS
        )

    async def run(self) -> None:
        device_id = self._store.enrolment().device_id
        backoff = Backoff(maximum=60.0, rng=random.Random(f"{device_id}:slices"))
        while True:
            if await asyncio.to_thread(self._slices.expired, self._clock.now()):
                await asyncio.to_thread(self._slices.wipe, "expired")
                self._on_event("初始数据已过期，已从本机清除")
            try:
                async with self._channel() as channel:
                    await self.pull_once(channel)
                backoff.reset()
                self.last_error = ""
                delay = self._every
            except grpc.aio.AioRpcError as error:
                self.last_error = error.details() or error.code().name
                delay = backoff.next_delay()
                log.warning(
                    "slice sync failed; will resume",
                    code=error.code().name,
                    details=error.details(),
                    retry_in_s=round(delay, 1),
                )
            except SliceProtocolError as exc:
                self.last_error = str(exc)
                delay = backoff.next_delay()
                log.error("slice refused", error=str(exc), retry_in_s=round(delay, 1))
                self._on_event(f"初始数据校验失败：{exc}")
            self._wake.clear()
            await wait_for_event(self._clock, self._wake, delay)

    async def pull_once(self, channel: grpc.aio.Channel) -> int:
        """One transfer; returns the version held afterwards."""
        enrolment = self._store.enrolment()
        reader = SliceReader(
            device_id=enrolment.device_id,
            township_code=enrolment.township_code,
            device_key=self._store.device_key(),
            authority_key=licence_public_from_bytes(bytes.fromhex(enrolment.licence_authority_key)),
        )
        pending, after = await asyncio.to_thread(self._slices.resume_point)
        request = data_pb2.SliceRequest(
            have_version=self._slices.version,
            township_code=enrolment.township_code,
            resume_version=pending,
            resume_after=after,
        )
        stub = data_pb2_grpc.SlicesStub(channel)
        applied = 0
        async for chunk in stub.Pull(request, timeout=600):
            for event in reader.feed(chunk):
                if isinstance(event, ManifestAccepted):
                    if not event.manifest.revoked:
                        await asyncio.to_thread(self._slices.begin, event.manifest)
                elif isinstance(event, ChunkReceived):
                    await asyncio.to_thread(self._slices.apply, event.people)
                    applied += len(event.people)
                elif isinstance(event, SliceComplete):
                    await asyncio.to_thread(self._slices.complete, event.version)
                    log.info("slice synced", version=event.version, entries=applied)
                    self.synced.set()
                elif isinstance(event, SliceWithdrawn):
                    if self._slices.version or self._slices.count():
                        await asyncio.to_thread(self._slices.wipe, "revoked")
                        self._on_event("中心已撤回本乡镇初始数据，已从本机清除")
                    self.synced.set()
        if not reader.done:
            raise SliceProtocolError("切片传输未完整结束，将从中断处继续")
        return self._slices.version
