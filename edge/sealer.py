"""Sealing on the device: a reviewed, signed record becomes ciphertext the device cannot read
back, and is in the outbox on disk before the caller is told it is saved."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edge.identity import IdentityStore
from edge.licence_guard import LicenceGuard
from edge.outbox import Outbox
from muster.clock import Clock
from muster.crypto import (
    DeviceKey,
    content_hash,
    seal_attachment,
    seal_record,
    upload_public_from_bytes,
)
from muster.errors import LicenceError
from muster.records import RecordError, RecordPayload, describe_attachment

__all__ = ["Sealed", "Sealer"]


@dataclass(frozen=True, slots=True)
class Sealed:
    record_id: str
    content_hash: str
    key_version: int


class Sealer:
    def __init__(
        self,
        store: IdentityStore,
        outbox: Outbox,
        guard: LicenceGuard,
        *,
        clock: Clock,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._guard = guard
        self._clock = clock
        self._key: DeviceKey = store.device_key()
        self.sealed_count = 0

    def seal(
        self, payload: RecordPayload, attachments: Mapping[str, bytes] | None = None
    ) -> Sealed:
        """Seal and store; raises ``LicenceError`` (collection refused) or ``StorageError``.

        ``attachments`` are the plaintexts the payload describes; each is sealed on its own and
        kept beside the record. ``RecordError`` when they do not match the payload's descriptors.
        """
        given = dict(attachments or {})
        if set(given) != set(payload.attachments):
            raise RecordError("attachment", "记录所列附件与实际附件不符，请重新拍摄或签名后封存")
        for name, data in given.items():
            if describe_attachment(name, data) != payload.attachments[name]:
                raise RecordError("attachment", f"附件“{name}”与记录所列不符，请重新封存")
        return self.seal_document(
            payload.record_id,
            f"{payload.category.value}/{payload.form_version}",
            payload.to_bytes(),
            given,
        )

    def seal_document(
        self,
        record_id: str,
        schema_version: str,
        plaintext: bytes,
        given: Mapping[str, bytes] | None = None,
    ) -> Sealed:
        """Seal and store a record of any kind (``confirmation/1`` too) as ``seal`` does, its
        attachments already checked; the same licence and upload-key rules apply."""
        given = dict(given or {})
        verdict = self._guard.verdict
        if not verdict.allowed:
            raise LicenceError(verdict.reason, verdict.message)
        enrolment = self._store.enrolment()
        if not enrolment.upload_keys:
            raise LicenceError("no_upload_key", "尚未从中心获得上传密钥，请连接网络后重试")
        version = max(int(v) for v in enrolment.upload_keys)
        upload_key = upload_public_from_bytes(bytes.fromhex(enrolment.upload_keys[str(version)]))
        sealed = seal_record(
            plaintext,
            record_id=record_id,
            device_id=enrolment.device_id,
            schema_version=schema_version,
            upload_key=upload_key,
            key_version=version,
            signing_key=self._key,
            now=self._clock.now(),
        )
        chunks = [
            chunk
            for name, data in sorted(given.items())
            for chunk in seal_attachment(
                data,
                record_id=record_id,
                device_id=enrolment.device_id,
                name=name,
                upload_key=upload_key,
                key_version=version,
            )
        ]
        digest = content_hash(sealed)
        self._outbox.add(sealed, digest, chunks=chunks)
        self.sealed_count += 1
        return Sealed(record_id, digest, version)
