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

Hostile or broken input is refused one record (or one chunk) at a time, never a whole batch:

- every envelope field (record id a canonical UUID, schema version, key and nonce sizes,
  ciphertext and signature lengths) is checked before anything touches the database, so a
  value the schema could not hold (a 41-character id is a DataError on PostgreSQL) never
  reaches a statement shared with the rest of the batch;
- any failure while one record is handled, expected or not, becomes that record's
  ``STATUS_REJECTED`` ack with a reason, logged with its record id;
- a device the centre revoked, or whose last licence has expired, has every record refused
  with that reason (``revoked``, ``licence_expired``): the device-side licence guard can be
  tampered with by whoever holds root on the device, this check cannot;
- chunks whose record has not come are *unclaimed* and held within a per-device quota
  (``controller.records.attachment_chunks``).

Over 400 lines because one batch's transaction (device refusal, chunks, who signed what, the
answers to what the workers opened, the insert, superseding and task closure) must be read as
one; envelopes, attachment chunks and the opening itself are in their own modules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

import structlog
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Attachment, Device, LicenceGrant, Record
from controller.devices.replacement import (
    FORWARD_REJECTIONS,
    forwarding_signers,
    sealed_after_revocation,
)
from controller.records.attachment_chunks import (
    ChunkQuota,
    Chunks,
    ChunkStore,
    attachment_chunk,
    explain_missing,
    safe_id,
)
from controller.records.envelopes import envelope_problem
from controller.records.opening import (
    Job,
    Opened,
    Parsed,
    PendingOpen,
    RecordOpener,
    default_workers,
)
from controller.records.record_insert import insert_records
from controller.records.review import supersede_returned
from muster.clock import Clock
from muster.crypto import DevicePublicKey, UploadPrivateKey, open_attachment
from muster.crypto.pki import device_public_key, load_certificate
from muster.errors import SealError
from muster.idnumbers import preload as preload_id_regions
from muster.v1 import data_pb2

__all__ = ["INCOMPLETE", "REJECTIONS", "Ack", "Ingestor", "KindIngest", "Preopened"]

log = structlog.get_logger(__name__)

Ack = data_pb2.RecordAck
# A sealed record of another kind than the collection forms' (``confirmation/1``: the annual
# confirmation): checked and opened like any record, then handed, opened, to its room's handler
# with the batch's session; what the handler writes commits with the batch, and nothing of it
# when it answers with a rejection.
KindIngest = Callable[[Session, Device, data_pb2.SealedRecord, bytes, datetime], "Ack"]

REJECTIONS = {
    "device_mismatch": "记录的设备编号与本机证书不符，请联系技术支持。",
    "signature": "记录签名无效（可能被篡改），请在本机重新封存该记录。",
    "unreadable": "中心无法解密该记录（上传密钥已失效），请同步密钥后重新封存。",
    "record_id_conflict": "该记录编号已上传过不同的内容，请作为新记录重新录入。",
    "wrong_township": "该记录不属于本机所在乡镇，不能上传。",
    "schema_mismatch": "记录的表单版本与内容不符，请重新封存。",
    "attachment_corrupt": "记录的照片或签名附件已损坏或与记录不符，请重新拍照或签字后封存。",
    "revoked": "本机已被中心吊销，中心不再接收本机的记录。请联系县级管理员。",
    "licence_expired": "本机授权已过期，中心不接收记录。请联网续期授权后重新上传。",
    "malformed": "记录的封装格式不正确，中心无法处理，请在本机重新封存该记录。",
    "internal": "中心处理该记录时出错，记录未保存。请稍后重新上传；如反复出现请联系技术支持。",
}
INCOMPLETE = {
    "attachment_missing": "记录的照片或签名附件尚未全部到达中心，设备将自动重新发送。",
}


class Preopened(NamedTuple):
    """A batch handed to the workers by ``Ingestor.preopen``: with which certificate's key and
    on which day it was opened, and the records on their way back."""

    serial: str
    today: date
    pending: PendingOpen


def _signed_by(
    device: Device, sealed: data_pb2.SealedRecord, opened: Opened | None
) -> str | data_pb2.RecordAck:
    """The checks every sealed record passes first, whatever its kind: from this stream's
    device, opened without error, its signature good. The content digest, or the rejection."""
    if sealed.device_id != device.id or opened is None:
        return _reject(sealed.record_id, "device_mismatch")
    if opened.error is not None:
        raise RuntimeError(f"opening the record failed:\n{opened.error}")
    if opened.digest is None:
        return _reject(sealed.record_id, "signature")
    return opened.digest


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
        *,
        quota: ChunkQuota | None = None,
        workers: int | None = None,
        kinds: Mapping[str, KindIngest] | None = None,
    ) -> None:
        self._sessions = sessions
        self._kinds = dict(kinds or {})
        # The ID checker's region table takes a good part of a second to load: now, not on the
        # first record of the first upload.
        preload_id_regions()
        # Signatures, decryption and the record rules run in worker processes, one per core by
        # default (controller/records/opening.py says why not threads); 0 opens inline.
        self._opener = RecordOpener(default_workers() if workers is None else workers)
        self._chunks = ChunkStore(sessions, clock, quota or ChunkQuota())
        self._upload_keys = upload_keys
        self._reload_keys = reload_keys
        self._clock = clock
        # Each device's key as of its certificate serial; also what ``preopen`` opens the
        # device's next batch with, before any transaction has read the device.
        self._device_keys: dict[str, tuple[str, tuple[DevicePublicKey, bytes]]] = {}

    def start_workers(self) -> None:
        """Start the opening workers now rather than on the first large batch."""
        self._opener.start()

    def close(self) -> None:
        """Stop the opening workers; a batch after this is opened inline."""
        self._opener.close()

    def _public_key(self, device: Device) -> tuple[DevicePublicKey, bytes]:
        """The device's signature key, and the same as DER for a worker process."""
        held = self._device_keys.get(device.id)
        if held is None or held[0] != device.certificate_serial:
            loaded = device_public_key(load_certificate(device.certificate_pem.encode()))
            der = loaded.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            held = self._device_keys[device.id] = (device.certificate_serial, (loaded, der))
        return held[1]

    def preopen(self, device_id: str, batch: Sequence[data_pb2.SealedRecord]) -> Preopened | None:
        """Start opening a batch in the workers ahead of its transaction, so that a stream's next
        batch is opened while this one is stored; hand the result to ``ingest_batch``.

        Nothing is decided here: the transaction checks every record as it always does, and
        uses what was opened only where the same key, day and upload keys apply (else it opens
        the record itself). None when there is nothing to gain: the device's key not yet known
        to this process, no workers running, too few records, or a key version to reload.
        """
        known = self._device_keys.get(device_id)
        if known is None or any(s.key_version not in self._upload_keys for s in batch):
            return None
        serial, (key, der) = known
        today = self._clock.today()
        jobs = [
            Job(position, sealed, key, der, stored=False, form=self._is_form(sealed))
            for position, sealed in enumerate(batch)
            if sealed.device_id == device_id and envelope_problem(sealed) is None
        ]
        pending = self._opener.submit(jobs, dict(self._upload_keys), today, start=False)
        return None if pending is None else Preopened(serial, today, pending)

    def ingest_batch(
        self,
        device_id: str,
        batch: Sequence[data_pb2.SealedRecord],
        chunks: Sequence[data_pb2.AttachmentChunk] = (),
        preopened: Preopened | None = None,
    ) -> list[data_pb2.RecordAck]:
        """Store what is valid in one transaction; return acks only after it has committed.

        Two streams may carry the same record at once (a device reconnecting while its old stream
        is still being served, or two controller replicas): the loser of that race sees the
        unique key fail, and simply runs again, finding the record stored and acking a duplicate.
        """
        for attempt in range(3):
            try:
                return self._ingest_once(device_id, batch, chunks, preopened)
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
        preopened: Preopened | None,
    ) -> list[data_pb2.RecordAck]:
        now = self._clock.now()
        today = self._clock.today()  # one day for the whole batch, asked once
        acks: list[data_pb2.RecordAck] = []
        # Envelopes first, before any statement: a bad one is answered alone and never reaches
        # a query or an INSERT shared with the good records.
        malformed: dict[int, str] = {}
        for position, sealed in enumerate(batch):
            problem = envelope_problem(sealed)
            if problem is not None:
                malformed[position] = problem
        with self._sessions.begin() as session:
            device = session.get(Device, device_id)
            if device is None:
                return [_reject(safe_id(s.record_id), "device_mismatch") for s in batch]
            refusal = self._device_refusal(session, device, now)
            if refusal is not None:
                log.warning(
                    "upload refused", device_id=device_id, reason=refusal, records=len(batch)
                )
                return [_reject(safe_id(s.record_id), refusal) for s in batch]
            refused = {
                (chunk.record_id, chunk.name): code
                for chunk, code in self._chunks.keep(session, device.id, chunks, now)
            }
            public_key = self._public_key(device)
            ids = list(
                {s.record_id for position, s in enumerate(batch) if position not in malformed}
            )
            held = self._chunks.held(session, ids)
            verified: list[tuple[str, list[str]]] = []
            seen: dict[str, str] = {
                record_id: digest
                for record_id, digest in session.execute(
                    select(Record.record_id, Record.content_hash).where(Record.record_id.in_(ids))
                )
            }
            rows: list[dict[str, Any]] = []
            # A replacement device may carry its revoked predecessor's records (see
            # controller/devices/replacement.py); they are checked and stored as the predecessor's.
            carried = forwarding_signers(session, device.id, {s.device_id for s in batch})
            # Who signed each record, decided before any cryptography: what is refused here
            # never reaches the workers.
            planned: dict[int, tuple[Device, tuple[DevicePublicKey, bytes]]] = {}
            early: dict[int, data_pb2.RecordAck] = {}
            for position, sealed in enumerate(batch):
                if position in malformed:
                    early[position] = _reject(
                        safe_id(sealed.record_id),
                        "malformed",
                        f"{REJECTIONS['malformed']}（{malformed[position]}）",
                    )
                    continue
                signer = carried.get(sealed.device_id, device)
                if signer is not device and sealed_after_revocation(signer, sealed):
                    early[position] = _reject(
                        sealed.record_id,
                        "sealed_after_revocation",
                        FORWARD_REJECTIONS["sealed_after_revocation"],
                    )
                    continue
                try:
                    key = public_key if signer is device else self._public_key(signer)
                except Exception:
                    log.exception(
                        "record failed in ingest", device_id=device_id, record_id=sealed.record_id
                    )
                    early[position] = _reject(sealed.record_id, "internal")
                    continue
                planned[position] = (signer, key)
            opened = self._open_all(batch, planned, seen, today, device, preopened)
            for position, sealed in enumerate(batch):
                if position in early:
                    acks.append(early[position])
                    continue
                signer, key = planned[position]
                kind = self._kinds.get(sealed.schema_version.partition("/")[0])
                try:
                    if kind is not None:
                        ack = self._other_kind(
                            kind, session, signer, sealed, opened.get(position), now
                        )
                    else:
                        ack = self._one(
                            signer,
                            sealed,
                            opened.get(position),
                            seen,
                            rows,
                            now,
                            held,
                            verified,
                        )
                    if ack.reason_code == "attachment_missing":
                        ack = explain_missing(ack, sealed.record_id, refused)
                except Exception:
                    # Whatever went wrong with this one record stays with it: logged with its
                    # id, answered with a reason, and the rest of the batch goes on.
                    log.exception(
                        "record failed in ingest", device_id=device_id, record_id=sealed.record_id
                    )
                    ack = _reject(sealed.record_id, "internal")
                acks.append(ack)
            # One round trip for the batch's records (COPY on PostgreSQL): the ORM's unit of
            # work costs more than the cryptography per record at these rates.
            if rows:
                insert_records(session, rows)
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

    @staticmethod
    def _device_refusal(session: Session, device: Device, now: datetime) -> str | None:
        """Why the centre takes no records from this device at all, or None."""
        if device.revoked_at is not None:
            return "revoked"
        last_valid_until = session.scalar(
            select(func.max(LicenceGrant.not_after)).where(LicenceGrant.device_id == device.id)
        )
        if last_valid_until is not None and _aware(last_valid_until) < now:
            return "licence_expired"
        return None

    def sweep_unclaimed(self) -> int:
        """Delete unclaimed chunks past their expiry; how many went."""
        return self._chunks.sweep_unclaimed()

    def _check_attachments(self, parsed: Parsed, held: Chunks) -> data_pb2.RecordAck | None:
        """None when every attachment the record names is here and matches; else the ack."""
        record_id = parsed.record_id
        for name, size, sha256 in parsed.attachments:
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
            if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
                return _reject(record_id, "attachment_corrupt")
        return None

    def _open_all(
        self,
        batch: Sequence[data_pb2.SealedRecord],
        planned: dict[int, tuple[Device, tuple[DevicePublicKey, bytes]]],
        seen: dict[str, str],
        today: date,
        device: Device,
        preopened: Preopened | None,
    ) -> dict[int, Opened]:
        """Signature check, content hash, decryption and the record rules of every planned
        record, on every core (``RecordOpener``); what needs the database stays in ``_one``.
        What ``preopen`` already opened with this device's current key, on this day and with
        the same upload keys, is taken as it is."""
        if self._reload_keys is not None and any(
            batch[p].key_version not in self._upload_keys for p in planned
        ):
            # Rotated by `muster controller rotate-upload-key` while we were running: devices
            # learn the new public key from Health, so we must find its private half on disk.
            self._upload_keys.update(self._reload_keys())
            preopened = None
        ready: dict[int, Opened] = {}
        if (
            preopened is not None
            and preopened.serial == device.certificate_serial
            and preopened.today == today
        ):
            # Only records this device signed were opened ahead (``preopen``).
            ready = preopened.pending.result() or {}
        jobs = [
            Job(
                position,
                batch[position],
                key,
                der,
                stored=batch[position].record_id in seen,
                form=self._is_form(batch[position]),
            )
            for position, (signer, (key, der)) in planned.items()
            if batch[position].device_id == signer.id and position not in ready
        ]
        return {**ready, **self._opener.open(jobs, dict(self._upload_keys), today)}

    def _is_form(self, sealed: data_pb2.SealedRecord) -> bool:
        """A collection form's record, parsed and checked as one, not another kind's."""
        return sealed.schema_version.partition("/")[0] not in self._kinds

    @staticmethod
    def _other_kind(
        kind: KindIngest,
        session: Session,
        device: Device,
        sealed: data_pb2.SealedRecord,
        opened: Opened | None,
        now: datetime,
    ) -> data_pb2.RecordAck:
        checked = _signed_by(device, sealed, opened)
        if isinstance(checked, data_pb2.RecordAck):
            return checked
        if opened is None or opened.plaintext is None:
            return _reject(sealed.record_id, "unreadable")
        savepoint = session.begin_nested()
        try:
            ack = kind(session, device, sealed, opened.plaintext, now)
        except BaseException:
            savepoint.rollback()
            raise
        if ack.status == Ack.STATUS_REJECTED:
            savepoint.rollback()
        else:
            savepoint.commit()
        return ack

    def _one(
        self,
        device: Device,
        sealed: data_pb2.SealedRecord,
        opened: Opened | None,
        seen: dict[str, str],
        rows: list[dict[str, Any]],
        now: datetime,
        held: Chunks,
        verified: list[tuple[str, list[str]]],
    ) -> data_pb2.RecordAck:
        record_id = sealed.record_id
        digest = _signed_by(device, sealed, opened)
        if isinstance(digest, data_pb2.RecordAck):
            return digest
        if record_id in seen:
            if seen[record_id] == digest:
                return Ack(record_id=record_id, status=Ack.STATUS_DUPLICATE)
            return _reject(record_id, "record_id_conflict")
        if opened is None or not opened.opened:
            return _reject(record_id, "unreadable")
        if opened.refusal is not None:
            code, reason = opened.refusal
            return _reject(record_id, code, reason)
        parsed = opened.parsed
        if parsed is None:
            # Opened as another kind in a worker but answered here as a form: never expected.
            raise RuntimeError(f"record {record_id} was opened but not parsed")
        if parsed.record_id != record_id:
            return _reject(record_id, "schema_mismatch")
        if parsed.township_code != device.township_code:
            return _reject(record_id, "wrong_township")
        if sealed.schema_version != parsed.schema_version:
            return _reject(record_id, "schema_mismatch")
        problem = self._check_attachments(parsed, held)
        if problem is not None:
            return problem
        if parsed.attachments:
            verified.append((record_id, [name for name, _, _ in parsed.attachments]))
        rows.append(
            {
                "record_id": record_id,
                "device_id": device.id,
                "content_hash": digest,
                "schema_version": sealed.schema_version,
                "key_version": sealed.key_version,
                "township_code": parsed.township_code,
                "category": parsed.category,
                "sealed_at": sealed.sealed_at.ToDatetime(tzinfo=UTC),
                "received_at": now,
                "payload": parsed.payload_json,  # JSON text, serialised once
                "id_number": parsed.id_number,
            }
        )
        seen[record_id] = digest
        return Ack(record_id=record_id, status=Ack.STATUS_STORED)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
