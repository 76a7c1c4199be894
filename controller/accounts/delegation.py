"""Which accounts an admin may create, reset or disable from the admin pages: clerks of a
township in their area, and admins strictly below them — placed deeper in their area, or an
auditor or technician at their own level. A county admin can thus never make a national or a
neighbouring admin, nor another county admin beside themself. The admin pages call these
before ``add_admin``/``add_clerk``; the CLI, run by the operator, is not limited by them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.accounts.admins import (
    ROLES,
    AccessDenied,
    AdminIdentity,
    add_admin,
    check_region,
    disable_admin,
)
from controller.accounts.clerks import add_clerk, disable_clerk
from controller.db.models import AdminUser, Clerk
from muster.errors import ConfigError, NotFoundError

__all__ = [
    "SIDE_ROLES",
    "admins_of_area",
    "check_may_manage",
    "clerks_of_area",
    "managed_add_admin",
    "managed_add_clerk",
    "managed_disable_admin",
    "managed_disable_clerk",
]

# Roles that may be placed at the acting admin's own level: they can do less, never more.
SIDE_ROLES = frozenset({"auditor", "technician"})


def check_may_manage(actor: AdminIdentity, role: str, region: str) -> str:
    """The region prefix of an admin ``actor`` may manage, or an error naming the field."""
    if role not in ROLES:
        raise ConfigError(f"role：未知角色 {role!r}；可选：{', '.join(ROLES)}")
    try:
        prefix = check_region(role, region)
    except ConfigError as exc:
        raise ConfigError(f"region：{exc}") from None
    if not actor.covers(prefix):
        raise AccessDenied(
            f"region：地区 {prefix or '全国'} 不在您的管辖范围（{actor.prefix or '全国'}）内"
        )
    if len(prefix) == len(actor.prefix) and role not in SIDE_ROLES:
        raise AccessDenied(
            f"role：只能管理下级管理员；在本级（{actor.prefix or '全国'}）只能设只读审计或技术支持账号"
        )
    return prefix


def managed_add_admin(
    session: Session,
    actor: AdminIdentity,
    *,
    username: str,
    role: str,
    region: str,
    password: str,
    now: datetime,
) -> AdminUser:
    """Create (or reset) an admin below ``actor``; an existing admin ``actor`` could not manage
    (a superior, a neighbour) is refused, never overwritten."""
    prefix = check_may_manage(actor, role, region)
    if username == actor.username:
        raise AccessDenied("username：不能在此修改自己的账号")
    existing = session.get(AdminUser, username)
    if existing is not None:
        check_may_manage(actor, existing.role, existing.region_prefix)
    try:
        return add_admin(
            session, username=username, role=role, region=prefix, password=password, now=now
        )
    except ConfigError as exc:
        raise ConfigError(_named(str(exc))) from None


def managed_disable_admin(
    session: Session, actor: AdminIdentity, username: str, now: datetime
) -> None:
    user = session.get(AdminUser, username)
    if user is None:
        raise NotFoundError(f"username：没有管理员 {username}")
    if username == actor.username:
        raise AccessDenied("username：不能停用自己的账号")
    check_may_manage(actor, user.role, user.region_prefix)
    disable_admin(session, username, now)


def managed_add_clerk(
    session: Session,
    actor: AdminIdentity,
    *,
    township: str,
    username: str,
    display_name: str,
    password: str,
    now: datetime,
) -> Clerk:
    if not actor.covers(township):
        raise AccessDenied(
            f"township：乡镇 {township} 不在您的管辖范围（{actor.prefix or '全国'}）内"
        )
    try:
        return add_clerk(
            session,
            township_code=township,
            username=username,
            display_name=display_name,
            password=password,
            now=now,
        )
    except ConfigError as exc:
        raise ConfigError(_named(str(exc))) from None


def managed_disable_clerk(
    session: Session, actor: AdminIdentity, township: str, username: str, now: datetime
) -> None:
    if not actor.covers(township):
        raise AccessDenied(
            f"township：乡镇 {township} 不在您的管辖范围（{actor.prefix or '全国'}）内"
        )
    disable_clerk(session, township, username, now)


def _named(message: str) -> str:
    """The account functions' message with the field it is about in front."""
    for field, words in (
        ("township", "乡镇代码"),
        ("username", "用户名"),
        ("display_name", "姓名"),
        ("password", "密码"),
        ("region", "地区代码"),
    ):
        if words in message:
            return f"{field}：{message}"
    return message


def admins_of_area(session: Session, prefix: str) -> list[AdminUser]:
    return list(
        session.scalars(
            select(AdminUser)
            .where(AdminUser.region_prefix.startswith(prefix))
            .order_by(AdminUser.region_prefix, AdminUser.username)
        )
    )


def clerks_of_area(session: Session, prefix: str) -> list[Clerk]:
    return list(
        session.scalars(
            select(Clerk)
            .where(Clerk.township_code.startswith(prefix))
            .order_by(Clerk.township_code, Clerk.username)
        )
    )
