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

The counters live in the database (``login_lockouts``), so a restart forgets no lockout and
every replica behind a load balancer counts the same failures; the times are the injected
clock's. The lockout's first length is a setting (``admin_lockout_s``). A row is forgotten
``FORGET_AFTER`` after its last lockout ended (or, never locked, after its first failure), so
names a stranger made up do not pile up for ever; the pruning runs with the failures, at most
once per ``PRUNE_EVERY`` per process.

Errors::

    MusterError
    └── LoginRefused           (this module) a login not even tried
        ├── LoginLocked        the name or the address is locked; says until when
        └── LoginBusy          every password worker is taken; try again in a moment
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import LoginLockout
from muster.clock import CAMPAIGN_TZ, Clock
from muster.errors import MusterError

__all__ = [
    "ADDRESS_FAILURES",
    "ADDRESS_WINDOW",
    "FORGET_AFTER",
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
FORGET_AFTER = LOCKOUT_MAX
PRUNE_EVERY = timedelta(minutes=10)


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


def _key(kind: str, value: str) -> str:
    return f"{kind}:{value}"[:80]


class LoginThrottle:
    """Failed-login counters per name and per address, and the lockouts they lead to, in the
    ``login_lockouts`` table. Every change is one conditional UPDATE, so replicas counting
    the same name at once neither lose a failure nor lock it twice. Blocking (database):
    call from a worker thread."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        *,
        user_failures: int = USER_FAILURES,
        address_failures: int = ADDRESS_FAILURES,
        address_window: timedelta = ADDRESS_WINDOW,
        lockout: timedelta = LOCKOUT,
        lockout_max: timedelta = LOCKOUT_MAX,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.user_failures = user_failures
        self.address_failures = address_failures
        self.address_window = address_window
        self.lockout = lockout
        self.lockout_max = lockout_max
        self._pruned_at: datetime | None = None

    def check(self, username: str, address: str) -> None:
        """LoginLocked when the name or the address may not try now."""
        now = self.clock.now()
        keys = {_key("user", username): "该账号", _key("addr", address): "本机地址"}
        with self.sessions() as session:
            rows = session.scalars(select(LoginLockout).where(LoginLockout.key.in_(keys)))
            for row in rows:
                if row.locked_until is not None and now < row.locked_until:
                    raise self._locked(keys[row.key], row.locked_until - now)

    def failed(self, username: str, address: str) -> LoginLocked | None:
        """Count a wrong password; the lockout it starts, if it starts one."""
        now = self.clock.now()
        with self.sessions.begin() as session:
            if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
                self.prune(session, now)
            locked = self._count(session, _key("user", username), now, self.user_failures, None)
            place = self._count(
                session,
                _key("addr", address),
                now,
                self.address_failures,
                self.address_window,
            )
        if locked is not None:
            return self._locked("该账号", locked)
        return self._locked("本机地址", place) if place is not None else None

    def prune(self, session: Session, now: datetime) -> int:
        """Delete the rows nothing depends on any more: not locked now, and quiet for
        ``FORGET_AFTER``. Returns how many went."""
        row = LoginLockout.__table__.c
        cutoff = now - FORGET_AFTER
        gone = session.execute(
            delete(LoginLockout).where(func.coalesce(row.locked_until, row.window_start) < cutoff)
        )
        self._pruned_at = now
        return int(getattr(gone, "rowcount", 0) or 0)

    def succeeded(self, username: str) -> None:
        """A right password: the name starts again from nothing (its address does not)."""
        with self.sessions.begin() as session:
            session.execute(delete(LoginLockout).where(LoginLockout.key == _key("user", username)))

    def _count(
        self,
        session: Session,
        key: str,
        now: datetime,
        limit: int,
        window: timedelta | None,
    ) -> timedelta | None:
        """One more failure for ``key``; the lockout's length if this one starts it."""
        if session.get(LoginLockout, key) is None:
            try:
                with session.begin_nested():
                    session.add(LoginLockout(key=key, failures=0, window_start=now, lockouts=0))
            except IntegrityError:
                pass  # another replica added it first; count on its row
        row = LoginLockout.__table__.c
        if window is not None:  # the address's window ran out: start a new one
            session.execute(
                update(LoginLockout)
                .where(row.key == key, row.window_start <= now - window)
                .values(failures=0, window_start=now)
            )
        session.execute(
            update(LoginLockout).where(row.key == key).values(failures=row.failures + 1)
        )
        failures, lockouts = session.execute(
            select(row.failures, row.lockouts).where(row.key == key)
        ).one()
        if failures < limit:
            return None
        length = min(self.lockout * 2**lockouts, self.lockout_max)
        started = session.execute(
            update(LoginLockout)
            .where(row.key == key, row.lockouts == lockouts, row.failures >= limit)
            .values(locked_until=now + length, lockouts=lockouts + 1, failures=0)
        )
        return length if getattr(started, "rowcount", 0) else None

    def _locked(self, what: str, remaining: timedelta) -> LoginLocked:
        seconds = remaining.total_seconds()
        until = (self.clock.now() + remaining).astimezone(CAMPAIGN_TZ)
        minutes = max(1, round(seconds / 60))
        return LoginLocked(
            f"{what}密码错误次数过多，已被锁定约 {minutes} 分钟，"
            f"请于 {until:%Y-%m-%d %H:%M}（北京时间）之后再试",
            retry_after_s=max(1, int(seconds + 0.999)),
        )
