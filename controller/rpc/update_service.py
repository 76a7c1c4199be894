"""``Updates`` on the mutual-TLS port: a device is offered the release its rollout wave assigns
it, downloads the parts from any offset (resuming after an interruption) and reports each step.
A device downloads only a release it is part of a rollout for; every report may close a wave or
pause a failing rollout (controller/releases/rollouts.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Release, Rollout, RolloutDevice
from controller.releases.keys import load_release_keys
from controller.releases.rollouts import (
    advance_rollouts,
    offer_entry,
    record_report,
)
from controller.releases.store import part_path
from controller.releases.update_windows import waits_for_working_hours
from controller.rpc.admission import DeviceGate
from muster.clock import Clock
from muster.releases import Manifest, ReleaseError, verify_manifest
from muster.v1 import updates_pb2, updates_pb2_grpc

__all__ = ["CHUNK_BYTES", "UpdatesService"]

log = structlog.get_logger(__name__)

CHUNK_BYTES = 256 * 1024
_ADVANCE_EVERY_S = 5.0
_STATES = {
    updates_pb2.UPDATE_STATE_DOWNLOADING: "downloading",
    updates_pb2.UPDATE_STATE_VERIFIED: "verified",
    updates_pb2.UPDATE_STATE_SWITCHED: "switched",
    updates_pb2.UPDATE_STATE_HEALTHY: "healthy",
    updates_pb2.UPDATE_STATE_ROLLED_BACK: "rolled_back",
    updates_pb2.UPDATE_STATE_REFUSED: "refused",
    updates_pb2.UPDATE_STATE_DEFERRED: "deferred",
}


class UpdatesService(updates_pb2_grpc.UpdatesServicer):
    def __init__(
        self,
        gate: DeviceGate,
        sessions: sessionmaker[Session],
        data_dir: Path,
        pki_dir: Path,
        clock: Clock,
    ) -> None:
        self._gate = gate
        self._sessions = sessions
        self._data_dir = data_dir
        self._pki_dir = pki_dir
        self._clock = clock
        self._last_advance = float("-inf")

    def _keys(self) -> list[updates_pb2.ReleaseKey]:
        # Read each time: a rotation (a new key file) reaches devices without a restart.
        return [
            updates_pb2.ReleaseKey(
                key_id=e.key_id,
                public_key=e.public,
                endorsed_by=e.endorsed_by,
                endorsement=e.endorsement,
            )
            for e in load_release_keys(self._pki_dir).entries
        ]

    def _advance(self, force: bool = False) -> None:
        now = self._clock.monotonic()
        if not force and now - self._last_advance < _ADVANCE_EVERY_S:
            return
        self._last_advance = now
        with self._sessions.begin() as session:
            for rollout_id, change in advance_rollouts(session, self._clock.now()):
                log.info("rollout moved", rollout_id=rollout_id, change=change)

    def _offer(self, device_id: str) -> updates_pb2.OfferResponse:
        self._advance()
        with self._sessions() as session:
            found = offer_entry(session, device_id, self._clock.now())
            if found is None:
                return updates_pb2.OfferResponse(available=False, reason="没有分配给本设备的更新")
            rollout, release, entry = found
            busy = waits_for_working_hours(session, rollout, device_id, self._clock.now())
            if busy is not None:
                return updates_pb2.OfferResponse(
                    available=False,
                    reason=f"工作时间 {busy.text()} 内不更新，结束后再提供 (inside working hours)",
                )
            return updates_pb2.OfferResponse(
                available=True,
                rollout_id=rollout.id,
                manifest=release.manifest,
                signature=release.signature,
                release_keys=self._keys(),
                health_window_s=rollout.health_window_s,
                attempt=entry.attempts,
            )

    async def Offer(
        self, request: updates_pb2.OfferRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> updates_pb2.OfferResponse:
        device_id = await self._gate.admit(context)
        return await asyncio.to_thread(self._offer, device_id)

    def _manifest_for(self, device_id: str, version: str) -> Manifest | None:
        with self._sessions() as session:
            release = session.get(Release, version[:32])
            if release is None:
                return None
            assigned = session.scalar(
                select(RolloutDevice.device_id)
                .join(Rollout, Rollout.id == RolloutDevice.rollout_id)
                .where(RolloutDevice.device_id == device_id, Rollout.version == release.version)
            )
            if assigned is None:
                return None
            trusted = load_release_keys(self._pki_dir).trusted()
            return verify_manifest(release.manifest, release.signature, trusted)

    async def Download(
        self,
        request: updates_pb2.DownloadRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> AsyncIterator[updates_pb2.DownloadChunk]:
        device_id = await self._gate.admit(context)
        manifest = await asyncio.to_thread(self._manifest_for, device_id, request.version)
        if manifest is None:
            log.warning("download of a release not offered", device_id=device_id)
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"版本 {request.version[:32]!r} 没有分配给设备 {device_id} (release not offered)",
            )
        try:
            part = manifest.part(request.part)
        except ReleaseError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        if request.offset > part.size:
            await context.abort(
                grpc.StatusCode.OUT_OF_RANGE,
                f"偏移 {request.offset} 超过部件 {part.name} 的大小 {part.size} (offset past the end)",
            )
        path = part_path(self._data_dir, manifest.version, part.name)
        offset = request.offset
        with path.open("rb") as fh:
            fh.seek(offset)
            while offset < part.size:
                data = await asyncio.to_thread(fh.read, min(CHUNK_BYTES, part.size - offset))
                if not data:
                    break
                yield updates_pb2.DownloadChunk(offset=offset, data=data)
                offset += len(data)

    def _report(self, device_id: str, request: updates_pb2.UpdateReport, state: str) -> None:
        with self._sessions.begin() as session:
            record_report(
                session,
                device_id,
                rollout_id=request.rollout_id,
                version=request.version,
                state=state,
                reason=request.reason,
                running_version=request.running_version,
                now=self._clock.now(),
            )
        self._advance(force=state in ("healthy", "rolled_back", "refused"))

    async def Report(
        self, request: updates_pb2.UpdateReport, context: grpc.aio.ServicerContext[object, object]
    ) -> updates_pb2.UpdateReportAck:
        device_id = await self._gate.admit(context)
        state = _STATES.get(request.state)
        if state is None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"未知的更新状态 {request.state} (unknown state)"
            )
        log.info("update step reported", device_id=device_id, state=state, reason=request.reason)
        await asyncio.to_thread(self._report, device_id, request, state)
        return updates_pb2.UpdateReportAck()
