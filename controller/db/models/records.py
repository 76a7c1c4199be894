"""The data: records and their attachments, the people of the initial data, slices, regions,
review events and declarations, deadlines, imported data sets, tasks for the townships."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models.base import Base

__all__ = [
    "Attachment",
    "CentreTask",
    "ImportedDataset",
    "ImportedRecord",
    "PersonRow",
    "PhaseDeadline",
    "Record",
    "Region",
    "ReviewEvent",
    "TownshipDeclaration",
    "TownshipSlice",
]


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


class Region(Base):
    """One node of the division-code tree (controller/records/region_tree.py): province, city, county,
    township. ``name_known`` is false for townships named only by their code."""

    __tablename__ = "regions"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)  # 2, 4, 6 or 9 digits
    level: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(64))
    parent: Mapped[str] = mapped_column(String(12), index=True)
    name_known: Mapped[bool] = mapped_column(Boolean, default=True)


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
