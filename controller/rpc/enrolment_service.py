"""``Enrollment`` on the server-TLS port: an enrolment code and a device-made key become a
certificate, a licence and the CA bundle (the work is ``controller.devices.enrolment``)."""

from __future__ import annotations

import asyncio

import grpc
import structlog

from controller.devices.enrolment import Enroller
from muster.errors import EnrollmentError
from muster.v1 import enrollment_pb2, enrollment_pb2_grpc

__all__ = ["EnrollmentService"]

log = structlog.get_logger(__name__)


class EnrollmentService(enrollment_pb2_grpc.EnrollmentServicer):
    def __init__(self, enroller: Enroller) -> None:
        self._enroller = enroller

    async def Enroll(
        self,
        request: enrollment_pb2.EnrollRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> enrollment_pb2.EnrollResponse:
        try:
            response = await asyncio.to_thread(self._enroller.enroll, request)
        except EnrollmentError as exc:
            log.warning("enrolment refused", reason=str(exc))
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        log.info("device enrolled", device_id=response.device_id, township=response.township_code)
        return response
