"""The controller's gRPC services: Enrollment on the server-TLS port; Uploads and Device on the
mutual-TLS port, where the device id is the verified client certificate's CN and nothing else.

Bad requests get ``INVALID_ARGUMENT`` saying what was wrong, never ``UNKNOWN``: a message that is
not the method's protobuf (``DecodeGuard``), a field over its bound, an upload batch over its
record count. A revoked device gets ``PERMISSION_DENIED`` from Uploads, Slices and RenewLicence,
and from Health an answer that says "revoked" and carries nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import grpc
import structlog
from sqlalchemy.orm import Session, sessionmaker

from controller.clerks import clerk_messages
from controller.device_gate import DeviceGate, peer_identity
from controller.enrollment import Enroller, upload_key_messages
from controller.ingest import Ingestor
from controller.licensing import LicenceDesk, reported_fingerprint
from controller.pki_store import ControllerPki
from controller.review import returned_messages
from controller.settings import ControllerSettings
from controller.slice_service import SlicesService
from controller.slices import device_slice_status
from muster.clock import Clock
from muster.errors import EnrollmentError, LicenceError, MusterError
from muster.licence import FINGERPRINT_COMPONENTS
from muster.v1 import data_pb2, data_pb2_grpc, enrollment_pb2, enrollment_pb2_grpc

log = structlog.get_logger(__name__)

_MAX_MESSAGE = 16 * 1024 * 1024
_SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


# The most records one RecordBatch may carry; a device sends ``upload_batch`` (256) at most.
MAX_BATCH_RECORDS = 1024
# A fingerprint component is a salted hash in hex.
_MAX_FINGERPRINT_COMPONENT = 128


class Undecodable:
    """What the request deserializer hands on instead of raising: the bytes were not the
    method's protobuf. The guarded method answers ``INVALID_ARGUMENT`` with ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


class BadRequest(MusterError):
    """A request on a stream was not the method's protobuf; the stream ends INVALID_ARGUMENT."""


def _decode_refusal(method: str, error: str) -> str:
    return (
        f"请求无法解析，不是 {method} 的 protobuf 消息 (request is not a valid protobuf: {error})"
    )


def _safe_deserializer(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        if deserialize is None:
            return data
        try:
            return deserialize(data)
        except Exception as exc:  # DecodeError, or a UnicodeDecodeError of a string field
            return Undecodable(f"{type(exc).__name__}: {exc}")

    return decode


class DecodeGuard(grpc.aio.ServerInterceptor):
    """Turns a request that does not decode into ``INVALID_ARGUMENT`` saying so; grpc itself
    would answer ``UNKNOWN`` ("Unexpected error") and log a traceback."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler: Any = await continuation(handler_call_details)
        if handler is None:
            return None
        method = str(handler_call_details.method)
        decode = _safe_deserializer(handler.request_deserializer)
        serialize = handler.response_serializer
        if handler.unary_unary is not None:
            unary = handler.unary_unary

            async def unary_unary(request: Any, context: Any) -> Any:
                if isinstance(request, Undecodable):
                    await _refuse_undecodable(context, method, request.error)
                return await unary(request, context)

            return grpc.unary_unary_rpc_method_handler(
                cast(Any, unary_unary), request_deserializer=decode, response_serializer=serialize
            )
        if handler.unary_stream is not None:
            streaming = handler.unary_stream

            async def unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
                if isinstance(request, Undecodable):
                    await _refuse_undecodable(context, method, request.error)
                async for response in streaming(request, context):
                    yield response

            return grpc.unary_stream_rpc_method_handler(
                cast(Any, unary_stream), request_deserializer=decode, response_serializer=serialize
            )
        if handler.stream_stream is not None:
            bidi: Any = handler.stream_stream

            async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
                async for request in requests:
                    if isinstance(request, Undecodable):
                        raise BadRequest(_decode_refusal(method, request.error))
                    yield request

            async def stream_stream(requests: AsyncIterator[Any], context: Any) -> Any:
                async for response in bidi(checked(requests), context):
                    yield response

            return grpc.stream_stream_rpc_method_handler(
                cast(Any, stream_stream), request_deserializer=decode, response_serializer=serialize
            )
        return cast(grpc.RpcMethodHandler[Any, Any], handler)  # stream-unary: none of ours


async def _refuse_undecodable(
    context: grpc.aio.ServicerContext[object, object], method: str, error: str
) -> None:
    log.warning("undecodable request refused", method=method, error=error)
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _decode_refusal(method, error))


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


# Chunks of at most 256 KiB: a turn carries at most 8 MiB of them, so a device sending photos
# takes no longer turns at the ingest worker than one sending bare records.
_CHUNKS_PER_TURN = 32


class IngestTurns:
    """Turns at the ingest worker, shared by every upload stream of this process.

    ``asyncio.Semaphore`` wakes its waiters in arrival order, and a stream takes one turn per
    batch of at most ``upload_batch`` records, so a device with a week's backlog gets one batch
    in, then waits behind every other device that is waiting: round robin, not first come first
    served. ``slots`` turns run at once; the signature and decryption work releases the GIL.
    """

    def __init__(self, slots: int = 2) -> None:
        self._turns = asyncio.Semaphore(slots)

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        async with self._turns:
            yield


def _log_reader_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("upload stream ended by a read error", task=task.get_name(), error=str(error))


class UploadsService(data_pb2_grpc.UploadsServicer):
    def __init__(
        self, gate: DeviceGate, ingestor: Ingestor, batch: int, turns: IngestTurns | None = None
    ) -> None:
        self._gate = gate
        self._ingestor = ingestor
        self._batch = batch
        self._turns = turns or IngestTurns()

    async def Upload(
        self,
        request_iterator: AsyncIterator[data_pb2.UploadRequest],
        context: grpc.aio.ServicerContext[object, object],
    ) -> AsyncIterator[data_pb2.UploadResponse]:
        device_id = await self._gate.admit(context)
        # A bounded queue is the flow control: a device with a week's backlog can have at most
        # two batches in flight here, and HTTP/2 windows hold the rest on the device.
        queue: asyncio.Queue[data_pb2.SealedRecord | data_pb2.AttachmentChunk | None] = (
            asyncio.Queue(maxsize=self._batch * 2)
        )
        batched = False  # a device that sends batches gets its acks in batches
        refusal: list[str] = []  # why the stream is ended INVALID_ARGUMENT, once set

        async def pump() -> None:
            nonlocal batched
            try:
                async for request in request_iterator:
                    if request.HasField("record"):
                        await queue.put(request.record)
                    elif request.HasField("batch"):
                        if len(request.batch.records) > MAX_BATCH_RECORDS:
                            refusal.append(
                                f"一批最多 {MAX_BATCH_RECORDS} 条记录，收到 "
                                f"{len(request.batch.records)} 条 (batch too large)"
                            )
                            return
                        batched = True
                        for record in request.batch.records:
                            await queue.put(record)
                    elif request.HasField("chunk"):
                        await queue.put(request.chunk)
            except BadRequest as exc:
                refusal.append(str(exc))
            finally:
                await queue.put(None)

        # Lives exactly as long as this stream (cancelled below); a failure is logged, not lost.
        reader = asyncio.create_task(pump(), name=f"upload-read-{device_id}")
        reader.add_done_callback(_log_reader_failure)
        try:
            finished = False
            while not finished:
                first = await queue.get()
                if first is None:
                    break
                # Chunks ride with the records after them (at most a batch of records per turn,
                # and a few MiB of chunks); a record's chunks always come before it.
                batch: list[data_pb2.SealedRecord] = []
                chunks: list[data_pb2.AttachmentChunk] = []
                item: data_pb2.SealedRecord | data_pb2.AttachmentChunk | None = first
                while True:
                    if isinstance(item, data_pb2.AttachmentChunk):
                        chunks.append(item)
                    elif item is not None:
                        batch.append(item)
                    if len(batch) >= self._batch or len(chunks) >= _CHUNKS_PER_TURN:
                        break
                    if queue.empty():
                        break
                    item = queue.get_nowait()
                    if item is None:
                        finished = True
                        break
                async with self._turns.turn():
                    acks = await asyncio.to_thread(
                        self._ingestor.ingest_batch, device_id, batch, chunks
                    )
                if not acks:
                    continue
                if batched:
                    yield data_pb2.UploadResponse(acks=data_pb2.AckBatch(acks=acks))
                else:
                    for ack in acks:
                        yield data_pb2.UploadResponse(ack=ack)
            if refusal:
                # What came before the bad message was handled and acked; the rest is refused.
                log.warning("upload stream refused", device_id=device_id, reason=refusal[0])
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, refusal[0])
        finally:
            reader.cancel()


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


def build_servers(
    settings: ControllerSettings,
    pki: ControllerPki,
    sessions: sessionmaker[Session],
    enroller: Enroller,
    ingestor: Ingestor,
    clock: Clock,
) -> tuple[grpc.aio.Server, grpc.aio.Server]:
    key_pem = pki.server_key_path.read_bytes()
    cert_pem = pki.server_cert_path.read_bytes()
    # Every CA still honoured (two of them during a rotation), not only the issuing one.
    ca_pem = pki.trust_bundle_pem or pki.ca_cert_path.read_bytes()

    enrol = grpc.aio.server(options=_SERVER_OPTIONS, interceptors=[DecodeGuard()])
    enrollment_pb2_grpc.add_EnrollmentServicer_to_server(EnrollmentService(enroller), enrol)
    enrol.add_secure_port(
        f"{settings.bind_host}:{settings.enrol_port}",
        grpc.ssl_server_credentials([(key_pem, cert_pem)]),
    )

    gate = DeviceGate(sessions)
    data = grpc.aio.server(options=_SERVER_OPTIONS, interceptors=[DecodeGuard()])
    data_pb2_grpc.add_UploadsServicer_to_server(
        UploadsService(gate, ingestor, settings.upload_batch), data
    )
    licences = LicenceDesk(
        sessions, pki.licence_key, licence_days=settings.licence_days, clock=clock
    )
    data_pb2_grpc.add_DeviceServicer_to_server(
        DeviceService(gate, sessions, clock, licences=licences, trust_bundle_pem=ca_pem), data
    )
    data_pb2_grpc.add_SlicesServicer_to_server(
        SlicesService(gate, sessions, pki.licence_key, clock), data
    )
    data.add_secure_port(
        f"{settings.bind_host}:{settings.data_port}",
        grpc.ssl_server_credentials(
            [(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=True
        ),
    )
    return enrol, data
