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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from muster.errors import StorageError

__all__ = ["SLOTS", "Slots", "UpdateState"]

SLOTS = ("a", "b")


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
    # Reports not yet delivered to the controller: (rollout id, version, state, reason).
    unsent: list[list[Any]] = field(default_factory=list)


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

    def clean_downloads(self) -> None:
        shutil.rmtree(self.root / "downloads", ignore_errors=True)
