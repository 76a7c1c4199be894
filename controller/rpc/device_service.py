"""``Device`` on the mutual-TLS port: Health (upload keys, clerks, slice and returned records, the
trust bundle, the township's tasks from the centre and the clerks' answers to them) and
RenewLicence. A revoked device is answered "revoked" and nothing else."""

from __future__ import annotations

import asyncio

import grpc
import structlog
from sqlalchemy.orm import Session, sessionmaker

from controller.accounts.clerks import clerk_messages
from controller.devices.enrolment import upload_key_messages
from controller.devices.licences import LicenceDesk, reported_fingerprint
from controller.records.review import returned_messages
from controller.records.slices import device_slice_status
from controller.records.tasks import answer_tasks, task_messages
from controller.rpc.admission import DeviceGate, peer_identity
from muster.clock import Clock
from muster.errors import LicenceError
from muster.licence import FINGERPRINT_COMPONENTS
from muster.v1 import data_pb2, data_pb2_grpc

__all__ = ["DeviceService"]

log = structlog.get_logger(__name__)

# A fingerprint component is a salted hash in hex.
_MAX_FINGERPRINT_COMPONENT = 128


def _fingerprint_problem(
    request: data_pb2.HealthRequest | data_pb2.RenewLicenceRequest,
) -> str | None:
    for component in FINGERPRINT_COMPONENTS:
        if len(getattr(request.fingerprint, component)) > _MAX_FINGERPRINT_COMPONENT:
            return (
                f"硬件指纹字段 {component} 过长 (fingerprint.{component} longer than "
                f"{_MAX_FINGERPRINT_COMPONENT} characters)"
            )
    return None


class DeviceService(data_pb2_grpc.DeviceServicer):
    def __init__(
        self,
        gate: DeviceGate,
        sessions: sessionmaker[Session],
        clock: Clock,
        *,
        licences: LicenceDesk | None = None,
        trust_bundle_pem: bytes = b"",
    ) -> None:
        self._gate = gate
        self._sessions = sessions
        self._clock = clock
        self._licences = licences
        self._trust_bundle = trust_bundle_pem

    async def Health(
        self, request: data_pb2.HealthRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> data_pb2.HealthResponse:
        device_id, serial = peer_identity(context)
        known, revoked = await asyncio.to_thread(self._gate.lookup, device_id, serial)
        if not known:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"设备 {device_id} 的证书未登记")
        now = self._clock.now()
        if revoked:
            # Says "revoked" and nothing else: no clerks' password hashes, no returned records
            # (ID numbers, names), no upload keys, no trust bundle. The device's licence guard
            # stops collecting for good when it reads this.
            log.warning("health of a revoked device answered 'revoked' only", device_id=device_id)
            answer = data_pb2.HealthResponse(revoked=True)
            answer.server_time.FromDatetime(now)
            return answer
        problem = _fingerprint_problem(request)
        if problem is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        with self._sessions() as session:
            keys = upload_key_messages(session, now)
            slice_version, slice_revoked = device_slice_status(session, device_id, now)
            clerks = clerk_messages(session, device_id)
            returned = returned_messages(session, device_id)
            results = answer_tasks(session, device_id, request.task_answers, now)
            if request.task_answers:
                session.commit()
            tasks = task_messages(session, device_id)
        if self._licences is not None and request.HasField("fingerprint"):
            await asyncio.to_thread(
                self._licences.note_fingerprint, device_id, reported_fingerprint(request)
            )
        response = data_pb2.HealthResponse(
            upload_keys=keys,
            revoked=False,
            trust_bundle_pem=self._trust_bundle,
            slice_version=slice_version,
            slice_revoked=slice_revoked,
            clerks=clerks,
            returned_records=returned,
            tasks=tasks,
            task_answer_results=results,
        )
        response.server_time.FromDatetime(now)
        return response

    async def RenewLicence(
        self,
        request: data_pb2.RenewLicenceRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> data_pb2.RenewLicenceResponse:
        device_id = await self._gate.admit(context)
        if self._licences is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "本中心不办理授权续期")
        desk = self._licences
        problem = _fingerprint_problem(request)
        if problem is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        try:
            blob = await asyncio.to_thread(desk.renew, device_id, reported_fingerprint(request))
        except LicenceError as exc:
            log.warning("licence renewal refused", device_id=device_id, reason=exc.reason)
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{exc.reason}: {exc}")
        log.info("licence renewed", device_id=device_id)
        return data_pb2.RenewLicenceResponse(
            licence=blob, licence_authority_key=desk.authority_public_key
        )
