"""The device's updater: asks the controller for an update, downloads it resumably over the
mutual-TLS data port, verifies it against the signed manifest (muster.releases, the same rule
the controller applied) before anything changes, installs it into the spare slot, switches and
restarts; then watches the new version and rolls back by itself when it does not confirm it is
healthy within the health window (on the injected clock) or does not get through ``max_boots``
starts (a crash loop). Every step survives kill -9: the phase is in ``software/update.json``
(edge/updates/slots.py) and :meth:`Updater.boot` finishes or undoes what a crash interrupted.

It never switches while the daemon is busy (``busy()`` names why: a clerk's open draft, an
upload in flight): the installed release waits, reported ``deferred``."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import structlog

from edge.updates.slots import RELEASE_KEYS_FILE, Slots, UpdateState, write_durably
from muster.clock import Clock
from muster.errors import MusterError
from muster.releases import (
    Manifest,
    ReleaseError,
    accept_endorsed_key,
    check_applicable,
    key_id,
    verify_manifest,
    verify_part_file,
)
from muster.v1 import updates_pb2, updates_pb2_grpc

__all__ = ["STEPS", "Updater"]

log = structlog.get_logger(__name__)

# Where an observer (progress, or a test that kills the process) is told the updater is.
STEPS = (
    "downloading",
    "verifying",
    "installing",
    "switching",
    "first_start",
    "confirming",
    "rolling_back",
)
_STATE = {
    "downloading": updates_pb2.UPDATE_STATE_DOWNLOADING,
    "verified": updates_pb2.UPDATE_STATE_VERIFIED,
    "switched": updates_pb2.UPDATE_STATE_SWITCHED,
    "healthy": updates_pb2.UPDATE_STATE_HEALTHY,
    "rolled_back": updates_pb2.UPDATE_STATE_ROLLED_BACK,
    "refused": updates_pb2.UPDATE_STATE_REFUSED,
    "deferred": updates_pb2.UPDATE_STATE_DEFERRED,
}
# Room kept free beyond the download and its installed copy: the outbox must never be the one
# to run out of disk because of an update.
DISK_MARGIN_BYTES = 64 * 1024 * 1024


def _never_busy() -> str | None:
    return None


class Updater:
    def __init__(
        self,
        state_dir: Path,
        *,
        profile: str,
        factory_version: str,
        channel: Callable[[], grpc.aio.Channel],
        clock: Clock,
        restart: Callable[[], Awaitable[None]],
        busy: Callable[[], str | None] = _never_busy,
        observer: Callable[[str], None] = lambda step: None,
        max_boots: int = 3,
        count_starts: bool = True,
        disk_margin_bytes: int = DISK_MARGIN_BYTES,
        rpc_timeout_s: float = 60.0,
    ) -> None:
        self.slots = Slots(state_dir, factory_version)
        self._profile = profile
        self._channel = channel
        self._clock = clock
        self._restart = restart
        self._busy = busy
        self._observe = observer
        self._max_boots = max_boots
        self._count_starts = count_starts
        self._margin = disk_margin_bytes
        self._timeout = rpc_timeout_s
        self._deferred_reported = False

    # --- trust ------------------------------------------------------------------------------

    @property
    def _keys_path(self) -> Path:
        return self.slots.root / "release-keys.json"

    @property
    def _enrolled_keys_path(self) -> Path:
        return self.slots.root.parent / "identity" / RELEASE_KEYS_FILE

    @staticmethod
    def _read_keys(path: Path) -> dict[str, bytes]:
        try:
            raw = json.loads(path.read_bytes())
            return {k: bytes.fromhex(v) for k, v in raw.items() if key_id(bytes.fromhex(v)) == k}
        except FileNotFoundError:
            return {}
        except (ValueError, AttributeError, TypeError):
            log.warning("release keys unreadable; ignored", path=str(path))
            return {}

    def trusted_keys(self) -> dict[str, bytes]:
        """The keys enrolment pinned, and those a trusted key endorsed since."""
        return {**self._read_keys(self._keys_path), **self._read_keys(self._enrolled_keys_path)}

    def _learn_keys(self, offered: list[updates_pb2.ReleaseKey]) -> dict[str, bytes]:
        """Keys endorsed by one already trusted join. A device enrolled before enrolment
        handed out release keys (none pinned) takes the very first key on first use over the
        mutual-TLS channel (pinned to the centre's CA); one that has keys never does."""
        trusted = self.trusted_keys()
        learned = self._read_keys(self._keys_path)
        for key in offered:
            if key.key_id in trusted or key_id(key.public_key) != key.key_id:
                continue
            if not trusted and not key.endorsed_by:
                trusted[key.key_id] = learned[key.key_id] = key.public_key
            elif key.endorsed_by in trusted:
                try:
                    accept_endorsed_key(trusted, key.public_key, key.endorsed_by, key.endorsement)
                except ReleaseError as exc:
                    log.warning("release key endorsement refused", reason=exc.reason)
                    continue
                trusted[key.key_id] = learned[key.key_id] = key.public_key
        if learned != self._read_keys(self._keys_path):
            write_durably(
                self._keys_path, json.dumps({k: v.hex() for k, v in learned.items()}).encode()
            )
        return trusted

    # --- reports ----------------------------------------------------------------------------

    async def _report(
        self, state: UpdateState, step: str, reason: str = "", *, version: str = ""
    ) -> None:
        state.unsent.append([state.rollout_id, version or state.version, step, reason])
        self.slots.save(state)
        await self._flush(state)

    async def _flush(self, state: UpdateState) -> None:
        if not state.unsent:
            return
        running = self.slots.running_version()
        try:
            async with self._channel() as channel:
                stub = updates_pb2_grpc.UpdatesStub(channel)
                while state.unsent:
                    rollout_id, version, step, reason = state.unsent[0]
                    report = updates_pb2.UpdateReport(
                        rollout_id=rollout_id,
                        version=version,
                        state=_STATE[step],
                        reason=reason,
                        running_version=running,
                    )
                    report.at.FromDatetime(self._clock.now())
                    await stub.Report(report, timeout=self._timeout)
                    state.unsent.pop(0)
                    self.slots.save(state)
        except grpc.aio.AioRpcError as exc:
            log.info("update reports kept for later", pending=len(state.unsent), code=exc.code())

    # --- boot and health --------------------------------------------------------------------

    async def boot(self) -> UpdateState:
        """At every start of the process: finish a pointer move, count the new version's
        starts, and roll back when it has crash-looped. Under the launcher (``count_starts``
        False) the launcher counted this start already; only an interrupted move is finished."""
        if self._count_starts:
            state, rolled_back = self.slots.count_start(self._max_boots, self._observe)
        else:
            state, rolled_back = self.slots.load(), ""
            self.slots.settle(state)
            if state.phase == "rolling_back":
                rolled_back = state.last_failure or "interrupted"
                self.slots.roll_back_locally(state, rolled_back, self._observe)
        if rolled_back:
            log.warning("update rolled back", version=state.version, reason=rolled_back)
            await self._flush(state)
            await self._restart()
        return state

    async def confirm_healthy(self) -> None:
        """The running new version is up and working: keep it."""
        state = self.slots.load()
        if state.phase != "switched" or self.slots.current_slot() != state.slot:
            return
        self._observe("confirming")
        state.phase, state.boots = "idle", 0
        await self._report(state, "healthy")
        self.slots.clean_downloads()
        log.info("update confirmed healthy", version=state.version)

    async def watch_health(self) -> bool:
        """Roll back when the new version let its health window pass; True if it did."""
        state = self.slots.load()
        if state.overdue(self._clock.now()):
            await self._roll_back(
                state, f"not_healthy: 新版本在 {state.health_window_s} 秒内未报告健康"
            )
            return True
        return False

    async def _roll_back(self, state: UpdateState, reason: str) -> None:
        failed_version = self.slots.roll_back_locally(state, reason, self._observe)
        log.warning("update rolled back", version=failed_version, reason=reason)
        await self._flush(state)
        await self._restart()

    # --- one cycle --------------------------------------------------------------------------

    async def check_once(self) -> str:
        """One round: deliver reports, watch a new version, or take an offered update as far
        as it goes. Returns what happened (for logs and tests)."""
        state = self.slots.load()
        await self._flush(state)
        if state.phase == "switched":
            return "rolled_back" if await self.watch_health() else "watching"
        async with self._channel() as channel:
            stub = updates_pb2_grpc.UpdatesStub(channel)
            offer = await stub.Offer(
                updates_pb2.OfferRequest(
                    current_version=self.slots.running_version(),
                    profile=self._profile,
                    trusted_key_ids=sorted(self.trusted_keys()),
                ),
                timeout=self._timeout,
            )
            if not offer.available:
                return "none"
            try:
                manifest = verify_manifest(
                    offer.manifest, offer.signature, self._learn_keys(list(offer.release_keys))
                )
                if (
                    manifest.version == state.version
                    and state.last_failure
                    and offer.attempt <= state.attempt
                ):
                    return "failed_before"  # failed this try: again only when retried
                check_applicable(
                    manifest, profile=self._profile, current_version=self.slots.running_version()
                )
            except ReleaseError as exc:
                return await self._refuse(state, offer, exc)
            if state.version != manifest.version or state.last_failure:
                state = UpdateState(
                    phase="downloading",
                    version=manifest.version,
                    rollout_id=offer.rollout_id,
                    health_window_s=offer.health_window_s,
                    attempt=offer.attempt,
                    unsent=state.unsent,
                )
                await self._report(state, "downloading")
            try:
                if state.phase == "downloading":
                    await self._download(stub, manifest, state)
            except ReleaseError as exc:
                return await self._refuse(state, offer, exc)
        return await self._switch(state)

    async def _refuse(
        self, state: UpdateState, offer: updates_pb2.OfferResponse, exc: ReleaseError
    ) -> str:
        log.warning("update refused", reason=exc.reason, detail=str(exc))
        version = state.version
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            version = json.loads(offer.manifest).get("version", "")[:32]
        refused = UpdateState(
            rollout_id=offer.rollout_id,
            version=version,
            last_failure=exc.reason,
            attempt=offer.attempt,
            unsent=state.unsent,
        )
        self.slots.clean_downloads()
        await self._report(refused, "refused", f"{exc.reason}: {exc}"[:300])
        return f"refused:{exc.reason}"

    async def _download(
        self, stub: updates_pb2_grpc.UpdatesAsyncStub, manifest: Manifest, state: UpdateState
    ) -> None:
        folder = self.slots.downloads(manifest.version)
        folder.mkdir(parents=True, exist_ok=True)
        have = sum(
            min((folder / f"{p.name}.partial").stat().st_size, p.size)
            for p in manifest.parts
            if (folder / f"{p.name}.partial").exists()
        )
        needed = (manifest.total_size - have) + manifest.total_size + self._margin
        free = shutil.disk_usage(self.slots.root).free
        if free < needed:
            raise ReleaseError(
                "no_space",
                f"磁盘剩余 {free // 2**20} MiB，更新需要 {needed // 2**20} MiB (not enough disk space)",
            )
        for part in manifest.parts:
            path = folder / f"{part.name}.partial"
            offset = path.stat().st_size if path.exists() else 0
            if offset > part.size:
                path.unlink()
                offset = 0
            if offset < part.size:
                with path.open("ab") as fh:
                    call = stub.Download(
                        updates_pb2.DownloadRequest(
                            version=manifest.version, part=part.name, offset=offset
                        ),
                        timeout=self._timeout * 10,
                    )
                    async for chunk in call:
                        if chunk.offset != offset or offset + len(chunk.data) > part.size:
                            raise ReleaseError(
                                "bad_download",
                                f"部件 {part.name} 的下载数据错位 (chunk at {chunk.offset}, "
                                f"expected {offset})",
                            )
                        fh.write(chunk.data)
                        fh.flush()
                        offset += len(chunk.data)
                        self._observe("downloading")
            self._observe("verifying")
            try:
                verify_part_file(part, path)
            except ReleaseError:
                path.unlink(missing_ok=True)  # start this part afresh next time
                raise
        self._observe("installing")
        slot = self.slots.spare_slot()
        self.slots.install(
            slot,
            manifest.version,
            manifest.raw,
            [folder / f"{p.name}.partial" for p in manifest.parts],
        )
        state.phase, state.slot = "installed", slot
        await self._report(state, "verified")

    async def _switch(self, state: UpdateState) -> str:
        if state.phase != "installed" or not self.slots.is_complete(state.slot):
            state.phase = "downloading"
            self.slots.save(state)
            return "retry"
        busy = self._busy()
        if busy:
            if not self._deferred_reported:
                self._deferred_reported = True
                await self._report(state, "deferred", busy)
            return "deferred"
        state.previous_slot = self.slots.current_slot()
        state.previous_version = self.slots.running_version()
        state.phase, state.boots = "switched", 0
        state.switched_at = self._clock.now().isoformat()
        self.slots.save(state)  # before the pointer moves: boot() finishes a half-done switch
        self._observe("switching")
        self.slots.switch_to(state.slot)
        await self._report(state, "switched")
        log.info("switched to new version; restarting", version=state.version)
        await self._restart()
        return "switched"

    async def run(self, interval_s: float = 300.0) -> None:
        """The supervised task: boot once, then check for updates every ``interval_s``."""
        await self.boot()
        while True:
            try:
                await self.check_once()
            except grpc.aio.AioRpcError as exc:
                log.info("update check failed; trying later", code=exc.code())
            except MusterError as exc:
                log.warning("update check failed", error=str(exc))
            await self._clock.sleep(interval_s)
