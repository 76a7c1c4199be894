"""What devices report and are told: events, state changes, alerts, commands and fleet samples
(``controller.fleet``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models.base import Base

__all__ = ["Alert", "Command", "DeviceEvent", "DeviceStateChange", "FleetSample"]


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
    # An admin's handling of it (controller/fleet/alert_actions.py); the rules never touch these.
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    acknowledged_by: Mapped[str] = mapped_column(String(32), default="", server_default="")
    ack_note: Mapped[str] = mapped_column(String(300), default="", server_default="")
    assigned_at: Mapped[datetime | None] = mapped_column(default=None)
    assigned_to: Mapped[str] = mapped_column(String(32), default="", server_default="")
    assigned_by: Mapped[str] = mapped_column(String(32), default="", server_default="")


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
