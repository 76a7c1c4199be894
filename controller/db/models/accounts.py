"""Who works at the centre and on the consoles: clerks, admins, their sessions, denials and
lockouts (``controller.accounts``, ``controller.admin``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models.base import Base

__all__ = ["AccessDenial", "AdminSession", "AdminUser", "Clerk", "LoginLockout"]


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
