"""Clerk accounts on the device: the township's list as the controller last sent it, and the
failed-login counts that lock an account for a while (both kept on disk, so neither a restart
nor kill -9 resets a lockout). Passwords are checked against the controller's scrypt hash, so
the console works with no network at all (home visits, S-05).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from muster.clock import Clock
from muster.errors import MusterError
from muster.passwords import verify_password
from muster.v1 import data_pb2

MAX_FAILURES = 5
LOCKOUT = dt.timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Clerk:
    username: str
    display_name: str


class LoginRefused(MusterError):
    """The console refuses a login; ``reason`` is stable, the message is for the clerk."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _write_json(path: Path, data: Any) -> None:
    """Atomically and durably: a crash leaves the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    tmp.chmod(0o600)
    tmp.replace(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ClerkAccounts:
    def __init__(
        self,
        directory: Path,
        *,
        clock: Clock,
        verify: Callable[[str, str], bool] = verify_password,
    ) -> None:
        self._accounts_path = directory / "clerks.json"
        self._failures_path = directory / "login_failures.json"
        self._clock = clock
        self._verify = verify
        self._lock = threading.Lock()

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}
        return data

    def replace(self, accounts: Iterable[data_pb2.ClerkAccount]) -> bool:
        """Take the township's list from a Health answer; True when it changed."""
        fresh = {
            a.username: {
                "display_name": a.display_name,
                "password_hash": a.password_hash,
                "disabled": a.disabled,
            }
            for a in accounts
        }
        with self._lock:
            if fresh == self._read(self._accounts_path):
                return False
            _write_json(self._accounts_path, fresh)
        return True

    def count(self) -> int:
        return sum(1 for a in self._read(self._accounts_path).values() if not a.get("disabled"))

    def display_name(self, username: str) -> str:
        account = self._read(self._accounts_path).get(username)
        return str(account["display_name"]) if account else username

    def authenticate(self, username: str, password: str) -> Clerk:
        """The clerk, or ``LoginRefused`` (unknown, disabled, locked, wrong password)."""
        now = self._clock.now()
        username = username.strip()
        with self._lock:
            accounts = self._read(self._accounts_path)
            if not accounts:
                raise LoginRefused(
                    "no_accounts",
                    "本机还没有工作人员账号：请让中心用 muster controller clerk add 添加，"
                    "设备联网后自动获得",
                )
            failures = self._read(self._failures_path)
            entry = failures.get(username, {"count": 0, "locked_until": None})
            locked_until = entry.get("locked_until")
            if locked_until and now < dt.datetime.fromisoformat(locked_until):
                minutes = (
                    int((dt.datetime.fromisoformat(locked_until) - now).total_seconds() // 60) + 1
                )
                raise LoginRefused(
                    "locked", f"密码错误次数过多，账号已锁定，请 {minutes} 分钟后再试或联系管理员"
                )
            account = accounts.get(username)
            if account is not None and account.get("disabled"):
                raise LoginRefused("disabled", "该账号已被停用，请联系管理员")
            if account is None or not self._verify(password, str(account["password_hash"])):
                count = int(entry.get("count", 0)) + 1
                if count >= MAX_FAILURES:
                    failures[username] = {"count": 0, "locked_until": (now + LOCKOUT).isoformat()}
                    _write_json(self._failures_path, failures)
                    raise LoginRefused(
                        "locked",
                        f"连续 {MAX_FAILURES} 次密码错误，账号锁定 {int(LOCKOUT.total_seconds() // 60)} 分钟",
                    )
                failures[username] = {"count": count, "locked_until": None}
                _write_json(self._failures_path, failures)
                raise LoginRefused(
                    "wrong",
                    f"用户名或密码错误（还可尝试 {MAX_FAILURES - count} 次）",
                )
            if username in failures:
                del failures[username]
                _write_json(self._failures_path, failures)
            return Clerk(username=username, display_name=str(account["display_name"]))
