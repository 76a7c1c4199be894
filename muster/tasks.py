"""Jobs that live and die together: a session of several loops ends when the first of them
ends, and the others are cancelled and awaited, never left running or pending."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

__all__ = ["first_to_end"]


async def first_to_end(*jobs: Coroutine[Any, Any, None]) -> None:
    """Run ``jobs`` until one of them ends; cancel and await the rest. What ended it (an
    exception) is raised; if it returned, so does this."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                if not task.done() or task.cancelled():
                    await task
    for task in done:
        task.result()
