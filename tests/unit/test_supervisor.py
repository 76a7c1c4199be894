"""The supervisor runs named jobs in one task group, restarts failures after a growing, seeded
backoff on its clock, reports every failure, and stops everything when cancelled. All in
virtual time: nothing here really sleeps."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from muster.backoff import Backoff
from muster.clock import VirtualClock
from muster.supervisor import Supervisor, TaskFailure

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
Job = Callable[[], Awaitable[None]]


def _world() -> tuple[VirtualClock, list[TaskFailure], Supervisor]:
    clock = VirtualClock(START, monotonic_start=0.0)
    failures: list[TaskFailure] = []
    supervisor = Supervisor(
        clock, rng=random.Random(1), initial_s=1.0, maximum_s=60.0, on_failure=failures.append
    )
    return clock, failures, supervisor


async def test_a_job_that_fails_twice_is_restarted_twice_with_growing_delays() -> None:
    """Two failures, two reports, two restarts after the reported delays (1 s then 2 s
    nominal, jittered); the third run works and the supervisor returns."""
    clock, failures, supervisor = _world()
    attempts: list[float] = []

    async def flaky() -> None:
        attempts.append(clock.monotonic())
        if len(attempts) <= 2:
            raise OSError(f"broker away ({len(attempts)})")

    supervisor.add("flaky", flaky)
    running = asyncio.create_task(supervisor.run())
    await clock.advance(10)
    await asyncio.wait_for(running, timeout=1)

    assert len(attempts) == 3
    assert [f.failures for f in failures] == [1, 2]
    assert [str(f.error) for f in failures] == ["broker away (1)", "broker away (2)"]
    first, second = (f.restart_in_s for f in failures)
    assert 0.5 <= first < 1.5 and 1.0 <= second < 3.0
    assert attempts[1] == pytest.approx(attempts[0] + first)
    assert attempts[2] == pytest.approx(attempts[1] + second)
    assert supervisor.failures("flaky") == 2


async def test_the_same_seed_gives_the_same_restart_schedule() -> None:
    """Jitter comes from the supervisor's seeded rng, so a fault run replays exactly."""

    async def schedule() -> list[float]:
        clock, failures, supervisor = _world()

        async def broken() -> None:
            raise RuntimeError("down")

        supervisor.add("broken", broken)
        running = asyncio.create_task(supervisor.run())
        await clock.advance(200)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        return [f.restart_in_s for f in failures]

    first, second = await schedule(), await schedule()
    assert first == second and len(first) >= 5
    assert max(first) < 1.5 * 60.0


async def test_a_job_that_ran_long_enough_starts_its_backoff_afresh() -> None:
    """A failure after a healthy run (longer than healthy_s) is retried after the initial
    delay again, not after the delay earlier failures had grown to."""
    clock, failures, supervisor = _world()
    runs = 0

    async def job() -> None:
        nonlocal runs
        runs += 1
        if runs == 4:
            await clock.sleep(supervisor.healthy_s + 1)
        raise RuntimeError("again")

    supervisor.add("job", job, backoff=Backoff(1.0, 60.0, random.Random(3)))
    running = asyncio.create_task(supervisor.run())
    await clock.advance(200)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    delays = [f.restart_in_s for f in failures]
    assert delays[2] >= 2.0  # nominal 4 s after three quick failures
    assert delays[3] < 1.5  # nominal 1 s again after the healthy run


async def test_cancelling_the_supervisor_stops_every_job() -> None:
    """Cancelling run() cancels all jobs, sleeping or restarting, and leaves nobody asleep."""
    clock, failures, supervisor = _world()
    stopped: list[str] = []

    def looping(name: str) -> Job:
        async def job() -> None:
            try:
                while True:
                    await clock.sleep(5)
            finally:
                stopped.append(name)

        return job

    async def failing() -> None:
        raise RuntimeError("always")

    supervisor.add("a", looping("a"))
    supervisor.add("b", looping("b"))
    supervisor.add("failing", failing)
    running = asyncio.create_task(supervisor.run())
    await clock.advance(30)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert sorted(stopped) == ["a", "b"]
    assert clock.sleepers == 0
    assert failures and all(f.name == "failing" for f in failures)


async def test_cancelling_one_job_leaves_the_others_running() -> None:
    """cancel(name) is a planned stop of one part; the rest carry on and the group returns
    once they have."""
    clock, failures, supervisor = _world()
    ticks = {"keep": 0, "stop": 0}

    def ticking(name: str, times: int) -> Job:
        async def job() -> None:
            for _ in range(times):
                await clock.sleep(1)
                ticks[name] += 1

        return job

    supervisor.add("keep", ticking("keep", 10))
    supervisor.add("stop", ticking("stop", 10))
    running = asyncio.create_task(supervisor.run())
    await clock.advance(3)
    supervisor.cancel("stop")
    await clock.advance(20)
    await asyncio.wait_for(running, timeout=1)
    assert ticks == {"keep": 10, "stop": 3}
    assert failures == []


async def test_a_non_restarting_job_failure_is_reported_once() -> None:
    """restart=False: the failure is reported with no restart delay and the job stays ended,
    while the other jobs go on."""
    clock, failures, supervisor = _world()
    calls = 0
    beats = 0

    async def once() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("bad configuration")

    async def steady() -> None:
        nonlocal beats
        for _ in range(5):
            await clock.sleep(10)
            beats += 1

    supervisor.add("once", once, restart=False)
    supervisor.add("steady", steady)
    running = asyncio.create_task(supervisor.run())
    await clock.advance(100)
    await asyncio.wait_for(running, timeout=1)
    assert calls == 1 and beats == 5
    assert len(failures) == 1
    (failure,) = failures
    assert (failure.name, failure.restart_in_s, failure.failures) == ("once", 0.0, 1)
    assert isinstance(failure.error, ValueError)


async def test_a_failing_report_hook_does_not_end_the_group() -> None:
    """The owner's on_failure raising is logged; the job is still restarted."""
    clock = VirtualClock(START, monotonic_start=0.0)
    runs = 0

    def hook(failure: TaskFailure) -> None:
        raise RuntimeError("telemetry is down too")

    async def job() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise OSError("first")

    supervisor = Supervisor(clock, on_failure=hook)
    supervisor.add("job", job)
    running = asyncio.create_task(supervisor.run())
    await clock.advance(5)
    await asyncio.wait_for(running, timeout=1)
    assert runs == 2


def test_names_are_unique_and_jobs_are_added_before_running() -> None:
    """Two jobs of one name are refused."""
    _clock, _failures, supervisor = _world()

    async def job() -> None:
        return None

    supervisor.add("x", job)
    with pytest.raises(ValueError, match="already supervised"):
        supervisor.add("x", job)
    assert supervisor.names == ("x",)


async def test_stop_ends_the_named_jobs_in_order_and_leaves_the_rest() -> None:
    """stop(a, b) cancels a, waits until it has finished, then b; c goes on running."""
    clock, _failures, supervisor = _world()
    finished: list[str] = []

    def looping(name: str) -> Job:
        async def job() -> None:
            try:
                while True:
                    await clock.sleep(1)
            finally:
                await asyncio.sleep(0)  # some cleanup that takes a turn
                finished.append(name)

        return job

    for name in ("a", "b", "c"):
        supervisor.add(name, looping(name))
    running = asyncio.create_task(supervisor.run())
    await clock.advance(3)
    await supervisor.stop("a", "b", "unknown")
    assert finished == ["a", "b"]
    assert not running.done()
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert finished == ["a", "b", "c"]
