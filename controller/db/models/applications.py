"""S-30 one application: departments, applications with their materials and items, item
events, deliveries and the callbacks seen (``controller.applications``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models.base import Base

__all__ = [
    "Application",
    "ApplicationItem",
    "ApplicationMaterial",
    "Delivery",
    "Department",
    "ItemEvent",
    "SeenCallback",
]


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
