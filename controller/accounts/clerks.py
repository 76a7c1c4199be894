"""Clerk accounts for the township consoles (S-07): added and disabled at the centre, delivered
to the township's devices with every Health answer."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import Clerk, Device
from muster.errors import ConfigError, NotFoundError
from muster.passwords import PasswordPolicyError, check_password_policy, hash_password
from muster.regions import parse_township
from muster.v1 import data_pb2

__all__ = ["add_clerk", "clerk_messages", "disable_clerk", "township_clerks"]

_USERNAME = re.compile(r"[a-z][a-z0-9_.-]{2,31}")


def add_clerk(
    session: Session,
    *,
    township_code: str,
    username: str,
    display_name: str,
    password: str,
    now: datetime,
) -> Clerk:
    """Create or reset a clerk's account; raises ``ConfigError`` naming what to change."""
    try:
        township = parse_township(township_code).code
    except Exception as exc:
        raise ConfigError(
            f"乡镇代码 {township_code!r} 无效：请写12位乡镇代码，如 370902001000"
        ) from exc
    if not _USERNAME.fullmatch(username):
        raise ConfigError("用户名须为3–32位小写字母、数字或 _ . -，以字母开头，如 zhang.wei")
    if not display_name.strip():
        raise ConfigError("请填写姓名 (--display-name)，它会显示在审计记录和确认单上")
    try:
        check_password_policy(password)
    except PasswordPolicyError as exc:
        raise ConfigError(str(exc)) from None
    clerk = session.get(Clerk, (township, username))
    if clerk is None:
        clerk = Clerk(township_code=township, username=username, created_at=now)
        session.add(clerk)
    clerk.display_name = display_name.strip()
    clerk.password_hash = hash_password(password)
    clerk.updated_at = now
    clerk.disabled_at = None
    return clerk


def disable_clerk(session: Session, township_code: str, username: str, now: datetime) -> None:
    clerk = session.get(Clerk, (township_code, username))
    if clerk is None:
        raise NotFoundError(f"乡镇 {township_code} 没有用户 {username}")
    clerk.disabled_at = now
    clerk.updated_at = now


def township_clerks(session: Session, township_code: str) -> list[Clerk]:
    return list(
        session.scalars(
            select(Clerk).where(Clerk.township_code == township_code).order_by(Clerk.username)
        )
    )


def clerk_messages(session: Session, device_id: str) -> list[data_pb2.ClerkAccount]:
    """The accounts a device's console accepts: its township's clerks."""
    township = session.scalar(select(Device.township_code).where(Device.id == device_id))
    if township is None:
        return []
    return [
        data_pb2.ClerkAccount(
            username=c.username,
            display_name=c.display_name,
            password_hash=c.password_hash,
            disabled=c.disabled_at is not None,
        )
        for c in township_clerks(session, township)
    ]
