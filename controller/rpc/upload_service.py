"""``Uploads`` on the mutual-TLS port: sealed records and their attachment chunks in, acks out,
only after ingest has stored them. Flow control is a bounded queue per stream, fairness is
round-robin turns at the ingest worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import NamedTuple

import grpc
import structlog

from controller.records.ingest import Ingestor, Preopened
from controller.rpc.admission import DeviceGate
from controller.rpc.decode_guard import BadRequest
from muster.v1 import data_pb2, data_pb2_grpc

__all__ = ["MAX_BATCH_RECORDS", "IngestTurns", "UploadsService"]

log = structlog.get_logger(__name__)

# The most records one RecordBatch may carry; a device sends ``upload_batch`` (256) at most.
MAX_BATCH_RECORDS = 1024


# Chunks of at most 256 KiB: a turn carries at most 8 MiB of them, so a device sending photos
# takes no longer turns at the ingest worker than one sending bare records.
_CHUNKS_PER_TURN = 32


class IngestTurns:
    """Turns at the ingest worker, shared by every upload stream of this process.

    ``asyncio.Semaphore`` wakes its waiters in arrival order, and a stream takes one turn per
    batch of at most ``upload_batch`` records, so a device with a week's backlog gets one batch
    in, then waits behind every other device that is waiting: round robin, not first come first
    served. ``slots`` turns run at once: while one batch is opened in the ingest workers
    (controller/records/opening.py), the other's transaction runs here.
    """

    def __init__(self, slots: int = 2) -> None:
        self._turns = asyncio.Semaphore(slots)

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        async with self._turns:
            yield


class _Staged(NamedTuple):
    batch: list[data_pb2.SealedRecord]
    chunks: list[data_pb2.AttachmentChunk]
    preopened: Preopened | None


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

    def _preopen(self, device_id: str, batch: list[data_pb2.SealedRecord]) -> Preopened | None:
        """Opening ahead only saves time: if it fails, the transaction opens the batch itself,
        and the stream goes on (an exception here would leave the commit stage waiting)."""
        try:
            return self._ingestor.preopen(device_id, batch)
        except Exception:
            log.exception(
                "opening a batch ahead failed; its transaction opens it", device_id=device_id
            )
            return None

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

        # Two stages per stream, one batch apart: while one batch is stored in its turn, the
        # next is assembled and already opening in the ingest workers (Ingestor.preopen). The
        # transactions stay one at a time, in order, so acks come back in the order sent.
        staged: asyncio.Queue[_Staged | None] = asyncio.Queue(maxsize=1)
        answers: asyncio.Queue[list[data_pb2.RecordAck] | Exception | None] = asyncio.Queue()

        async def assemble() -> None:
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
                await staged.put(_Staged(batch, chunks, self._preopen(device_id, batch)))
            await staged.put(None)

        async def commit() -> None:
            try:
                while (next_batch := await staged.get()) is not None:
                    async with self._turns.turn():
                        acks = await asyncio.to_thread(
                            self._ingestor.ingest_batch, device_id, *next_batch
                        )
                    await answers.put(acks)
            except Exception as exc:  # ends the stream with it, as before the two stages
                await answers.put(exc)
            else:
                await answers.put(None)

        # Live exactly as long as this stream (cancelled below); a failure is logged, not lost.
        tasks = [
            asyncio.create_task(pump(), name=f"upload-read-{device_id}"),
            asyncio.create_task(assemble(), name=f"upload-assemble-{device_id}"),
            asyncio.create_task(commit(), name=f"upload-commit-{device_id}"),
        ]
        tasks[0].add_done_callback(_log_reader_failure)
        try:
            while (answer := await answers.get()) is not None:
                if isinstance(answer, Exception):
                    raise answer
                if not answer:
                    continue
                if batched:
                    yield data_pb2.UploadResponse(acks=data_pb2.AckBatch(acks=answer))
                else:
                    for ack in answer:
                        yield data_pb2.UploadResponse(ack=ack)
            if refusal:
                # What came before the bad message was handled and acked; the rest is refused.
                log.warning("upload stream refused", device_id=device_id, reason=refusal[0])
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, refusal[0])
        finally:
            for task in tasks:
                task.cancel()
