"""One supervisor for a process's long-running tasks, on both sides.

Every background loop of the edge daemon and of the controller runs under a :class:`Supervisor`:
named tasks in one ``asyncio.TaskGroup``; a task that raises is reported (log and the owner's
``on_failure`` hook, which the daemon turns into a telemetry event) and restarted after a jittered
backoff on the process's clock; a task that returns is done. Only cancellation (a stop) ends the
group. No bare ``create_task`` whose failure nobody sees.
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
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def add(self, name: str, job: Job, *, restart: bool = True) -> None:
        """Register ``job`` under ``name``; ``restart=False`` lets a failure end it (reported)."""
        if name in self._entries:
            raise ValueError(f"a task named {name!r} is already supervised")
        self._entries[name] = _Entry(
            job,
            restart,
            Backoff(self.initial_s, self.maximum_s, random.Random(self.rng.random())),
        )

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

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for name, entry in self._entries.items():
                self._tasks[name] = group.create_task(self._keep(name, entry), name=name)

    async def _keep(self, name: str, entry: _Entry) -> None:
        while True:
            try:
                await entry.job()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                entry.failures += 1
                delay = entry.backoff.next_delay() if entry.restart else 0.0
                log.exception(
                    "task failed; restarting" if entry.restart else "task failed; not restarted",
                    task=name,
                    retry_in_s=round(delay, 1),
                    failures=entry.failures,
                )
                if self.on_failure is not None:
                    self.on_failure(TaskFailure(name, exc, delay, entry.failures))
                if not entry.restart:
                    return
                await self.clock.sleep(delay)
