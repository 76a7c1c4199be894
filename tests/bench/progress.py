"""Progress of a benchmark's long steps on stderr, through rich: a live bar on a terminal; when
stderr is a file or a pipe (``scripts/bench.sh | tee``, the smoke test) rich draws nothing live,
so the log gets the bar's final line once per step instead of ``\\r uploaded 0/5000`` repeated
hundreds of times on one line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["Step", "step"]

_CONSOLE = Console(stderr=True)


class Step:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def update(self, completed: int) -> None:
        self._progress.update(self._task, completed=completed)

    def advance(self, by: int = 1) -> None:
        self._progress.advance(self._task, by)


@contextmanager
def step(description: str, total: int) -> Iterator[Step]:
    """One bar for ``total`` units of work; a plain summary line when not on a terminal."""
    progress = Progress(
        TextColumn("  {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_CONSOLE,
    )
    task = progress.add_task(description, total=total)
    with progress:
        yield Step(progress, task)
