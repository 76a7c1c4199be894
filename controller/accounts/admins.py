"""Central admin accounts: roles, the region prefix each acts in, passwords, browser sessions and
API tokens, and the log of refused requests.

The campaign runs level by level (S-09, S-11): township → county → city → province → ministry.
An admin's region prefix is the code of their own area (``37`` a province, ``370902`` a county,
``""`` the whole country); everything they see, export or command must lie under it. What a role
may do is a table, not a chain of ifs (``PERMISSIONS``). Time is a parameter everywhere.

Errors::

    MusterError
    └── AccessError            (this module)
        ├── LoginRequired      no session cookie or token, or it expired
        ├── AccessDenied       logged in, but outside the region or beyond the role, or a
        │                      cross-site request (controller/admin/csrf.py)
        └── UnknownPage        logged in, but no such page (answered 404)
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from controller.db.models import AccessDenial, AdminSession, AdminUser
from muster.errors import ConfigError, MusterError, NotFoundError
from muster.passwords import PasswordPolicyError, check_password_policy, verify_password

log = structlog.get_logger(__name__)

__all__ = [
    "ACTIONS",
    "PERMISSIONS",
    "ROLES",
    "AccessDenied",
    "AccessError",
    "AdminIdentity",
    "LoginRequired",
    "UnknownPage",
    "add_admin",
    "hash_admin_password",
    "issue_token",
    "login",
    "logout",
    "record_denial",
    "resolve_session",
    "resolve_token",
]


class AccessError(MusterError):
    """An admin request was refused."""


class LoginRequired(AccessError):
    """No valid session or token came with the request."""


class AccessDenied(AccessError):
    """The admin is logged in but may not do this here; the message says why, in Chinese."""


class UnknownPage(AccessError):
    """The admin is logged in but asked for a page (or a method on it) the app does not have."""


ROLES: dict[str, str] = {
    "ministry": "部级",
    "province": "省级",
    "city": "市级",
    "county": "县级",
    "township": "乡镇",
    "auditor": "只读审计",
    "technician": "技术支持",
}

# What each thing an admin can do is called, for the role table and for messages.
ACTIONS: dict[str, str] = {
    "read": "查看",
    "export": "导出",
    "command": "管理设备（命令、撤销、注册码）",
    "declare": "申报本乡镇采集完成",
    "review": "逐条审核、退回或通过记录",
    "forward": "接收下级已审核的数据",
    "deadline": "设置阶段截止时间",
    "dataset": "导出或导入上报数据集",
    "apply": "在服务中心为申请人代办军人退役一件事",
    "accounts": "管理本辖区的下级管理员和乡镇用户",
}

PERMISSIONS: dict[str, frozenset[str]] = {
    "ministry": frozenset(
        {"read", "export", "command", "forward", "deadline", "dataset", "accounts"}
    ),
    "province": frozenset(
        {"read", "export", "command", "forward", "deadline", "dataset", "accounts"}
    ),
    "city": frozenset({"read", "export", "command", "forward", "deadline", "dataset", "accounts"}),
    "county": frozenset(
        {"read", "export", "command", "review", "deadline", "dataset", "apply", "accounts"}
    ),
    "township": frozenset({"read", "export", "declare", "apply"}),
    "auditor": frozenset({"read", "export"}),
    "technician": frozenset({"read", "command"}),
}

# The region prefix a role is given: its own level's code. Auditors and technicians may be
# placed at any level.
PREFIX_LENGTHS: dict[str, tuple[int, ...]] = {
    "ministry": (0,),
    "province": (2,),
    "city": (4,),
    "county": (6,),
    "township": (9,),
    "auditor": (0, 2, 4, 6, 9),
    "technician": (0, 2, 4, 6, 9),
}

# Browser sessions end after this long without a request, and in any case after the second.
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)

# scrypt at 2**17 × 8 × 1 (128 MiB, about half a second here): an admin logs in a few times a
# day, so the cost falls on whoever tries passwords offline. Same encoding as the clerks'
# hashes, so ``verify_password`` reads both.
_N, _R, _P, _LEN = 2**17, 8, 1, 32
_USERNAME = re.compile(r"[a-z][a-z0-9_.-]{2,31}")
TOKEN_PREFIX = "mst_"  # noqa: S105 - marks a token in logs and configs; not a secret


@dataclass(frozen=True, slots=True)
class AdminIdentity:
    username: str
    role: str
    prefix: str

    def can(self, action: str) -> bool:
        return action in PERMISSIONS.get(self.role, frozenset())

    def require(self, action: str) -> None:
        if not self.can(action):
            raise AccessDenied(
                f"{ROLES.get(self.role, self.role)}账号不能{ACTIONS.get(action, action)}"
            )

    def covers(self, code: str) -> bool:
        """Whether a region or township code lies inside this admin's area."""
        return code.startswith(self.prefix)

    def require_covers(self, code: str, what: str = "") -> None:
        if not self.covers(code):
            raise AccessDenied(
                f"{what or code} 不在您的管辖范围（{self.prefix or '全国'}）内，不能访问"
            )

    def narrow(self, requested: str) -> str:
        """The region to show for a requested prefix: the request itself when it lies inside
        our area, our whole area when the request is wider (or empty), refused otherwise."""
        if requested.startswith(self.prefix):
            return requested
        if self.prefix.startswith(requested):
            return self.prefix
        raise AccessDenied(f"地区 {requested} 不在您的管辖范围（{self.prefix or '全国'}）内")


def hash_admin_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_LEN, maxmem=256 * 1024 * 1024
    )
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def _digest(secret: str) -> str:
    # Tokens and session ids are 256 random bits: a fast hash is enough to keep the database
    # copy useless to a reader, unlike passwords.
    return hashlib.sha256(secret.encode()).hexdigest()


def check_region(role: str, prefix: str) -> str:
    """The prefix a role may be given, or ConfigError saying what to write."""
    if role not in ROLES:
        raise ConfigError(f"未知角色 {role!r}；可选：{', '.join(ROLES)}")
    prefix = prefix.strip()
    if not re.fullmatch(r"\d{0,12}", prefix):
        raise ConfigError(f"地区代码 {prefix!r} 应为数字，如 37、3709、370902、370902001")
    lengths = PREFIX_LENGTHS[role]
    if len(prefix) not in lengths:
        wanted = "、".join(f"{n}位" if n else "空（全国）" for n in lengths)
        raise ConfigError(f"{ROLES[role]}账号的地区代码应为 {wanted}，而不是 {prefix!r}")
    return prefix


def add_admin(
    session: Session,
    *,
    username: str,
    role: str,
    region: str,
    password: str,
    now: datetime,
    password_hash: str | None = None,
) -> AdminUser:
    """Create an admin, or reset an existing one's role, region and password (and re-enable
    the account); every open session of that admin ends."""
    if not _USERNAME.fullmatch(username):
        raise ConfigError("用户名须为3–32位小写字母、数字或 _ . -，以字母开头，如 wang.fang")
    prefix = check_region(role, region)
    try:
        check_password_policy(password)
    except PasswordPolicyError as exc:
        raise ConfigError(str(exc)) from None
    user = session.get(AdminUser, username)
    if user is None:
        user = AdminUser(username=username, created_at=now)
        session.add(user)
    else:
        session.execute(delete(AdminSession).where(AdminSession.username == username))
    user.role = role
    user.region_prefix = prefix
    user.password_hash = password_hash or hash_admin_password(password)
    user.disabled_at = None
    return user


def disable_admin(session: Session, username: str, now: datetime) -> None:
    user = session.get(AdminUser, username)
    if user is None:
        raise NotFoundError(f"没有管理员 {username}")
    user.disabled_at = now
    user.token_hash = None
    session.execute(delete(AdminSession).where(AdminSession.username == username))


def issue_token(session: Session, username: str, now: datetime) -> str:
    """A new API token for scripts (``Authorization: Bearer ...``); the previous one stops
    working. Only its hash is stored, so it is shown once."""
    user = session.get(AdminUser, username)
    if user is None or user.disabled_at is not None:
        raise NotFoundError(f"没有可用的管理员 {username}；先用 muster controller admin add 创建")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user.token_hash = _digest(token)
    user.token_created_at = now
    return token


def _identity(user: AdminUser) -> AdminIdentity:
    return AdminIdentity(user.username, user.role, user.region_prefix)


def login(
    session: Session, username: str, password: str, now: datetime
) -> tuple[str, AdminIdentity]:
    """A new session cookie value for a correct password; AccessDenied otherwise (the same
    message whether the name or the password was wrong)."""
    user = session.get(AdminUser, username.strip())
    # Verify against a dummy hash for unknown names so both cases cost the same time.
    encoded = user.password_hash if user is not None else _dummy_hash()
    ok = verify_password(password, encoded)
    if user is None or not ok or user.disabled_at is not None:
        raise AccessDenied("用户名或密码错误，或账号已停用")
    cookie = secrets.token_urlsafe(32)
    session.add(
        AdminSession(
            token_hash=_digest(cookie),
            username=user.username,
            created_at=now,
            last_seen_at=now,
            expires_at=now + ABSOLUTE_TIMEOUT,
        )
    )
    session.execute(delete(AdminSession).where(AdminSession.expires_at < now))
    return cookie, _identity(user)


def logout(session: Session, cookie: str) -> None:
    session.execute(delete(AdminSession).where(AdminSession.token_hash == _digest(cookie)))


def resolve_session(session: Session, cookie: str, now: datetime) -> AdminIdentity:
    row = session.get(AdminSession, _digest(cookie))
    if row is None:
        raise LoginRequired("请先登录")
    if now >= row.expires_at or now - row.last_seen_at >= IDLE_TIMEOUT:
        session.delete(row)
        raise LoginRequired("登录已过期，请重新登录")
    user = session.get(AdminUser, row.username)
    if user is None or user.disabled_at is not None:
        raise LoginRequired("账号已停用")
    # Only write when it matters, so page views do not all turn into writes.
    if now - row.last_seen_at > timedelta(seconds=30):
        row.last_seen_at = now
    return _identity(user)


def resolve_token(session: Session, token: str) -> AdminIdentity:
    user = session.scalar(select(AdminUser).where(AdminUser.token_hash == _digest(token)))
    if user is None or user.disabled_at is not None or user.token_hash is None:
        raise LoginRequired("API 令牌无效或已被替换；用 muster controller admin token 重新生成")
    if not hmac.compare_digest(user.token_hash, _digest(token)):
        raise LoginRequired("API 令牌无效")
    return _identity(user)


def record_denial(
    session: Session, *, username: str, method: str, path: str, reason: str, now: datetime
) -> None:
    # One row per name, method and path a minute, counting the rest: a stranger repeating a
    # refused request fills no table (issue 15). A replica racing another may add a second.
    path = path[:300]
    minute = now.replace(second=0, microsecond=0)
    counted = session.execute(
        update(AccessDenial)
        .where(
            AccessDenial.username == username,
            AccessDenial.method == method,
            AccessDenial.path == path,
            AccessDenial.at >= minute,
        )
        .values(count=AccessDenial.count + 1, last_at=now, reason=reason[:300])
    )
    if not getattr(counted, "rowcount", 0):
        session.add(
            AccessDenial(at=now, username=username, method=method, path=path, reason=reason[:300])
        )
    log.warning("admin request denied", admin=username, method=method, path=path, reason=reason)


@functools.cache
def _dummy_hash() -> str:
    return hash_admin_password("not-a-password-0", salt=b"\0" * 16)
