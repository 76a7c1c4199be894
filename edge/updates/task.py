"""The updater as one supervised task of the daemon: :func:`updates_job` builds the
:class:`~edge.updates.updater.Updater` over the daemon's own mutual-TLS data channel and returns
the job to hand the supervisor. The job boots the updater (finishing or undoing what a crash
interrupted), then at once confirms a new version that ``healthy()`` says is up, watches its
health window, and asks the controller for an update every ``check_every_s``.

``busy()`` names why not to switch now (a clerk's open draft, an upload in flight) or returns
None; ``restart()`` is the daemon's clean stop, after which the launcher (edge/launcher.py, or
systemd's ``Restart=always`` without it) starts the version the switch or rollback chose. Under
the launcher (``launched``, by default read from its mark in the environment) the launcher
counts the new version's starts, not this job."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import structlog

from edge.updates.slots import LAUNCHED_ENV
from edge.updates.updater import DISK_MARGIN_BYTES, Updater
from muster.clock import Clock
from muster.errors import MusterError

__all__ = ["busy_reason", "updates_job"]

log = structlog.get_logger(__name__)


def busy_reason(open_drafts: Callable[[], int], uploading: Callable[[], bool]) -> str | None:
    """Why the device must not restart into a new version now, or None."""
    drafts = open_drafts()
    if drafts:
        return f"录入员有 {drafts} 份未完成的草稿 (open drafts)"
    if uploading():
        return "正在上传记录 (an upload is in flight)"
    return None


def updates_job(
    state_dir: Path,
    *,
    profile: str,
    factory_version: str,
    channel: Callable[[], grpc.aio.Channel],
    clock: Clock,
    restart: Callable[[], Awaitable[None]],
    busy: Callable[[], str | None],
    healthy: Callable[[], bool],
    check_every_s: float = 900.0,
    watch_every_s: float = 10.0,
    disk_margin_bytes: int = DISK_MARGIN_BYTES,
    launched: bool | None = None,
) -> tuple[Updater, Callable[[], Awaitable[None]]]:
    if launched is None:
        launched = LAUNCHED_ENV in os.environ
    updater = Updater(
        state_dir,
        profile=profile,
        factory_version=factory_version,
        channel=channel,
        clock=clock,
        restart=restart,
        busy=busy,
        count_starts=not launched,
        disk_margin_bytes=disk_margin_bytes,
    )

    async def watch() -> None:
        while True:
            state = updater.slots.load()
            if state.phase == "switched":
                if healthy():
                    await updater.confirm_healthy()
                elif await updater.watch_health():
                    return
            await clock.sleep(watch_every_s)

    async def check() -> None:
        while True:
            try:
                await updater.check_once()
            except grpc.aio.AioRpcError as exc:
                log.info("update check failed; trying later", code=str(exc.code()))
            except MusterError as exc:
                log.warning("update check failed", error=str(exc))
            await clock.sleep(check_every_s)

    async def job() -> None:
        await updater.boot()
        async with asyncio.TaskGroup() as group:
            group.create_task(watch(), name="update-health")
            group.create_task(check(), name="update-check")

    return updater, job
