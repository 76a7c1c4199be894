"""The device's software slots under ``<state>/software/`` and the update's durable state.

::

    software/factory/release.json   the version the device was built with (never replaced)
    software/a/, software/b/        the two installable slots: parts + release.json + .complete
    software/current -> a           the running slot: a symlink replaced by one rename
    software/update.json            the update's phase (written temp + fsync + rename)
    software/downloads/<version>/   parts being downloaded (``<part>.partial`` until verified)

Nothing outside ``software/`` is ever written here: the outbox, drafts, slice and identity sit
beside it and are not touched by any step.

Phases: ``idle`` → ``downloading`` → ``installed`` → ``switched`` (``current`` names the new
slot; the new version has ``health_window_s`` and ``max_boots`` starts to confirm it is
healthy) → ``idle`` again, or back to the previous slot by :meth:`Slots.roll_back`. The phase
is written before the pointer moves, so a crash between is finished by :meth:`Slots.settle`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from muster.errors import StorageError

__all__ = ["LAUNCHED_ENV", "RELEASE_KEYS_FILE", "SLOTS", "Slots", "UpdateState"]

SLOTS = ("a", "b")
# Set by the launcher (edge/launcher.py) for the daemon it starts: the launcher then counts the
# new version's starts, so the daemon's own updater must not count them again.
LAUNCHED_ENV = "MUSTER_LAUNCHED_SLOT"
# The release keys enrolment pinned, under ``<state>/identity/`` (key id → hex public key).
RELEASE_KEYS_FILE = "release-keys.json"


@dataclass
class UpdateState:
    phase: str = "idle"
    version: str = ""
    rollout_id: int = 0
    slot: str = ""  # the slot being installed into / switched to
    previous_slot: str = ""
    previous_version: str = ""
    switched_at: str = ""  # ISO time on the device's clock
    health_window_s: int = 0
    boots: int = 0
    last_failure: str = ""
    attempt: int = 0  # the rollout's try this is (the offer's ``attempt``)
    # Reports not yet delivered to the controller: (rollout id, version, state, reason).
    unsent: list[list[Any]] = field(default_factory=list)

    def overdue(self, now: datetime, grace_s: float = 0.0) -> bool:
        """A new version on trial let its health window (plus ``grace_s``) pass unconfirmed."""
        if self.phase != "switched" or not self.switched_at:
            return False
        try:
            elapsed = now - datetime.fromisoformat(self.switched_at)
        except (TypeError, ValueError):
            return True  # a trial whose start time is unreadable cannot be waited out
        return elapsed.total_seconds() > self.health_window_s + grace_s


def _unobserved(step: str) -> None:
    pass


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


class Slots:
    def __init__(self, state_dir: Path, factory_version: str) -> None:
        self.root = state_dir / "software"
        self.root.mkdir(parents=True, exist_ok=True)
        factory = self.root / "factory"
        if not (factory / "release.json").exists():
            factory.mkdir(exist_ok=True)
            write_durably(
                factory / "release.json", json.dumps({"version": factory_version}).encode()
            )
        if not self.pointer.is_symlink():
            self._point("factory")

    @property
    def pointer(self) -> Path:
        return self.root / "current"

    @property
    def state_path(self) -> Path:
        return self.root / "update.json"

    def downloads(self, version: str) -> Path:
        return self.root / "downloads" / version

    def current_slot(self) -> str:
        return str(self.pointer.readlink())

    def version_of(self, slot: str) -> str:
        try:
            version: str = json.loads((self.root / slot / "release.json").read_bytes())["version"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"软件槽 {slot} 的 release.json 不可读 ({exc})") from exc
        return version

    def running_version(self) -> str:
        return self.version_of(self.current_slot())

    def spare_slot(self) -> str:
        current = self.current_slot()
        return "b" if current == "a" else "a"

    def load(self) -> UpdateState:
        try:
            raw = json.loads(self.state_path.read_bytes())
        except FileNotFoundError:
            return UpdateState()
        except ValueError:
            # Written by rename only, so unreadable means damaged by hand: start over, safely.
            return UpdateState(last_failure="update.json 已损坏，已重置")
        known = UpdateState.__dataclass_fields__
        return UpdateState(**{k: v for k, v in raw.items() if k in known})

    def save(self, state: UpdateState) -> None:
        write_durably(self.state_path, json.dumps(asdict(state), ensure_ascii=False).encode())

    def _point(self, slot: str) -> None:
        tmp = self.root / ".current.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(slot)
        tmp.replace(self.pointer)  # rename(2): the pointer is the old slot or the new, never none
        _fsync_dir(self.root)

    def install(self, slot: str, version: str, manifest_raw: bytes, parts: list[Path]) -> None:
        """Fill the spare ``slot`` with the verified ``parts``; ``.complete`` marks it whole."""
        if slot == self.current_slot():
            raise StorageError(f"不能安装到正在运行的软件槽 {slot}")
        target = self.root / slot
        if target.exists():
            shutil.rmtree(target)
        target.mkdir()
        for part in parts:
            shutil.copyfile(part, target / part.name.removesuffix(".partial"))
            with (target / part.name.removesuffix(".partial")).open("rb") as fh:
                os.fsync(fh.fileno())
        write_durably(target / "manifest.json", manifest_raw)
        write_durably(target / "release.json", json.dumps({"version": version}).encode())
        write_durably(target / ".complete", b"")

    def is_complete(self, slot: str) -> bool:
        return (self.root / slot / ".complete").exists()

    def switch_to(self, slot: str) -> None:
        if not self.is_complete(slot):
            raise StorageError(f"软件槽 {slot} 未安装完整，不能切换")
        self._point(slot)

    def settle(self, state: UpdateState) -> None:
        """Finish a pointer move a crash interrupted: the phase says where it should point."""
        if state.phase == "switched" and self.current_slot() != state.slot:
            self.switch_to(state.slot)
        elif state.phase == "idle" and state.previous_slot and not self._points_to_good():
            self._point(state.previous_slot)

    def _points_to_good(self) -> bool:
        current = self.current_slot()
        return current == "factory" or self.is_complete(current)

    def roll_back(self, state: UpdateState) -> None:
        self._point(state.previous_slot or "factory")

    def roll_back_locally(
        self, state: UpdateState, reason: str, observe: Callable[[str], None] = _unobserved
    ) -> str:
        """Point back at the previous slot and queue the ``rolled_back`` report for whichever
        updater next reaches the controller; returns the version given up. Each step is a
        durable write, so a kill between them is finished by the next start (phase
        ``rolling_back`` first, ``idle`` once the pointer moved)."""
        state.phase, state.last_failure = "rolling_back", reason[:300]
        self.save(state)
        observe("rolling_back")
        self.roll_back(state)
        failed = state.version
        state.phase, state.boots, state.slot = "idle", 0, ""
        state.unsent.append([state.rollout_id, failed, "rolled_back", reason[:300]])
        self.save(state)
        return failed

    def count_start(
        self, max_starts: int, observe: Callable[[str], None] = _unobserved
    ) -> tuple[UpdateState, str]:
        """At every start of the daemon: finish an interrupted pointer move or rollback, count
        a new version's starts and roll it back once it used ``max_starts`` without confirming
        it is healthy. Returns the state and, when it rolled back here, why ("" otherwise)."""
        state = self.load()
        if state.phase == "rolling_back":
            reason = state.last_failure or "interrupted"
            self.roll_back_locally(state, reason, observe)
            return state, reason
        self.settle(state)
        if state.phase != "switched":
            return state, ""
        state.boots += 1
        self.save(state)
        observe("first_start")
        if state.boots > max_starts:
            reason = f"crash_loop: 新版本连续 {state.boots - 1} 次启动未能确认健康"
            self.roll_back_locally(state, reason, observe)
            return state, reason
        return state, ""

    def clean_downloads(self) -> None:
        shutil.rmtree(self.root / "downloads", ignore_errors=True)
