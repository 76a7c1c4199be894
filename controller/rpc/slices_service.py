"""The ``Slices`` gRPC service on the mutual-TLS port: a device pulls its township's slice.

The township is the device's own, looked up by the certificate it connected with; a request
naming another township is refused and logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import grpc
import structlog
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Device
from controller.records.slices import SlicePlan, plan_slice, slice_chunks
from controller.rpc.admission import DeviceGate
from muster.clock import Clock
from muster.crypto import DevicePublicKey, LicenceAuthorityKey
from muster.crypto.pki import device_public_key, load_certificate
from muster.v1 import data_pb2, data_pb2_grpc

__all__ = ["SlicesService"]

log = structlog.get_logger(__name__)


class SlicesService(data_pb2_grpc.SlicesServicer):
    def __init__(
        self,
        gate: DeviceGate,
        sessions: sessionmaker[Session],
        signing_key: LicenceAuthorityKey,
        clock: Clock,
    ) -> None:
        self._gate = gate
        self._sessions = sessions
        self._signing_key = signing_key
        self._clock = clock

    def _prepare(
        self, device_id: str, request: data_pb2.SliceRequest, now: datetime
    ) -> tuple[str, DevicePublicKey, SlicePlan]:
        with self._sessions() as session:
            device = session.get(Device, device_id)
            assert device is not None  # the gate admitted it
            key = device_public_key(load_certificate(device.certificate_pem.encode()))
            plan = plan_slice(
                session,
                device.township_code,
                have_version=request.have_version,
                resume_version=request.resume_version,
                resume_after=request.resume_after,
                now=now,
            )
            return device.township_code, key, plan

    async def Pull(
        self,
        request: data_pb2.SliceRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> AsyncIterator[data_pb2.SliceChunk]:
        device_id = await self._gate.admit(context)
        now = self._clock.now()
        township, key, plan = await asyncio.to_thread(self._prepare, device_id, request, now)
        if request.township_code and request.township_code != township:
            log.warning(
                "slice of another township refused",
                device_id=device_id,
                asked=request.township_code,
                own=township,
            )
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"设备只能获取本乡镇 {township} 的初始数据，不能获取 {request.township_code}",
            )
        chunks = slice_chunks(
            self._sessions,
            plan,
            device_id=device_id,
            device_key=key,
            signing_key=self._signing_key,
            now=now,
        )
        sent = 0
        while True:
            chunk = await asyncio.to_thread(next, chunks, None)
            if chunk is None:
                break
            sent += chunk.data.people if chunk.HasField("data") else 0
            yield chunk
        log.info(
            "slice sent",
            device_id=device_id,
            township=township,
            base=plan.base_version,
            version=plan.version,
            people=sent,
            revoked=plan.revoked,
        )
