"""Devices at the centre: their identity and certificate, enrolment codes, upload keys, licences,
fingerprint changes and successions (``controller.devices``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models.base import Base

__all__ = [
    "Device",
    "DeviceSuccession",
    "EnrollmentCode",
    "FingerprintChange",
    "LicenceGrant",
    "UploadKey",
]


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    township_code: Mapped[str] = mapped_column(String(12), index=True)
    profile: Mapped[str] = mapped_column(String(64))
    device_model: Mapped[str] = mapped_column(String(128), default="")
    certificate_pem: Mapped[str] = mapped_column(Text)
    certificate_serial: Mapped[str] = mapped_column(String(64), unique=True)
    fingerprint: Mapped[dict[str, Any]] = mapped_column()
    software_version: Mapped[str] = mapped_column(String(32), default="")
    enrolled_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_reason: Mapped[str] = mapped_column(String(200), default="")
    online: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    # The device's stamp of its current status (its clock, which may run off the centre's) and
    # when the centre took that status in (the centre's clock: what centre times compare with).
    status_since: Mapped[datetime | None] = mapped_column(default=None)
    status_received_at: Mapped[datetime | None] = mapped_column(default=None)
    last_seen: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    outbox_depth: Mapped[int] = mapped_column(Integer, default=0)
    licence_days_left: Mapped[int | None] = mapped_column(Integer, default=None)
    collection_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    collection_refusal: Mapped[str] = mapped_column(String(200), default="")
    clock_skew_s: Mapped[float] = mapped_column(Float, default=0.0)
    records_received: Mapped[int] = mapped_column(BigInteger, default=0)
    last_heartbeat: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Fleet health (controller/fleet/monitor.py): online / stale / offline with the reason, and how
    # many heartbeats in a row the outbox grew.
    state: Mapped[str] = mapped_column(String(16), default="offline", index=True)
    state_reason: Mapped[str] = mapped_column(String(200), default="")
    backlog_rising: Mapped[int] = mapped_column(Integer, default=0)


class EnrollmentCode(Base):
    __tablename__ = "enrollment_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    township_code: Mapped[str] = mapped_column(String(12), index=True)
    profile: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(64), default="")
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    used_by_device: Mapped[str | None] = mapped_column(String(40), default=None)


class UploadKey(Base):
    __tablename__ = "upload_keys"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column()
    not_after: Mapped[datetime] = mapped_column()


class LicenceGrant(Base):
    """Every licence the centre has signed, at enrolment and at each renewal, with the
    authorisation fee a generic market device owes (S-06)."""

    __tablename__ = "licence_grants"

    serial: Mapped[str] = mapped_column(String(32), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # enrolment | renewal
    issued_at: Mapped[datetime] = mapped_column()
    not_before: Mapped[datetime] = mapped_column()
    not_after: Mapped[datetime] = mapped_column()
    features: Mapped[list[str]] = mapped_column(JSON)
    fee_amount_fen: Mapped[int] = mapped_column(Integer, default=0)
    fee_currency: Mapped[str] = mapped_column(String(3), default="")


class FingerprintChange(Base):
    """A device reported hardware that differs from what it enrolled with."""

    __tablename__ = "fingerprint_changes"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    at: Mapped[datetime] = mapped_column()
    changed: Mapped[list[str]] = mapped_column(JSON)  # component names
    fingerprint: Mapped[dict[str, Any]] = mapped_column()  # salted hashes as reported
    within_tolerance: Mapped[bool] = mapped_column(Boolean)


class DeviceSuccession(Base):
    """A replaced device and the one that took its place; the successor may forward the
    predecessor's sealed records (see controller/devices/replacement.py)."""

    __tablename__ = "device_successions"

    predecessor_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    successor_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    at: Mapped[datetime] = mapped_column()
    reason: Mapped[str] = mapped_column(String(200), default="")
