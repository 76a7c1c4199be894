"""Ingest of sealed records: verify, open, validate, store — then, and only then, acknowledge.

Pure of transport: the gRPC servicer hands in a batch from one device and gets one ack per
record back after the batch's transaction has committed. Idempotent on (record id, content
hash): a resend of a stored record is acknowledged as a duplicate and stored once.

Attachments come as sealed chunks ahead of the record that names them, in the same batch or an
earlier one. Chunks are kept as they arrive, keyed by (record id, name, index). When the record
comes, every attachment it names must be complete, decrypt, and match the size and SHA-256 the
record gives; then the record is stored and its chunks marked verified in one transaction.

- an attachment with chunks missing: the record is *not* stored and gets ``STATUS_INCOMPLETE``
  (``attachment_missing``). Nothing is wrong with it, the device still holds every chunk, so it
  keeps the record and sends chunks and record again; a clerk has nothing to do.
- chunks that do not decrypt or do not match the record: ``STATUS_REJECTED``
  (``attachment_corrupt``). Resending the same ciphertext cannot help; the clerk retakes the
  photo or signature and seals again, and the new chunks replace the unverified old ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Attachment, Device, Record
from controller.replacement import (
    FORWARD_REJECTIONS,
    forwarding_signers,
    sealed_after_revocation,
)
from controller.review import supersede_returned
from muster.clock import Clock
from muster.crypto import (
    ATTACHMENT_CHUNK_BYTES,
    DevicePublicKey,
    UploadPrivateKey,
    content_hash,
    open_attachment,
    open_record,
    verify_record,
)
from muster.crypto.pki import device_public_key, load_certificate
from muster.errors import SealError, SignatureError
from muster.records import (
    ATTACHMENT_MAX_BYTES,
    ATTACHMENT_NAMES,
    RecordError,
    RecordPayload,
    parse_record,
)
from muster.v1 import data_pb2

log = structlog.get_logger(__name__)

Ack = data_pb2.RecordAck

REJECTIONS = {
    "device_mismatch": "记录的设备编号与本机证书不符，请联系技术支持。",
    "signature": "记录签名无效（可能被篡改），请在本机重新封存该记录。",
    "unreadable": "中心无法解密该记录（上传密钥已失效），请同步密钥后重新封存。",
    "record_id_conflict": "该记录编号已上传过不同的内容，请作为新记录重新录入。",
    "wrong_township": "该记录不属于本机所在乡镇，不能上传。",
    "schema_mismatch": "记录的表单版本与内容不符，请重新封存。",
    "attachment_corrupt": "记录的照片或签名附件已损坏或与记录不符，请重新拍照或签字后封存。",
}
INCOMPLETE = {
    "attachment_missing": "记录的照片或签名附件尚未全部到达中心，设备将自动重新发送。",
}
# Most chunks one attachment may have; a chunk's ciphertext is its plaintext plus the GCM tag.
_MAX_CHUNKS = -(-ATTACHMENT_MAX_BYTES // ATTACHMENT_CHUNK_BYTES)
_MAX_CHUNK_CIPHERTEXT = ATTACHMENT_CHUNK_BYTES + 16

Chunks = dict[tuple[str, str], list[Attachment]]


def _reject(record_id: str, code: str, reason: str | None = None) -> data_pb2.RecordAck:
    return Ack(
        record_id=record_id,
        status=Ack.STATUS_REJECTED,
        reason_code=code,
        reason=reason or REJECTIONS[code],
    )


class Ingestor:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        upload_keys: dict[int, UploadPrivateKey],
        clock: Clock,
        reload_keys: Callable[[], dict[int, UploadPrivateKey]] | None = None,
    ) -> None:
        self._sessions = sessions
        self._upload_keys = upload_keys
        self._reload_keys = reload_keys
        self._clock = clock
        self._device_keys: dict[tuple[str, str], DevicePublicKey] = {}

    def _public_key(self, device: Device) -> DevicePublicKey:
        cache_key = (device.id, device.certificate_serial)
        key = self._device_keys.get(cache_key)
        if key is None:
            key = device_public_key(load_certificate(device.certificate_pem.encode()))
            self._device_keys[cache_key] = key
        return key

    def ingest_batch(
        self,
        device_id: str,
        batch: Sequence[data_pb2.SealedRecord],
        chunks: Sequence[data_pb2.AttachmentChunk] = (),
    ) -> list[data_pb2.RecordAck]:
        """Store what is valid in one transaction; return acks only after it has committed.

        Two streams may carry the same record at once (a device reconnecting while its old stream
        is still being served, or two controller replicas): the loser of that race sees the
        unique key fail, and simply runs again, finding the record stored and acking a duplicate.
        """
        for attempt in range(3):
            try:
                return self._ingest_once(device_id, batch, chunks)
            except IntegrityError:
                if attempt == 2:
                    raise
                log.info("concurrent insert of the same record; retrying", device_id=device_id)
        raise AssertionError("unreachable")

    def _ingest_once(
        self,
        device_id: str,
        batch: Sequence[data_pb2.SealedRecord],
        chunks: Sequence[data_pb2.AttachmentChunk],
    ) -> list[data_pb2.RecordAck]:
        now = self._clock.now()
        acks: list[data_pb2.RecordAck] = []
        with self._sessions.begin() as session:
            device = session.get(Device, device_id)
            if device is None or device.revoked_at is not None:
                return [_reject(s.record_id, "device_mismatch") for s in batch]
            self._keep_chunks(session, device.id, chunks, now)
            public_key = self._public_key(device)
            ids = list({s.record_id for s in batch})
            held: Chunks = {}
            for row in session.scalars(
                select(Attachment)
                .where(Attachment.record_id.in_(ids))
                .order_by(Attachment.record_id, Attachment.name, Attachment.chunk_index)
            ):
                held.setdefault((row.record_id, row.name), []).append(row)
            verified: list[tuple[str, list[str]]] = []
            seen: dict[str, str] = {
                record_id: digest
                for record_id, digest in session.execute(
                    select(Record.record_id, Record.content_hash).where(Record.record_id.in_(ids))
                )
            }
            rows: list[dict[str, Any]] = []
            # A replacement device may carry its revoked predecessor's records (see
            # controller/replacement.py); they are checked and stored as the predecessor's.
            carried = forwarding_signers(session, device.id, {s.device_id for s in batch})
            for sealed in batch:
                signer = carried.get(sealed.device_id, device)
                if signer is not device and sealed_after_revocation(signer, sealed):
                    acks.append(
                        _reject(
                            sealed.record_id,
                            "sealed_after_revocation",
                            FORWARD_REJECTIONS["sealed_after_revocation"],
                        )
                    )
                    continue
                key = public_key if signer is device else self._public_key(signer)
                acks.append(self._one(signer, key, sealed, seen, rows, now, held, verified))
            # One multi-row INSERT through Core: the ORM's unit of work costs more than the
            # cryptography per record at these rates.
            if rows:
                session.execute(insert(Record), rows)
                supersede_returned(session, rows)
                for record_id, names in verified:
                    session.execute(
                        update(Attachment)
                        .where(
                            Attachment.record_id == record_id,
                            Attachment.name.in_(names),
                            Attachment.verified_at.is_(None),
                        )
                        .values(verified_at=now)
                    )
                session.execute(
                    update(Device)
                    .where(Device.id == device.id)
                    .values(
                        records_received=Device.records_received + len(rows),
                        last_seen=now,
                    )
                )
            else:
                device.last_seen = now
        for ack in acks:
            if ack.status == Ack.STATUS_REJECTED:
                log.warning(
                    "record rejected",
                    device_id=device_id,
                    record_id=ack.record_id,
                    reason=ack.reason_code,
                )
            elif ack.status == Ack.STATUS_INCOMPLETE:
                log.warning(
                    "record waits for its attachments",
                    device_id=device_id,
                    record_id=ack.record_id,
                    reason=ack.reason_code,
                )
        return acks

    def _keep_chunks(
        self,
        session: Session,
        device_id: str,
        chunks: Sequence[data_pb2.AttachmentChunk],
        now: datetime,
    ) -> None:
        """Keep each chunk once. A verified chunk is never replaced; an unverified one is, so a
        photo retaken after an ``attachment_corrupt`` rejection supersedes the old pieces."""
        good = [c for c in chunks if self._chunk_problem(device_id, c) is None]
        for chunk in chunks:
            problem = self._chunk_problem(device_id, chunk)
            if problem is not None:
                log.warning(
                    "attachment chunk refused",
                    device_id=device_id,
                    record_id=chunk.record_id,
                    reason=problem,
                )
        if not good:
            return
        existing = {
            (row.record_id, row.name, row.chunk_index): row
            for row in session.scalars(
                select(Attachment).where(Attachment.record_id.in_({c.record_id for c in good}))
            )
        }
        fresh: dict[tuple[str, str, int], dict[str, Any]] = {}
        for chunk in good:
            key = (chunk.record_id, chunk.name, chunk.index)
            values = {
                "record_id": chunk.record_id,
                "name": chunk.name,
                "chunk_index": chunk.index,
                "chunk_count": chunk.count,
                "device_id": device_id,
                "key_version": chunk.key_version,
                "ephemeral_public_key": chunk.ephemeral_public_key,
                "nonce": chunk.nonce,
                "ciphertext": chunk.ciphertext,
                "received_at": now,
            }
            row = existing.get(key)
            if row is None:
                fresh[key] = values
            elif row.verified_at is None and row.nonce != chunk.nonce:
                for field, value in values.items():
                    setattr(row, field, value)
        if fresh:
            session.execute(insert(Attachment), list(fresh.values()))
        session.flush()

    @staticmethod
    def _chunk_problem(device_id: str, chunk: data_pb2.AttachmentChunk) -> str | None:
        if chunk.device_id != device_id:
            return "device_mismatch"
        if chunk.name not in ATTACHMENT_NAMES:
            return "name"
        if not 0 <= chunk.index < chunk.count <= _MAX_CHUNKS:
            return "index"
        if len(chunk.ciphertext) > _MAX_CHUNK_CIPHERTEXT:
            return "size"
        if len(chunk.ephemeral_public_key) != 32 or len(chunk.nonce) != 12:
            return "format"
        return None

    def _check_attachments(self, payload: RecordPayload, held: Chunks) -> data_pb2.RecordAck | None:
        """None when every attachment the record names is here and matches; else the ack."""
        record_id = payload.record_id
        for name, ref in payload.attachments.items():
            rows = held.get((record_id, name), [])
            if not rows or [r.chunk_index for r in rows] != list(range(rows[0].chunk_count)):
                return Ack(
                    record_id=record_id,
                    status=Ack.STATUS_INCOMPLETE,
                    reason_code="attachment_missing",
                    reason=INCOMPLETE["attachment_missing"],
                )
            try:
                data = open_attachment([attachment_chunk(row) for row in rows], self._upload_keys)
            except SealError:
                return _reject(record_id, "attachment_corrupt")
            if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
                return _reject(record_id, "attachment_corrupt")
        return None

    def _one(
        self,
        device: Device,
        public_key: DevicePublicKey,
        sealed: data_pb2.SealedRecord,
        seen: dict[str, str],
        rows: list[dict[str, Any]],
        now: datetime,
        held: Chunks,
        verified: list[tuple[str, list[str]]],
    ) -> data_pb2.RecordAck:
        record_id = sealed.record_id
        if sealed.device_id != device.id:
            return _reject(record_id, "device_mismatch")
        try:
            verify_record(sealed, public_key)
        except SignatureError:
            return _reject(record_id, "signature")
        digest = content_hash(sealed)
        if record_id in seen:
            if seen[record_id] == digest:
                return Ack(record_id=record_id, status=Ack.STATUS_DUPLICATE)
            return _reject(record_id, "record_id_conflict")
        if sealed.key_version not in self._upload_keys and self._reload_keys is not None:
            # Rotated by `muster controller rotate-upload-key` while we were running: devices
            # learn the new public key from Health, so we must find its private half on disk.
            self._upload_keys.update(self._reload_keys())
        try:
            payload = parse_record(
                open_record(sealed, self._upload_keys), today=self._clock.today()
            )
        except SealError:
            return _reject(record_id, "unreadable")
        except RecordError as exc:
            return _reject(record_id, exc.code, str(exc))
        if payload.record_id != record_id:
            return _reject(record_id, "schema_mismatch")
        if payload.township_code != device.township_code:
            return _reject(record_id, "wrong_township")
        if sealed.schema_version != f"{payload.category.value}/{payload.form_version}":
            return _reject(record_id, "schema_mismatch")
        problem = self._check_attachments(payload, held)
        if problem is not None:
            return problem
        if payload.attachments:
            verified.append((record_id, list(payload.attachments)))
        rows.append(
            {
                "record_id": record_id,
                "device_id": device.id,
                "content_hash": digest,
                "schema_version": sealed.schema_version,
                "key_version": sealed.key_version,
                "township_code": payload.township_code,
                "category": payload.category.value,
                "sealed_at": sealed.sealed_at.ToDatetime(tzinfo=UTC),
                "received_at": now,
                "payload": payload.model_dump(mode="json"),
                "id_number": payload.person.id_number,
            }
        )
        seen[record_id] = digest
        return Ack(record_id=record_id, status=Ack.STATUS_STORED)


def attachment_chunk(row: Attachment) -> data_pb2.AttachmentChunk:
    """A stored chunk as the device sent it, for ``open_attachment``."""
    return data_pb2.AttachmentChunk(
        record_id=row.record_id,
        device_id=row.device_id,
        name=row.name,
        key_version=row.key_version,
        index=row.chunk_index,
        count=row.chunk_count,
        ephemeral_public_key=row.ephemeral_public_key,
        nonce=row.nonce,
        ciphertext=row.ciphertext,
    )
