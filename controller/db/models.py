"""The controller's tables. The schema is created and changed only by Alembic migrations
(``controller/migrations``); this module is what the code reads and writes through."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend: SQLite hands back naive ones otherwise."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware UTC datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: UtcDateTime}


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
    status_since: Mapped[datetime | None] = mapped_column(default=None)
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


class Record(Base):
    __tablename__ = "records"

    record_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    schema_version: Mapped[str] = mapped_column(String(64))
    key_version: Mapped[int] = mapped_column(Integer)
    township_code: Mapped[str] = mapped_column(String(12), index=True)
    category: Mapped[str] = mapped_column(String(40), index=True)
    sealed_at: Mapped[datetime] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(index=True)
    payload: Mapped[dict[str, Any]] = mapped_column()
    # Review up the chain (controller/records/review.py): the person it is about, where it stands
    # (collected / returned / approved / superseded) and the highest level that approved it.
    id_number: Mapped[str | None] = mapped_column(String(18), default=None)
    review_status: Mapped[str] = mapped_column(
        String(16), default="collected", server_default="collected"
    )
    approved_level: Mapped[str] = mapped_column(String(12), default="", server_default="")

    __table_args__ = (Index("ix_records_township_person", "township_code", "id_number"),)


class Attachment(Base):
    """One sealed chunk of a record's photo, signature or scanned sheet, as the device sent it.

    Chunks are kept as they arrive (a resend of the same key changes nothing once verified);
    ``verified_at`` is set in the transaction that stores the record naming them, after every
    chunk has been decrypted and the whole matched the size and SHA-256 the record gives. The
    centre decrypts them again on demand with the upload key.
    """

    __tablename__ = "attachments"

    record_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    chunk_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    chunk_count: Mapped[int] = mapped_column(Integer)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    key_version: Mapped[int] = mapped_column(Integer)
    ephemeral_public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column()
    verified_at: Mapped[datetime | None] = mapped_column(default=None)


class DeviceEvent(Base):
    __tablename__ = "device_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class DeviceStateChange(Base):
    """Each transition between online, stale and offline, with why."""

    __tablename__ = "device_state_changes"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    at: Mapped[datetime] = mapped_column(index=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200), default="")


class Alert(Base):
    """An alert stays open (``resolved_at`` NULL) until its rule no longer holds. ``open_key`` is
    ``device:kind`` while open and NULL once resolved, so a unique index lets at most one alert of
    a kind be open per device even with several controller processes evaluating the rules."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    message: Mapped[str] = mapped_column(String(300), default="")
    raised_at: Mapped[datetime] = mapped_column(index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    open_key: Mapped[str | None] = mapped_column(String(80), unique=True, default=None)


class Command(Base):
    """A command to one device and what became of it: pending (not yet handed to the broker),
    sent, then acked / failed / rejected by the device, or expired when no ack came in time."""

    __tablename__ = "commands"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    arguments: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), index=True)
    issued_by: Mapped[str] = mapped_column(String(64), default="")
    issued_at: Mapped[datetime] = mapped_column(index=True)
    expires_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    send_count: Mapped[int] = mapped_column(Integer, default=0)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    result_message: Mapped[str] = mapped_column(Text, default="")
    output: Mapped[str] = mapped_column(Text, default="")


class FleetSample(Base):
    """The whole fleet's counts at one moment, for the data-flow charts (one row a minute)."""

    __tablename__ = "fleet_samples"

    at: Mapped[datetime] = mapped_column(primary_key=True)
    devices: Mapped[int] = mapped_column(Integer)
    online: Mapped[int] = mapped_column(Integer)
    stale: Mapped[int] = mapped_column(Integer)
    offline: Mapped[int] = mapped_column(Integer)
    alerting: Mapped[int] = mapped_column(Integer)
    backlog: Mapped[int] = mapped_column(BigInteger)


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


class PersonRow(Base):
    """A person of the initial data (S-04), owned by one township. ``version`` is the township's
    slice version at which this row last changed, so a delta is ``version > have``; a person
    who moves away stays as a ``removed`` row (a tombstone devices apply as a deletion)."""

    __tablename__ = "people"

    township_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(40))
    details: Mapped[dict[str, Any]] = mapped_column()
    content_hash: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(BigInteger)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column()

    __table_args__ = (Index("ix_people_township_version", "township_code", "version"),)


class TownshipSlice(Base):
    """The current version of one township's slice, and whether it was withdrawn."""

    __tablename__ = "township_slices"

    township_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    people: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column()
    not_after: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_reason: Mapped[str] = mapped_column(String(200), default="")


class Clerk(Base):
    """A township clerk's console account (S-07); devices of the township receive it through
    Health and check passwords locally, so a console works offline."""

    __tablename__ = "clerks"

    township_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    username: Mapped[str] = mapped_column(String(32), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)


class Region(Base):
    """One node of the division-code tree (controller/records/region_tree.py): province, city, county,
    township. ``name_known`` is false for townships named only by their code."""

    __tablename__ = "regions"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)  # 2, 4, 6 or 9 digits
    level: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(64))
    parent: Mapped[str] = mapped_column(String(12), index=True)
    name_known: Mapped[bool] = mapped_column(Boolean, default=True)


class AdminUser(Base):
    """A central admin (controller/accounts/admins.py): a role and the region prefix it acts in."""

    __tablename__ = "admin_users"

    username: Mapped[str] = mapped_column(String(32), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    region_prefix: Mapped[str] = mapped_column(String(12))
    password_hash: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    token_created_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column()
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)


class AdminSession(Base):
    """A browser login; only a hash of the cookie is kept."""

    __tablename__ = "admin_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("admin_users.username"), index=True)
    created_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()


class AccessDenial(Base):
    """Every request an admin was refused: out of their region, beyond their role, or not
    logged in."""

    __tablename__ = "access_denials"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(index=True)
    username: Mapped[str] = mapped_column(String(32), default="")
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(String(300))
    # Refusals of one name on one path within a minute share a row (a flood is one row a
    # minute, not one a request): how many, and the last one's time.
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_at: Mapped[datetime | None]


class ReviewEvent(Base):
    """The audit of the review chain (S-09): declarations, returns, approvals, forwards."""

    __tablename__ = "review_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16), index=True)
    township_code: Mapped[str] = mapped_column(String(12), index=True)
    record_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class TownshipDeclaration(Base):
    """A township declared its collection complete (S-09), and how many of its slice had no
    record at that moment."""

    __tablename__ = "township_declarations"

    township_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    declared_at: Mapped[datetime] = mapped_column()
    declared_by: Mapped[str] = mapped_column(String(32))
    missing: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str] = mapped_column(Text, default="")


class PhaseDeadline(Base):
    """When a phase must be done in a region (S-11); the longest matching prefix applies."""

    __tablename__ = "phase_deadlines"

    phase: Mapped[str] = mapped_column(String(16), primary_key=True)
    region_prefix: Mapped[str] = mapped_column(String(12), primary_key=True)
    due_at: Mapped[datetime] = mapped_column()
    set_by: Mapped[str] = mapped_column(String(32), default="")
    set_at: Mapped[datetime] = mapped_column()


class ImportedDataset(Base):
    """A data set received from the level below (controller/records/datasets.py), once per content."""

    __tablename__ = "imported_datasets"

    dataset_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    area: Mapped[str] = mapped_column(String(12))
    source: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(12))
    records: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column()
    imported_at: Mapped[datetime] = mapped_column()


class ImportedRecord(Base):
    """An approved record that came up in a data set; kept apart from ``records`` because no
    device of ours sent it."""

    __tablename__ = "imported_records"

    record_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("imported_datasets.dataset_id"), index=True)
    township_code: Mapped[str] = mapped_column(String(12), index=True)
    category: Mapped[str] = mapped_column(String(40))
    id_number: Mapped[str] = mapped_column(String(18))
    content_hash: Mapped[str] = mapped_column(String(64))
    approved_level: Mapped[str] = mapped_column(String(12))
    payload: Mapped[dict[str, Any]] = mapped_column()


class DepartmentExtract(Base):
    """A department's extract as imported (controller/comparison/extracts.py): once per content,
    named by the SHA-256 of its department, region and accepted rows."""

    __tablename__ = "department_extracts"

    extract_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    department: Mapped[str] = mapped_column(String(24), index=True)
    region_prefix: Mapped[str] = mapped_column(String(12), default="")
    file_name: Mapped[str] = mapped_column(String(300))
    rows: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    imported_by: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(index=True)


class DepartmentExtractRow(Base):
    """One accepted row of an extract (``muster.departments.DepartmentPerson``)."""

    __tablename__ = "department_extract_rows"

    extract_id: Mapped[str] = mapped_column(
        ForeignKey("department_extracts.extract_id"), primary_key=True
    )
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    id_number: Mapped[str] = mapped_column(String(32), default="")
    id_valid: Mapped[bool] = mapped_column(Boolean, default=False)
    sex: Mapped[str] = mapped_column(String(1))
    birth_date: Mapped[str] = mapped_column(String(10))
    address: Mapped[str] = mapped_column(Text, default="")
    township_code: Mapped[str] = mapped_column(String(12), default="")
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ComparisonRun(Base):
    """One comparison of an extract with the collected records: who ran it, when, on what."""

    __tablename__ = "comparison_runs"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    department: Mapped[str] = mapped_column(String(24), index=True)
    region_prefix: Mapped[str] = mapped_column(String(12), default="")
    extract_id: Mapped[str] = mapped_column(ForeignKey("department_extracts.extract_id"))
    collected_source: Mapped[str] = mapped_column(String(300))
    engine: Mapped[str] = mapped_column(String(8))
    run_by: Mapped[str] = mapped_column(String(64))
    run_at: Mapped[datetime] = mapped_column(index=True)
    department_rows: Mapped[int] = mapped_column(Integer)
    collected_rows: Mapped[int] = mapped_column(Integer)
    linked_exact: Mapped[int] = mapped_column(Integer)
    linked_probabilistic: Mapped[int] = mapped_column(Integer)
    problems: Mapped[int] = mapped_column(Integer)
    missing: Mapped[int] = mapped_column(Integer)
    deaths: Mapped[int] = mapped_column(Integer)
    out_dir: Mapped[str] = mapped_column(String(300), default="")


class ComparisonFinding(Base):
    """A problem (a field disagrees) or a missing person found by a run, with the township that
    owns the person: what an admin turns into a task for that township's devices. ``status``
    is open / sent / closed / disputed."""

    __tablename__ = "comparison_findings"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[int] = mapped_column(ForeignKey("comparison_runs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # problem | missing
    township_code: Mapped[str] = mapped_column(String(12), default="", index=True)
    id_number: Mapped[str] = mapped_column(String(32), default="")
    name: Mapped[str] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(32), default="")
    collected_value: Mapped[str] = mapped_column(Text, default="")
    department_value: Mapped[str] = mapped_column(Text, default="")
    department: Mapped[str] = mapped_column(String(24))
    match_method: Mapped[str] = mapped_column(String(16), default="")
    match_score: Mapped[float | None] = mapped_column(Float, default=None)
    record_id: Mapped[str | None] = mapped_column(String(40), default=None)
    status: Mapped[str] = mapped_column(String(10), default="open", index=True)
    status_at: Mapped[datetime] = mapped_column()


class DeceasedPerson(Base):
    """A person the funeral records show dead (S-23): the date, where it came from, and where the
    payment stop stands. The person's records are never deleted."""

    __tablename__ = "deceased_people"

    id_number: Mapped[str] = mapped_column(String(18), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    township_code: Mapped[str] = mapped_column(String(12), default="", index=True)
    death_date: Mapped[str] = mapped_column(String(10))
    run_id: Mapped[int] = mapped_column(ForeignKey("comparison_runs.id"))
    recorded_at: Mapped[datetime] = mapped_column()
    payment_stop: Mapped[str] = mapped_column(String(10), default="pending", index=True)


class Release(Base):
    """A software release the controller verified and stored (controller/releases/store.py);
    the artifact's parts are under ``DATA_DIR/releases/<version>/``."""

    __tablename__ = "releases"

    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    profiles: Mapped[list[str]] = mapped_column(JSON)
    minimum_version: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(16))
    manifest: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    total_size: Mapped[int] = mapped_column(BigInteger)
    added_at: Mapped[datetime] = mapped_column()


class Rollout(Base):
    """A release targeted at a region prefix and profiles, in waves of a percentage of the
    devices each (controller/releases/rollouts.py)."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    version: Mapped[str] = mapped_column(ForeignKey("releases.version"), index=True)
    region_prefix: Mapped[str] = mapped_column(String(12))
    profiles: Mapped[list[str]] = mapped_column(JSON)
    waves: Mapped[list[float]] = mapped_column(JSON)
    current_wave: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), index=True)
    state_reason: Mapped[str] = mapped_column(String(300), default="")
    soak_s: Mapped[int] = mapped_column(Integer)
    health_window_s: Mapped[int] = mapped_column(Integer)
    failure_threshold: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column()
    wave_started_at: Mapped[datetime] = mapped_column()


class RolloutDevice(Base):
    """Where one device is in one rollout: its wave and the last step it reported."""

    __tablename__ = "rollout_devices"

    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id"), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    wave: Mapped[int] = mapped_column(Integer, index=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str] = mapped_column(String(300), default="")
    updated_at: Mapped[datetime | None] = mapped_column(default=None)
    healthy_at: Mapped[datetime | None] = mapped_column(default=None)


class UpdateEvent(Base):
    """A device's update history: every step it reported, as it reported it."""

    __tablename__ = "update_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    rollout_id: Mapped[int | None] = mapped_column(Integer, default=None)
    version: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(300), default="")
    running_version: Mapped[str] = mapped_column(String(32), default="")
    at: Mapped[datetime] = mapped_column()


class Department(Base):
    """A department's system that handles one S-30 item in a region (controller/applications):
    where deliveries go, the secret they are signed with, and where applicants are sent."""

    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(200))
    region_prefix: Mapped[str] = mapped_column(String(12), default="")
    place: Mapped[str] = mapped_column(String(200), default="")
    overdue_days: Mapped[int] = mapped_column(Integer, default=5)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column()


class Application(Base):
    """One "leaving the army" application: the one form's fields and the items chosen."""

    __tablename__ = "applications"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(12), default="draft", index=True)
    items: Mapped[list[str]] = mapped_column(JSON)
    fields: Mapped[dict[str, Any]] = mapped_column()
    township: Mapped[str] = mapped_column(String(12), default="", index=True)
    entered_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    submitted_at: Mapped[datetime | None] = mapped_column(default=None)


class ApplicationMaterial(Base):
    """A material uploaded once for an application and reused by every item that needs it."""

    __tablename__ = "application_materials"

    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(40))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_at: Mapped[datetime] = mapped_column()


class ApplicationItem(Base):
    """One item of an application at its department: where it stands and what to tell."""

    __tablename__ = "application_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"), index=True)
    code: Mapped[str] = mapped_column(String(20))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    message: Mapped[str] = mapped_column(String(500), default="")
    wanted: Mapped[list[str]] = mapped_column(JSON, default=list)
    appointment_at: Mapped[datetime | None] = mapped_column(default=None)
    place: Mapped[str] = mapped_column(String(200), default="")
    bring: Mapped[list[str]] = mapped_column(JSON, default=list)
    due_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column()


class ItemEvent(Base):
    """An item's history: every state it entered, who moved it and what was said."""

    __tablename__ = "application_item_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    item_id: Mapped[int] = mapped_column(ForeignKey("application_items.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(String(500), default="")
    at: Mapped[datetime] = mapped_column()


class Delivery(Base):
    """The outbox: one signed delivery of an item to its department, written in the same
    transaction as the item. ``id`` is its webhook-id and ``body`` its exact bytes, so every
    resend is the same delivery."""

    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("application_items.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    last_error: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_deliveries_due", "state", "next_attempt_at"),)


class SeenCallback(Base):
    """A department's callback already applied, by its webhook-id: a resend is answered as
    before and changes nothing."""

    __tablename__ = "seen_callbacks"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    body_sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(index=True)


class LoginLockout(Base):
    """Wrong-password counters of one admin name (``user:NAME``) or one address
    (``addr:IP``), and the lockout they led to (controller/admin/login_guard.py). In the
    database so a restart does not forget them and every replica counts the same."""

    __tablename__ = "login_lockouts"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime]
    locked_until: Mapped[datetime | None]
    lockouts: Mapped[int] = mapped_column(Integer, default=0)


class ConfirmationCampaign(Base):
    """One year's annual confirmation in one county (S-20..S-23): its phases' dates
    (``muster.confirmation.Phases.to_json``) and who opened it."""

    __tablename__ = "confirmation_campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    year: Mapped[int] = mapped_column(Integer)
    county_code: Mapped[str] = mapped_column(String(6), index=True)
    phases: Mapped[dict[str, Any]] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column()

    __table_args__ = (Index("ux_confirmation_campaign", "year", "county_code", unique=True),)


class ConfirmationSubject(Base):
    """A pension receiver in a campaign (from the payment roll) and where the confirmation stands:
    status, the last confirmation (channel, when, who, device), the notice and stop, the
    restoration with its months owed, a death with its over-payment and what was recovered."""

    __tablename__ = "confirmation_subjects"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("confirmation_campaigns.id"), primary_key=True
    )
    id_number: Mapped[str] = mapped_column(String(18), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    township_code: Mapped[str] = mapped_column(String(12), index=True)
    birth_date: Mapped[str] = mapped_column(String(10))
    age_band: Mapped[str] = mapped_column(String(8))
    category: Mapped[str] = mapped_column(String(32))
    monthly_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="to_confirm", index=True)
    status_at: Mapped[datetime] = mapped_column()
    visit_planned: Mapped[bool] = mapped_column(Boolean, default=False)
    channel: Mapped[str] = mapped_column(String(16), default="")
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    confirmed_by: Mapped[str] = mapped_column(String(64), default="")
    confirmed_device: Mapped[str] = mapped_column(String(40), default="")
    face_result: Mapped[str] = mapped_column(String(12), default="")
    phone: Mapped[str] = mapped_column(String(20), default="")
    noticed_on: Mapped[str | None] = mapped_column(String(10), default=None)
    stop_from: Mapped[str | None] = mapped_column(String(10), default=None)
    restored_on: Mapped[str | None] = mapped_column(String(10), default=None)
    months_owed: Mapped[int] = mapped_column(Integer, default=0)
    death_date: Mapped[str | None] = mapped_column(String(10), default=None)
    death_source: Mapped[str] = mapped_column(String(16), default="")
    overpaid_months: Mapped[int] = mapped_column(Integer, default=0)
    overpaid_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    recovered_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class ConfirmationEvent(Base):
    """Every step of a subject, as it happened: confirmations (channel, who, device, face
    result), notices, contact attempts, stops, restorations, deaths, recoveries."""

    __tablename__ = "confirmation_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    campaign_id: Mapped[int] = mapped_column(ForeignKey("confirmation_campaigns.id"), index=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(20))
    status_from: Mapped[str] = mapped_column(String(16), default="")
    status_to: Mapped[str] = mapped_column(String(16), default="")
    channel: Mapped[str] = mapped_column(String(16), default="")
    actor: Mapped[str] = mapped_column(String(64), default="")
    device_id: Mapped[str] = mapped_column(String(40), default="")
    face_result: Mapped[str] = mapped_column(String(12), default="")
    face_score: Mapped[float | None] = mapped_column(Float, default=None)
    note: Mapped[str] = mapped_column(Text, default="")
    source_id: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)


class SelfServiceAttempt(Base):
    """One try at the online self-service page, accepted or refused: from where, for which
    number as typed, the outcome, and for an accepted one the selfie awaiting its face check."""

    __tablename__ = "self_service_attempts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(index=True)
    address: Mapped[str] = mapped_column(String(64))
    id_number: Mapped[str] = mapped_column(String(32), default="", index=True)
    phone: Mapped[str] = mapped_column(String(20), default="")
    outcome: Mapped[str] = mapped_column(String(24), index=True)
    campaign_id: Mapped[int | None] = mapped_column(Integer, default=None)
    selfie: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    selfie_sha256: Mapped[str] = mapped_column(String(64), default="")
    selfie_type: Mapped[str] = mapped_column(String(16), default="")
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_by: Mapped[str] = mapped_column(String(64), default="")
    resolution: Mapped[str] = mapped_column(String(300), default="")
    # The face check (controller/confirmation/face_check.py): dlib's distance (lower is more
    # alike), the threshold it was judged by, the reason codes, and the reference it used
    # (``record:<id>`` of the photo on file).
    face_score: Mapped[float | None] = mapped_column(Float, default=None)
    face_threshold: Mapped[float | None] = mapped_column(Float, default=None)
    face_reasons: Mapped[str] = mapped_column(String(200), default="", server_default="")
    face_reference: Mapped[str] = mapped_column(String(60), default="", server_default="")


class SelfServiceThrottle(Base):
    """Self-service tries of one address (``addr:IP``) or one ID number (``id:NUMBER``) in the
    current window: in the database so every replica counts the same and a restart forgets
    nothing."""

    __tablename__ = "self_service_throttles"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    window_start: Mapped[datetime] = mapped_column()
    count: Mapped[int] = mapped_column(Integer, default=0)


class SpotCheck(Base):
    """A spot check's random sample: the seed, the population it was drawn from and the people
    drawn, so an auditor can replay the draw."""

    __tablename__ = "confirmation_spot_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("confirmation_campaigns.id"), index=True)
    seed: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(Integer)
    population: Mapped[list[str]] = mapped_column(JSON)
    sample: Mapped[list[str]] = mapped_column(JSON)
    drawn_by: Mapped[str] = mapped_column(String(64), default="")
    drawn_at: Mapped[datetime] = mapped_column()


class HardshipCase(Base):
    """A person still in difficulty after payment (S-23): the measures, who is responsible."""

    __tablename__ = "hardship_cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("confirmation_campaigns.id"), index=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    township_code: Mapped[str] = mapped_column(String(12), index=True)
    situation: Mapped[str] = mapped_column(Text)
    measures: Mapped[str] = mapped_column(Text)
    responsible: Mapped[str] = mapped_column(String(64))
    opened_by: Mapped[str] = mapped_column(String(64), default="")
    opened_at: Mapped[datetime] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column(default=None)


class HardshipFollowUp(Base):
    """A follow-up of a hardship case: when, by whom, what was found or done."""

    __tablename__ = "hardship_follow_ups"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    case_id: Mapped[int] = mapped_column(ForeignKey("hardship_cases.id"), index=True)
    at: Mapped[datetime] = mapped_column()
    by: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)


class ConfirmationWeeklyFile(Base):
    """A Friday's weekly-report workbook written for a campaign: once per campaign and Friday,
    whichever replica's job got there first."""

    __tablename__ = "confirmation_weekly_files"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("confirmation_campaigns.id"), primary_key=True
    )
    friday: Mapped[str] = mapped_column(String(10), primary_key=True)
    path: Mapped[str] = mapped_column(String(500))
    generated_at: Mapped[datetime] = mapped_column()


class CentreTask(Base):
    """A task for a township from a comparison (S-10): one person's problem data or a missing
    person, sent to the township's devices in Health until the person's new record arrives
    (``closed``, with that record) or a clerk answers that the department is wrong
    (``disputed``, with the reason). ``finding_ids`` are the comparison findings it carries."""

    __tablename__ = "centre_tasks"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[int] = mapped_column(ForeignKey("comparison_runs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # problem | missing
    township_code: Mapped[str] = mapped_column(String(12), index=True)
    id_number: Mapped[str] = mapped_column(String(32), default="")
    name: Mapped[str] = mapped_column(String(64))
    department: Mapped[str] = mapped_column(String(24))
    details: Mapped[dict[str, Any]] = mapped_column()  # differences, person row, finding ids
    status: Mapped[str] = mapped_column(String(10), default="sent", index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_record_id: Mapped[str | None] = mapped_column(String(40), default=None)
    answer_reason: Mapped[str] = mapped_column(Text, default="")
    answered_by: Mapped[str] = mapped_column(String(64), default="")

    __table_args__ = (Index("ix_centre_tasks_township_person", "township_code", "id_number"),)
