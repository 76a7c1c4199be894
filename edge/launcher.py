"""The launcher: what the service manager starts on a device (``muster edge launch``). It runs the
daemon from the software slot ``software/current`` names (edge/updates/slots.py), the slot's
wheels first on the daemon's import path, and starts it again whenever it exits: after an
update's switch or rollback (the daemon's clean stop), after a crash (with backoff). It never
changes itself: it runs from the device's factory install, so a broken release cannot break it.

Every start is counted here (``Slots.count_start``): a new version that does not confirm it is
healthy within ``max_starts`` starts is rolled back before the next one, and one that runs but
lets its health window (plus ``overdue_grace_s``) pass unconfirmed is stopped and rolled back,
even when the new version's own updater is what broke. The daemon it starts carries
``MUSTER_LAUNCHED_SLOT`` so its updater leaves the counting to the launcher.

One launcher per state directory: it holds ``software/launcher.lock`` and hands the lock to the
daemon, which the kernel kills when the launcher dies (``PR_SET_PDEATHSIG``), so a launcher
killed with SIGKILL and started again never runs two daemons over one outbox.

A systemd unit for it::

    [Service]
    ExecStart=/opt/muster/venv/bin/muster edge launch --state-dir /var/lib/muster
    Restart=always
    KillMode=mixed
    TimeoutStopSec=40
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from edge.updates.slots import LAUNCHED_ENV, Slots, UpdateState
from muster.backoff import Backoff
from muster.clock import Clock
from muster.errors import StorageError

__all__ = ["Launch", "Launcher", "slot_import_path"]

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class Launch:
    """One start of the daemon: from which slot, which version, its start count on trial."""

    slot: str
    version: str
    import_path: tuple[str, ...]
    on_trial: bool
    starts: int
    rolled_back: str  # why this start rolled back first ("" when it did not)


def slot_import_path(slot_dir: Path) -> tuple[str, ...]:
    """What goes before the install's own packages for a slot: an unpacked ``site/`` and the
    slot's wheels (pure-Python wheels import as zip archives; the device's venv keeps the
    compiled dependencies). The factory slot has neither and runs the install as it is."""
    entries = [slot_dir / "site"] if (slot_dir / "site").is_dir() else []
    entries += sorted(slot_dir.glob("*.whl"))
    return tuple(str(p.resolve()) for p in entries)


def _die_with_parent() -> None:
    # Linux: the daemon gets SIGKILL when the launcher dies, however it dies.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Launcher:
    def __init__(
        self,
        state_dir: Path,
        *,
        factory_version: str,
        args: Sequence[str],
        clock: Clock,
        module: str = "muster",
        python: str = sys.executable,
        max_starts: int = 3,
        poll_s: float = 1.0,
        stop_grace_s: float = 30.0,
        overdue_grace_s: float = 60.0,
        backoff: Backoff | None = None,
        environment: Mapping[str, str] | None = None,
        on_start: Callable[[Launch], None] = lambda launch: None,
    ) -> None:
        if max_starts < 1:
            raise ValueError("max_starts must be at least 1")
        self.slots = Slots(state_dir, factory_version)
        self._command = [python, "-m", module, *args]
        self._clock = clock
        self._max_starts = max_starts
        self._poll_s = poll_s
        self._grace_s = stop_grace_s
        self._overdue_grace_s = overdue_grace_s
        self._backoff = backoff or Backoff(
            initial=1.0, maximum=60.0, rng=random.Random(str(state_dir))
        )
        self._environment = dict(os.environ if environment is None else environment)
        self._on_start = on_start
        self.starts = 0

    def prepare(self) -> Launch:
        """Count this start and settle the slots; which slot the daemon starts from."""
        state = self.slots.load()
        if state.overdue(self._clock.now(), self._overdue_grace_s):
            # The window passed while nothing ran (a launcher killed and started late).
            self.slots.roll_back_locally(state, self._not_healthy(state))
        state, rolled_back = self.slots.count_start(self._max_starts)
        if rolled_back:
            log.warning("new version rolled back before start", reason=rolled_back)
        slot = self.slots.current_slot()
        return Launch(
            slot=slot,
            version=self.slots.running_version(),
            import_path=slot_import_path(self.slots.root / slot),
            on_trial=state.phase == "switched",
            starts=state.boots,
            rolled_back=rolled_back,
        )

    @staticmethod
    def _not_healthy(state: UpdateState) -> str:
        return (
            f"not_healthy: 新版本在 {state.health_window_s} 秒内未确认健康，启动器已回滚 "
            "(rolled back by the launcher)"
        )

    def _environment_for(self, launch: Launch) -> dict[str, str]:
        env = dict(self._environment)
        inherited = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join([*launch.import_path, *inherited])
        env[LAUNCHED_ENV] = launch.slot
        return env

    def _lock(self, stop: threading.Event) -> int | None:
        fd = os.open(self.slots.root / "launcher.lock", os.O_RDWR | os.O_CREAT, 0o600)
        told = False
        while not stop.is_set():
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if not told:
                    log.warning("another launcher or its daemon still runs here; waiting")
                    told = True
                stop.wait(0.2)
        os.close(fd)
        return None

    def _stop_child(self, child: subprocess.Popen[bytes]) -> int:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                return child.wait(self._grace_s)
            except subprocess.TimeoutExpired:
                log.warning("daemon did not stop in time; killing it", pid=child.pid)
                child.kill()
        return child.wait()

    def run(self, stop: threading.Event) -> int:
        """Start the daemon again and again until ``stop``; the daemon's last exit code."""
        lock = self._lock(stop)
        if lock is None:
            return 0
        code = 0
        try:
            while not stop.is_set():
                code = self._run_once(stop, lock)
        finally:
            os.close(lock)
        return code

    def _run_once(self, stop: threading.Event, lock: int) -> int:
        try:
            launch = self.prepare()
        except StorageError as exc:
            log.error("software slots unreadable; starting the factory version", error=str(exc))
            self.slots.roll_back(self.slots.load())
            launch = self.prepare()
        self.starts += 1
        log.info(
            "starting daemon",
            slot=launch.slot,
            version=launch.version,
            on_trial=launch.on_trial,
            trial_start=launch.starts,
        )
        self._on_start(launch)
        started = self._clock.monotonic()
        child = subprocess.Popen(
            self._command,
            env=self._environment_for(launch),
            pass_fds=(lock,),
            preexec_fn=_die_with_parent,
        )
        while True:
            try:
                code = child.wait(self._poll_s)
                break
            except subprocess.TimeoutExpired:
                pass
            if stop.is_set():
                return self._stop_child(child)
            if launch.on_trial:
                state = self.slots.load()
                if state.overdue(self._clock.now(), self._overdue_grace_s):
                    log.warning("new version never confirmed it is healthy; stopping it")
                    self._stop_child(child)
                    self.slots.roll_back_locally(state, self._not_healthy(state))
                    return 0
        if stop.is_set():
            return code
        ran_s = self._clock.monotonic() - started
        if code == 0 or ran_s > 300:
            self._backoff.reset()
        if code != 0:
            delay = self._backoff.next_delay()
            log.warning("daemon exited; starting it again", code=code, retry_in_s=round(delay, 1))
            stop.wait(delay)
        else:
            log.info("daemon stopped; starting the version now current")
        return code
