"""Replacing a broken device without losing the records it never got to upload.

The steps, and why each is safe:

1. **Enrol the new device** for the same township with a fresh enrolment code. It gets its own
   key, certificate and licence; nothing of the old device is copied to it.
2. **Register the succession** on the controller (``muster provision replace OLD NEW``):
   ``register_succession`` revokes OLD if it is not revoked yet and records OLD → NEW. Both must
   belong to the same township; a device has at most one successor; NEW must be enrolled and
   not revoked.
3. **Export** the old outbox (``muster provision export-outbox --state-dir OLD``, run wherever
   the old disk can be read): the records still waiting for an acknowledgement, exactly as they
   were sealed — ciphertext to the centre's upload key plus the old device's signature — and the
   old certificate. No key is read and nothing is decrypted: the file is as unreadable as the
   outbox it came from.
4. **Import** on the new device (``muster provision import-outbox FILE``): the certificate must
   chain to the CA the new device trusts and name the device in the file, and every record's
   signature must verify against it. The records go into the new outbox unchanged. The new
   device never holds the upload private key, so it cannot read them, just as it cannot read
   its own.
5. **Upload**: the new device's daemon sends them with its own records. ``Ingestor`` accepts a
   record whose ``device_id`` is not the uploader's only when ``forwarding_signers`` finds the
   uploader registered as that device's successor. The signature is checked against the
   predecessor's certificate from the database, the township against the predecessor's, and the
   record is stored under the predecessor's id: it is that device's record, merely carried. A
   record the predecessor claims to have sealed after its revocation is refused
   (``sealed_after_revocation``): its key no longer vouches for anything new. Anyone else
   uploading a foreign record is refused as before (``device_mismatch``).

Resends and re-imports are harmless: ingest is idempotent on record id and content hash, and the
import skips records the new outbox already holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Device, DeviceEvent, DeviceSuccession
from controller.devices.revocation import revoke_device
from muster.errors import ConfigError, NotFoundError
from muster.v1 import data_pb2

__all__ = [
    "FORWARD_REJECTIONS",
    "Succession",
    "forwarding_signers",
    "register_succession",
    "sealed_after_revocation",
]

FORWARD_REJECTIONS = {
    "sealed_after_revocation": "该记录的封存时间晚于原设备被吊销的时间，中心不接受转交。",
}


@dataclass(frozen=True, slots=True)
class Succession:
    predecessor_id: str
    successor_id: str
    township_code: str
    revoked_now: bool


def register_succession(
    sessions: sessionmaker[Session],
    predecessor_id: str,
    successor_id: str,
    *,
    reason: str,
    by: str,
    now: datetime,
) -> Succession:
    """Record that ``successor_id`` replaces ``predecessor_id``; revoke the predecessor."""
    if predecessor_id == successor_id:
        raise ConfigError("新旧设备编号相同 (old and new device are the same device)")
    with sessions() as session:
        old = session.get(Device, predecessor_id)
        new = session.get(Device, successor_id)
        if old is None or new is None:
            missing = predecessor_id if old is None else successor_id
            raise NotFoundError(f"没有编号为 {missing} 的设备 (no such device)")
        if old.township_code != new.township_code:
            raise ConfigError(
                f"新设备属于乡镇 {new.township_code}，旧设备属于 {old.township_code}："
                "更换设备必须在同一乡镇注册新设备 (a replacement must be enrolled for the "
                "same township)"
            )
        if new.revoked_at is not None:
            raise ConfigError(
                f"新设备 {successor_id} 已被吊销，不能接替 (the new device is revoked)"
            )
        existing = session.get(DeviceSuccession, predecessor_id)
        if existing is not None:
            raise ConfigError(
                f"设备 {predecessor_id} 已由 {existing.successor_id} 接替 "
                "(this device already has a successor)"
            )
        township = old.township_code
        needs_revoking = old.revoked_at is None
    if needs_revoking:
        revoke_device(
            sessions, predecessor_id, reason=reason or f"由 {successor_id} 替换", by=by, now=now
        )
    with sessions.begin() as session:
        session.add(
            DeviceSuccession(
                predecessor_id=predecessor_id, successor_id=successor_id, at=now, reason=reason
            )
        )
        session.add(
            DeviceEvent(
                device_id=successor_id,
                at=now,
                kind="REPLACES",
                message=f"本机接替设备 {predecessor_id}",
                details={"predecessor": predecessor_id, "by": by},
            )
        )
    return Succession(predecessor_id, successor_id, township, needs_revoking)


def forwarding_signers(
    session: Session, successor_id: str, device_ids: Iterable[str]
) -> dict[str, Device]:
    """The predecessors among ``device_ids`` whose records ``successor_id`` may carry."""
    wanted = set(device_ids) - {successor_id}
    if not wanted:
        return {}
    rows = session.execute(
        select(Device)
        .join(DeviceSuccession, DeviceSuccession.predecessor_id == Device.id)
        .where(DeviceSuccession.successor_id == successor_id, Device.id.in_(wanted))
    ).scalars()
    return {device.id: device for device in rows}


def sealed_after_revocation(predecessor: Device, sealed: data_pb2.SealedRecord) -> bool:
    if predecessor.revoked_at is None:
        return False
    return sealed.sealed_at.ToDatetime(tzinfo=UTC) > predecessor.revoked_at
