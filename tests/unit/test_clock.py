"""The process clock: a virtual clock moves only when told, wakes sleepers in deadline order,
and keeps wall and monotonic time together except when the wall clock is set on purpose."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from muster.backoff import Backoff
from muster.clock import Clock, SystemClock, VirtualClock, campaign_date

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_both_clocks_are_clocks() -> None:
    """SystemClock and VirtualClock satisfy the Clock protocol, so either can be handed down."""
    assert isinstance(SystemClock(), Clock)
    assert isinstance(VirtualClock(START), Clock)


def test_system_clock_gives_aware_utc() -> None:
    """The real clock's now() is aware UTC and today() is its campaign date."""
    clock = SystemClock()
    now = clock.now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert clock.today() in (campaign_date(now), campaign_date(clock.now()))


def test_virtual_clock_refuses_a_naive_start() -> None:
    """A naive start time is refused with a message saying what to pass instead."""
    with pytest.raises(ValueError, match="aware"):
        VirtualClock(datetime(2026, 11, 23, 9, 0))


def test_campaign_day_is_beijing_time() -> None:
    """17:00 UTC is already the next day in UTC+8; the campaign's today() says so."""
    clock = VirtualClock(datetime(2026, 11, 23, 17, 0, tzinfo=UTC))
    assert clock.today() == date(2026, 11, 24)
    assert clock.now().date() == date(2026, 11, 23)
    assert campaign_date(datetime(2026, 11, 23, 15, 59, tzinfo=UTC)) == date(2026, 11, 23)


def test_advance_now_moves_wall_and_monotonic_together() -> None:
    """advance_now moves both clocks by the same amount; time never moves backwards."""
    clock = VirtualClock(START, monotonic_start=10.0)
    clock.advance_now(90)
    assert clock.now() == START + timedelta(seconds=90)
    assert clock.monotonic() == 100.0
    with pytest.raises(ValueError, match="forward"):
        clock.advance_now(-1)


def test_set_wall_moves_only_the_wall_clock() -> None:
    """Rolling the wall clock back (an operator changing the date) leaves monotonic time alone;
    other zones are converted to UTC."""
    clock = VirtualClock(START)
    before = clock.monotonic()
    clock.set_wall(datetime(2026, 1, 1, 8, 0, tzinfo=timezone(timedelta(hours=8))))
    assert clock.now() == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert clock.now().tzinfo == UTC
    assert clock.monotonic() == before
    with pytest.raises(ValueError):
        clock.set_wall(datetime(2026, 1, 1))


async def test_sleepers_wake_in_deadline_order_at_their_deadline() -> None:
    """Three tasks sleeping 30, 10 and 20 s wake in deadline order, each seeing the clock at
    exactly its own deadline, however they were started."""
    clock = VirtualClock(START, monotonic_start=0.0)
    woke: list[tuple[str, float, datetime]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.monotonic(), clock.now()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 30), ("a", 10), ("b", 20))]
    await asyncio.sleep(0)
    assert clock.sleepers == 3
    assert clock.next_deadline() == 10.0
    await clock.advance(25)
    assert [(n, m) for n, m, _ in woke] == [("a", 10.0), ("b", 20.0)]
    assert woke[1][2] == START + timedelta(seconds=20)
    assert clock.monotonic() == 25.0 and clock.sleepers == 1
    await clock.advance(5)
    assert [n for n, _, _ in woke] == ["a", "b", "c"]
    await asyncio.gather(*tasks)


async def test_a_loop_beats_exactly_once_per_period() -> None:
    """A loop sleeping 30 s between beats beats ten times in 300 s of virtual time, with no
    real waiting: each woken task runs and sleeps again before time moves on."""
    clock = VirtualClock(START, monotonic_start=0.0)
    beats: list[float] = []

    async def beat() -> None:
        while True:
            await clock.sleep(30)
            beats.append(clock.monotonic())

    task = asyncio.create_task(beat())
    await clock.advance(300)
    assert beats == [30.0 * n for n in range(1, 11)]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.sleepers == 0 and clock.next_deadline() is None


async def test_advance_now_wakes_sleepers_on_their_next_turn() -> None:
    """advance_now runs nobody itself, but a sleeper whose deadline it passed wakes as soon as
    the test yields."""
    clock = VirtualClock(START)
    done = asyncio.Event()

    async def sleeper() -> None:
        await clock.sleep(5)
        done.set()

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0)
    clock.advance_now(5)
    await asyncio.wait_for(done.wait(), timeout=1)
    await task


async def test_run_until_idle_jumps_to_the_last_deadline() -> None:
    """run_until_idle jumps from deadline to deadline until nobody sleeps, and stops at its
    limit for loops that never end."""
    clock = VirtualClock(START, monotonic_start=0.0)

    async def chain() -> None:
        for seconds in (5, 50, 500):
            await clock.sleep(seconds)

    task = asyncio.create_task(chain())
    await clock.run_until_idle()
    assert clock.monotonic() == 555.0
    await task

    async def forever() -> None:
        while True:
            await clock.sleep(60)

    endless = asyncio.create_task(forever())
    await clock.run_until_idle(limit_s=600)
    assert clock.monotonic() == 555.0 + 600
    endless.cancel()
    await asyncio.gather(endless, return_exceptions=True)


async def test_zero_sleep_only_yields() -> None:
    """sleep(0) and negative sleeps yield once and never join the sleepers."""
    clock = VirtualClock(START)
    await clock.sleep(0)
    await clock.sleep(-3)
    assert clock.sleepers == 0 and clock.monotonic() == 1000.0


def test_backoff_doubles_to_its_maximum_with_seeded_jitter() -> None:
    """Nominal delays double from initial to maximum; each real delay lies in [0.5, 1.5) of its
    nominal value; the same seed gives the same delays; reset starts again."""
    backoff = Backoff(0.5, 4.0, random.Random(7))
    delays = [backoff.next_delay() for _ in range(6)]
    assert backoff.nominal == 4.0
    for delay, nominal in zip(delays, (0.5, 1.0, 2.0, 4.0, 4.0, 4.0), strict=True):
        assert 0.5 * nominal <= delay < 1.5 * nominal
    again = Backoff(0.5, 4.0, random.Random(7))
    assert [again.next_delay() for _ in range(6)] == delays
    backoff.reset()
    assert backoff.nominal == 0.0
    assert backoff.next_delay() < 0.75
    with pytest.raises(ValueError, match="initial"):
        Backoff(0.0, 1.0)


async def test_advance_waits_for_work_done_in_a_thread() -> None:
    """A loop that works in a thread between sleeps is not asleep again after a few turns of
    the event loop; advance(..., sleepers=1) waits for it at every step, so each round runs."""
    clock = VirtualClock(START, monotonic_start=0.0)
    rounds: list[float] = []

    def work() -> None:
        time.sleep(0.01)  # real work in a worker thread, not the event loop

    async def loop() -> None:
        while True:
            await asyncio.to_thread(work)
            rounds.append(clock.monotonic())
            await clock.sleep(10)

    task = asyncio.create_task(loop())
    await clock.advance(50, sleepers=1)
    assert rounds == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    with pytest.raises(TimeoutError, match="expected 1"):
        await clock.wait_for_sleepers(1, timeout_s=0.05)
