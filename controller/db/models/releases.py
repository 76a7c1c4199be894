"""Software releases, rollouts in waves, the devices of each wave and their update events
(``controller.releases``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models.base import Base

__all__ = ["Release", "Rollout", "RolloutDevice", "UpdateEvent", "UpdateWindow"]


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
    # The admin forced it: devices inside their region's working hours take it too.
    ignore_working_hours: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


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
    # Which try this is (1 first); a transient failure waits for ``next_attempt_at`` to retry.
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)


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


class UpdateWindow(Base):
    """A region's working hours, when updates wait (controller/releases/working_hours.py)."""

    __tablename__ = "update_windows"

    region_prefix: Mapped[str] = mapped_column(String(12), primary_key=True)
    start_minute: Mapped[int] = mapped_column(Integer)
    end_minute: Mapped[int] = mapped_column(Integer)
    utc_offset_minutes: Mapped[int] = mapped_column(Integer, default=480, server_default="480")
