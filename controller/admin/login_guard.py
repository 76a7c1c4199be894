"""What stands between ``POST /login`` and scrypt: a bounded pool for the hashing, and the rules
that lock a name or an address after too many wrong passwords.

scrypt at the admins' cost (2**17, 128 MiB, most of a second) must not run on the event loop:
the controller's gRPC servers and telemetry consumer share that loop, and eight login loops of
a stranger were enough to make every device's Health call miss its deadline.
:class:`PasswordWorkers` runs it on a small thread pool (hashlib releases the GIL while scrypt
works) and takes no more than a fixed number of jobs at once: when they are all taken a login
is answered "busy" straight away instead of waiting in a queue that would grow by 128 MiB a
job.

:class:`LoginThrottle` holds the rules, with the clock as a parameter (as
controller/fleet/rules.py does):

- a **name** is locked after ``USER_FAILURES`` wrong passwords in a row, for ``LOCKOUT``; each
  lockout that follows without a successful login between lasts twice as long as the last, up
  to ``LOCKOUT_MAX``. A locked name is refused before its password is looked at, the right one
  too, with the time it may try again. Names nobody has are counted and locked alike, so the
  answers cannot tell which names exist;
- an **address** is locked in the same way after ``ADDRESS_FAILURES`` wrong passwords within
  ``ADDRESS_WINDOW``, whatever names they were for: one machine cannot try a password on every
  name in turn.

The state lives in the process's memory, not in the database: it is lost when the controller
restarts (an attacker gains one more round of attempts per restart) and each replica behind a
load balancer counts on its own (at most that many rounds). Both are bounded, unlike the
attempts they replace; keeping the counters in a table is the step past that. The tables of
names and addresses are bounded too (``MAX_TRACKED``), the oldest forgotten first.

Errors::

    MusterError
    └── LoginRefused           (this module) a login not even tried
        ├── LoginLocked        the name or the address is locked; says until when
        └── LoginBusy          every password worker is taken; try again in a moment
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from muster.clock import CAMPAIGN_TZ, Clock
from muster.errors import MusterError

__all__ = [
    "ADDRESS_FAILURES",
    "ADDRESS_WINDOW",
    "LOCKOUT",
    "LOCKOUT_MAX",
    "USER_FAILURES",
    "LoginBusy",
    "LoginLocked",
    "LoginRefused",
    "LoginThrottle",
    "PasswordWorkers",
]

T = TypeVar("T")

USER_FAILURES = 5
ADDRESS_FAILURES = 20
ADDRESS_WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)
LOCKOUT_MAX = timedelta(hours=24)
MAX_TRACKED = 10_000


class LoginRefused(MusterError):
    """A login was refused before its password was checked."""

    retry_after_s: int = 1


class LoginLocked(LoginRefused):
    """Too many wrong passwords for this name or from this address; the message says when to
    try again."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LoginBusy(LoginRefused):
    """Every password worker is taken."""


class PasswordWorkers:
    """A thread pool of ``workers`` for password hashing, taking at most ``workers + waiting``
    jobs at once; one more is refused with :class:`LoginBusy` instead of queued."""

    def __init__(self, workers: int = 2, waiting: int = 2) -> None:
        if workers < 1 or waiting < 0:
            raise ValueError("PasswordWorkers needs workers >= 1 and waiting >= 0")
        self.capacity = workers + waiting
        self.jobs = 0  # how many were taken, for the tests and the curious
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="password")

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` on a worker; LoginBusy at once when ``capacity`` jobs are already taken.
        A slot is given back when the job ends in its thread, not when the caller stops
        waiting, so a client that hangs up cannot make room for more work than there is."""
        if not self._slots.acquire(blocking=False):
            raise LoginBusy("登录繁忙，请稍后再试 (too many logins at once, try again shortly)")
        try:
            job = self._pool.submit(fn)
        except BaseException:
            self._slots.release()
            raise
        self.jobs += 1
        job.add_done_callback(self._release)
        return await asyncio.wrap_future(job)

    def _release(self, _job: Future[T]) -> None:
        self._slots.release()

    def close(self) -> None:
        """Stop taking jobs; the ones running finish in their threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class _Count:
    """Failures of one name (in a row) or one address (their monotonic times, in the window)."""

    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    lockouts: int = 0


class LoginThrottle:
    """Failed-login counters per name and per address, and the lockouts they lead to."""

    def __init__(
        self,
        clock: Clock,
        *,
        user_failures: int = USER_FAILURES,
        address_failures: int = ADDRESS_FAILURES,
        address_window: timedelta = ADDRESS_WINDOW,
        lockout: timedelta = LOCKOUT,
        lockout_max: timedelta = LOCKOUT_MAX,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        self.clock = clock
        self.user_failures = user_failures
        self.address_failures = address_failures
        self.address_window_s = address_window.total_seconds()
        self.lockout_s = lockout.total_seconds()
        self.lockout_max_s = lockout_max.total_seconds()
        self.max_tracked = max_tracked
        self._users: OrderedDict[str, _Count] = OrderedDict()
        self._addresses: OrderedDict[str, _Count] = OrderedDict()

    def check(self, username: str, address: str) -> None:
        """LoginLocked when the name or the address may not try now."""
        now = self.clock.monotonic()
        for table, key, what in (
            (self._users, username, "该账号"),
            (self._addresses, address, "本机地址"),
        ):
            count = table.get(key)
            if count is not None and now < count.locked_until:
                raise self._locked(what, count.locked_until - now)

    def failed(self, username: str, address: str) -> LoginLocked | None:
        """Count a wrong password; the lockout it starts, if it starts one."""
        now = self.clock.monotonic()
        user = self._entry(self._users, username)
        user.failures.append(now)
        locked: LoginLocked | None = None
        if len(user.failures) >= self.user_failures:
            locked = self._lock(user, now, "该账号")
        place = self._entry(self._addresses, address)
        place.failures.append(now)
        while place.failures and place.failures[0] <= now - self.address_window_s:
            place.failures.popleft()
        if len(place.failures) >= self.address_failures:
            address_locked = self._lock(place, now, "本机地址")
            locked = locked or address_locked
        return locked

    def succeeded(self, username: str) -> None:
        """A right password: the name starts again from nothing (its address does not)."""
        self._users.pop(username, None)

    def _entry(self, table: OrderedDict[str, _Count], key: str) -> _Count:
        count = table.get(key)
        if count is None:
            count = table[key] = _Count()
            while len(table) > self.max_tracked:
                table.popitem(last=False)
        table.move_to_end(key)
        return count

    def _lock(self, count: _Count, now: float, what: str) -> LoginLocked:
        seconds = min(self.lockout_s * 2**count.lockouts, self.lockout_max_s)
        count.locked_until = now + seconds
        count.lockouts += 1
        count.failures.clear()
        return self._locked(what, seconds)

    def _locked(self, what: str, seconds: float) -> LoginLocked:
        until = (self.clock.now() + timedelta(seconds=seconds)).astimezone(CAMPAIGN_TZ)
        minutes = max(1, round(seconds / 60))
        return LoginLocked(
            f"{what}密码错误次数过多，已被锁定约 {minutes} 分钟，"
            f"请于 {until:%Y-%m-%d %H:%M}（北京时间）之后再试",
            retry_after_s=max(1, int(seconds + 0.999)),
        )
