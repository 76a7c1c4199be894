"""The one clock of a process: wall time, monotonic time and sleeping, as a parameter.

No core module reads the wall clock. A process (the edge daemon, the controller, a CLI command)
makes one :class:`SystemClock` at its outermost edge and hands it down; tests hand down a
:class:`VirtualClock` instead and move time themselves, so licence expiry, heartbeat staleness,
offline detection, code expiry, deadlines and backoff are tested without waiting (as trio's
``MockClock`` does).

The campaign runs on Beijing time: a "day" (a deadline, a birth date "after today", a weekly
report) is a day in UTC+8, which has had no daylight saving since 1991. ``now()`` is always an
aware UTC datetime; ``today()`` is the date in the campaign's zone.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Protocol, runtime_checkable

__all__ = ["CAMPAIGN_TZ", "Clock", "SystemClock", "VirtualClock", "campaign_date", "wait_for_event"]

CAMPAIGN_TZ = timezone(timedelta(hours=8), "CST")


def campaign_date(moment: datetime) -> date:
    """The campaign's calendar date of an aware ``moment``."""
    return moment.astimezone(CAMPAIGN_TZ).date()


@runtime_checkable
class Clock(Protocol):
    """What a component may ask of time. Implementations are :class:`SystemClock` and
    :class:`VirtualClock`; nothing else should need one."""

    def now(self) -> datetime:
        """Aware UTC wall time."""
        ...

    def today(self) -> date:
        """Today's date on the campaign's calendar (UTC+8)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock. Made once per process, at its entry point."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        return campaign_date(self.now())

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


class VirtualClock:
    """A clock that moves only when told to.

    ``advance(seconds)`` moves wall and monotonic time together and wakes, in deadline order,
    every sleeper whose time has come, letting each woken task run (and sleep again) before time
    moves on to the next deadline. So a loop that sleeps 30 s between heartbeats beats exactly
    ten times when the test advances 300 s, however slow the machine.

    ``set_wall`` moves the wall clock alone, as an operator changing the date does (clock
    rollback, a device whose RTC battery died); monotonic time and sleepers are untouched.
    """

    SETTLE_TIMEOUT_S = 10.0

    def __init__(self, start: datetime, *, monotonic_start: float = 1000.0) -> None:
        if start.tzinfo is None:
            raise ValueError(
                "VirtualClock needs an aware start time, e.g. datetime(..., tzinfo=UTC)"
            )
        self._wall = start.astimezone(UTC)
        self._mono = monotonic_start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._wall

    def today(self) -> date:
        return campaign_date(self._wall)

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._order), future))
        try:
            await future
        finally:
            if not future.done():
                future.cancel()

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting on this clock (cancelled ones excluded)."""
        return sum(1 for _d, _n, f in self._sleepers if not f.done())

    def next_deadline(self) -> float | None:
        """Monotonic time of the earliest sleeper, or None when nobody sleeps."""
        self._drop_cancelled()
        return self._sleepers[0][0] if self._sleepers else None

    def set_wall(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("set_wall needs an aware datetime")
        self._wall = moment.astimezone(UTC)

    def advance_now(self, seconds: float) -> None:
        """Move time by ``seconds`` without running anyone (for synchronous code and tests)."""
        if seconds < 0:
            raise ValueError("time moves forward only; use set_wall to roll the wall clock back")
        self._mono += seconds
        self._wall += timedelta(seconds=seconds)
        self._wake_due()

    async def advance(self, seconds: float, *, sleepers: int | None = None) -> None:
        """Move time by ``seconds``, stopping at every sleeper's deadline to let it run.

        A woken task that works in a thread (``asyncio.to_thread``: a database sweep) is not
        back asleep after a few turns of the loop. Give ``sleepers``, the number of tasks that
        sleep on this clock between rounds, and every step waits (in real time, at most
        ``SETTLE_TIMEOUT_S``) until that many sleep again before time moves on.
        """
        if seconds < 0:
            raise ValueError("time moves forward only; use set_wall to roll the wall clock back")
        target = self._mono + seconds
        await self._settle(sleepers)
        while (deadline := self.next_deadline()) is not None and deadline <= target:
            self._step_to(deadline)
            await self._settle(sleepers)
        self._step_to(target)
        await self._settle(sleepers)

    async def wait_for_sleepers(self, count: int, timeout_s: float | None = None) -> None:
        """Wait in real time until ``count`` tasks sleep on this clock; ``TimeoutError`` saying
        how many do when they do not within ``timeout_s``."""
        limit = self.SETTLE_TIMEOUT_S if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit
        while self.sleepers < count:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.sleepers} task(s) sleep on the virtual clock, expected {count} "
                    f"within {limit} s: is one stuck or ended?"
                )
            await asyncio.sleep(0.001)

    async def _settle(self, sleepers: int | None) -> None:
        await _settle()
        if sleepers is not None:
            await self.wait_for_sleepers(sleepers)
            await _settle()

    async def run_until_idle(self, limit_s: float = 86_400.0) -> None:
        """Jump from deadline to deadline until nobody sleeps or ``limit_s`` has passed."""
        end = self._mono + limit_s
        await _settle()
        while (deadline := self.next_deadline()) is not None and deadline <= end:
            self._step_to(deadline)
            await _settle()

    def _step_to(self, mono: float) -> None:
        if mono > self._mono:
            self._wall += timedelta(seconds=mono - self._mono)
            self._mono = mono
        self._wake_due()

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._mono:
            _deadline, _n, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    def _drop_cancelled(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._wall.isoformat()}, sleepers={self.sleepers})"


async def _settle(rounds: int = 20) -> None:
    """Let woken tasks run until they block again (on the clock or elsewhere)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def wait_for_event(clock: Clock, event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until ``event`` is set or ``timeout_s`` of ``clock`` time has passed; True if set.

    ``asyncio.wait_for`` times out on the event loop's own clock, which a virtual clock does not
    move; loops that wake on "new work or every N seconds" use this instead.
    """
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    sleeper = asyncio.ensure_future(clock.sleep(timeout_s))
    try:
        await asyncio.wait((waiter, sleeper), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiter, sleeper):
            if not task.done():
                task.cancel()
        await asyncio.gather(waiter, sleeper, return_exceptions=True)
    return event.is_set()
