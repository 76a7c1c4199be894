"""One supervisor for a process's long-running tasks, on both sides.

Every background loop of the edge daemon and of the controller runs under a :class:`Supervisor`:
named tasks in one ``asyncio.TaskGroup``; a task that raises is reported (log and the owner's
``on_failure`` hook, which the daemon turns into a telemetry event) and restarted after a jittered
backoff on the process's clock; a task that returns is done. Only cancellation (a stop) ends the
group. No bare ``create_task`` whose failure nobody sees.

A task that ran for ``healthy_s`` or longer before it failed starts its backoff afresh: a broker
connection that held for an hour and then dropped is retried after ``initial_s``, not after the
delay its last outage had grown to. Delays, and the time a run lasted, are on the supervisor's
clock, so a :class:`~muster.clock.VirtualClock` drives the whole restart schedule in tests.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from muster.backoff import Backoff
from muster.clock import Clock

__all__ = ["Supervisor", "TaskFailure"]

log = structlog.get_logger(__name__)

Job = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class TaskFailure:
    """What the owner is told when a supervised task fails: which, why, when it restarts."""

    name: str
    error: BaseException
    restart_in_s: float
    failures: int


@dataclass
class _Entry:
    job: Job
    restart: bool
    backoff: Backoff
    failures: int = 0
    started_at: float = 0.0


@dataclass
class Supervisor:
    """Run named jobs until stopped; restart the ones that fail.

    ``run()`` starts every job added so far in one ``TaskGroup`` and returns when all of them
    have returned, or raises ``CancelledError`` when cancelled (which cancels them all).
    """

    clock: Clock
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    initial_s: float = 1.0
    maximum_s: float = 60.0
    on_failure: Callable[[TaskFailure], None] | None = None
    healthy_s: float = 60.0
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def add(
        self, name: str, job: Job, *, restart: bool = True, backoff: Backoff | None = None
    ) -> None:
        """Register ``job`` under ``name``; ``restart=False`` lets a failure end it (reported).
        ``backoff`` overrides the supervisor's ``initial_s``/``maximum_s`` for this job."""
        if name in self._entries:
            raise ValueError(f"a task named {name!r} is already supervised")
        if self._tasks:
            raise RuntimeError(f"add {name!r} before run(): the supervisor is already running")
        if backoff is None:
            backoff = Backoff(self.initial_s, self.maximum_s, random.Random(self.rng.random()))
        self._entries[name] = _Entry(job, restart, backoff)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def failures(self, name: str) -> int:
        return self._entries[name].failures

    def cancel(self, name: str) -> None:
        """Stop one task (a planned stop of one part, e.g. collection before draining)."""
        task = self._tasks.get(name)
        if task is not None:
            task.cancel()

    async def stop(self, *names: str) -> None:
        """Stop the named tasks one after the other, each finished before the next is told (a
        planned shutdown in order: stop taking work, then flush, then the rest)."""
        for name in names:
            task = self._tasks.get(name)
            if task is None or task.done():
                continue
            task.cancel()
            await asyncio.wait([task])

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for name, entry in self._entries.items():
                self._tasks[name] = group.create_task(self._keep(name, entry), name=name)

    async def _keep(self, name: str, entry: _Entry) -> None:
        while True:
            entry.started_at = self.clock.monotonic()
            try:
                await entry.job()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                entry.failures += 1
                if self.clock.monotonic() - entry.started_at >= self.healthy_s:
                    entry.backoff.reset()
                delay = entry.backoff.next_delay() if entry.restart else 0.0
                log.exception(
                    "task failed; restarting" if entry.restart else "task failed; not restarted",
                    task=name,
                    retry_in_s=round(delay, 1),
                    failures=entry.failures,
                )
                self._report(TaskFailure(name, exc, delay, entry.failures))
                if not entry.restart:
                    return
                await self.clock.sleep(delay)

    def _report(self, failure: TaskFailure) -> None:
        # The owner's hook must not turn one task's failure into the end of every task.
        if self.on_failure is None:
            return
        try:
            self.on_failure(failure)
        except Exception:
            log.exception("on_failure hook failed", task=failure.name)
