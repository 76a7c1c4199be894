"""One chaos run: start the world (``world.py``), inject the seeded plan's faults while devices
upload and admins send commands, wait for recovery, count (``counts.py``).

Each fault is one job on a worker thread: break the target, hold it down for ``down_s``, bring
it back; jobs on different targets overlap, a target's next job waits for its last. A watchdog
restarts any process that died without being told to and counts it, so a crash caused by a
fault (a replica that exits when its database goes) shows in the table instead of hanging the
run. Every injected fault is a line in ``faults.jsonl``.

Collection stops before the drain: every daemon is stopped, the outboxes' record sets are
taken, and the daemons restart idle; a record sealed after that, or a second daemon on a
device's state directory (``stray``), fails the run.

A little over 400 lines: the run's phases (start, faults, recovery, counting) share one state
and read best in order; the parts (``world.py``), links (``links.py``), the admin API's side
(``centre.py``) and the counting (``counts.py``) are already in their own modules."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from muster.chaos_plan import (
    CLOCK_JUMP,
    DEFAULT_WEIGHTS,
    KILL_BROKER,
    KILL_CONTROLLER,
    KILL_DATABASE,
    KILL_DEVICE,
    LATENCY_LOSS,
    PARTITION_DEVICE,
    CommandEvent,
    Fault,
    PlanShape,
    plan_commands,
    plan_faults,
)
from tests.chaos.brokers import ChaosBrokers, make_brokers
from tests.chaos.centre import check_status, issue_command
from tests.chaos.counts import ChaosCounts, count_database, count_outboxes, render
from tests.chaos.links import PacketLoss
from tests.chaos.world import (
    ChaosDatabase,
    ChaosDevice,
    make_device,
    processes_naming,
    start_controllers,
    write_profiles,
)
from tests.fixtures.components import ComponentStartError, wait_for_port
from tests.fixtures.fleet import ControllerProcess

__all__ = ["ChaosConfig", "run_chaos"]


@dataclass(frozen=True)
class ChaosConfig:
    out_dir: Path
    seed: int = 1
    devices: int = 3
    controllers: int = 2
    faults: int = 50
    records: int = 600  # sealed into the outboxes before the run, split over the devices
    records_per_minute: float = 60.0  # collected live by each device during the run
    mean_gap_s: float = 1.5
    commands: int = 20
    heartbeat_s: float = 2.0
    recovery_timeout_s: float = 240.0
    # kind -> weight over muster.chaos_plan.DEFAULT_WEIGHTS (a short run hits replicas less:
    # each restart costs half a minute)
    weights: Mapping[str, float] = field(default_factory=dict)
    # "mosquitto" (one broker, $share) or "nats" (the 3-node cluster; tests/chaos/brokers.py)
    broker: str = "mosquitto"


class ChaosRun:
    def __init__(self, config: ChaosConfig, console: Console) -> None:
        self.config = config
        self.console = console
        self.out = config.out_dir
        self.database = ChaosDatabase()
        self.brokers: ChaosBrokers | None = None
        self.controllers: list[ControllerProcess] = []
        self.devices: list[ChaosDevice] = []
        self.faults: Counter[str] = Counter()
        self.unplanned: Counter[str] = Counter()
        self.commands_failed = 0
        self._down: set[str] = set()  # targets a job holds down on purpose
        self._lock = threading.Lock()
        # One per target: a fault job holds it while it breaks or restores the target, the
        # watchdog while it looks and restarts, so the two never both start the same part.
        self._target_locks: dict[str, threading.Lock] = {}
        self.loss: PacketLoss | None = None
        self.sealed_at_stop: dict[Path, set[str]] = {}
        self._log = (self.out / "faults.jsonl").open("a", encoding="utf-8")

    # -- the world -----------------------------------------------------------------------
    def start(self) -> None:
        self.database.start()
        self.database.create_database("chaos")
        data_dir = self.out / "controller"
        self.brokers = brokers = make_brokers(self.config.broker, data_dir, self.out / "brokers")
        if not brokers.starts_after_enrolment:
            brokers.start([])
        start_controllers(
            self.out,
            self.config.controllers,
            self.database.database_url,
            brokers,
            self.controllers,
        )
        collecting, idle = write_profiles(
            self.out, self.config.records_per_minute, self.config.heartbeat_s
        )
        per_device = self.config.records // self.config.devices

        made: dict[int, ChaosDevice] = {}

        def enrol(number: int) -> ChaosDevice:
            replica = self.controllers[(number - 1) % len(self.controllers)]
            device = make_device(self.out, number, replica, collecting, idle)
            with self._lock:
                made[number] = device  # closed at the end even if the start fails later
                self.devices = [made[n] for n in sorted(made)]
            device.enrol(per_device, self.config.seed * 10_000 + number, brokers)
            return device

        with ThreadPoolExecutor(max_workers=4) as pool:
            self.devices = list(pool.map(enrol, range(1, self.config.devices + 1)))
            if brokers.starts_after_enrolment:
                brokers.start([d.edge.device_id for d in self.devices])
            for device in self.devices:
                device.start()
            # Admin logins now, so commands during the faults never wait on an account.
            list(pool.map(lambda c: c.auth, self.controllers))
        self.loss = PacketLoss([d.link_ports for d in self.devices])
        self.loss.install()

    def targets(self) -> dict[str, list[str]]:
        names = [d.name for d in self.devices]
        return {
            KILL_DEVICE: names,
            CLOCK_JUMP: names,
            PARTITION_DEVICE: names,
            LATENCY_LOSS: names,
            KILL_CONTROLLER: [f"controller-{i + 1}" for i in range(len(self.controllers))],
            KILL_BROKER: self.brokers.names if self.brokers else [],
            KILL_DATABASE: ["database"],
        }

    def close(self) -> None:
        for device in self.devices:
            device.close()
        if self.loss is not None:
            self.loss.close()
        for controller in self.controllers:
            controller.stop()
        if self.brokers is not None:
            self.brokers.stop()
        self.database.stop()
        self._log.close()

    # -- faults --------------------------------------------------------------------------
    def _device(self, name: str) -> ChaosDevice:
        return next(d for d in self.devices if d.name == name)

    def _controller(self, name: str) -> ControllerProcess:
        return self.controllers[int(name.rsplit("-", 1)[1]) - 1]

    def _write(self, entry: dict[str, object]) -> None:
        with self._lock:
            self._log.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self._log.flush()

    def _target_lock(self, target: str) -> threading.Lock:
        with self._lock:
            return self._target_locks.setdefault(target, threading.Lock())

    def inject(self, fault: Fault) -> None:
        """Break, hold, restore: one job per fault."""
        with self._target_lock(fault.target):
            with self._lock:
                self._down.add(fault.target)
            self._write(fault.log_entry(seed=self.config.seed, time=datetime.now(UTC).isoformat()))
        try:
            with self._target_lock(fault.target):
                self._break(fault)
            with self._lock:
                self.faults[fault.kind] += 1
            time.sleep(fault.down_s)
        finally:
            with self._target_lock(fault.target):
                try:
                    self._bring_back(fault.kind, fault.target)
                except ComponentStartError as exc:  # the watchdog tries again, and counts it
                    self._write(
                        {"event": "restart_failed", "target": fault.target, "error": str(exc)[:400]}
                    )
                with self._lock:
                    self._down.discard(fault.target)
            self._write({"event": "recovered", "number": fault.number, "target": fault.target})

    def _inject_after(self, previous: Future[None] | None, fault: Fault) -> None:
        if previous is not None:
            wait([previous])  # its error is raised where the run collects every job
        self.inject(fault)

    def _break(self, fault: Fault) -> None:
        if fault.kind == KILL_DEVICE:
            self._device(fault.target).kill()
        elif fault.kind == CLOCK_JUMP:
            device = self._device(fault.target)
            device.stop()
            device.start(clock_offset_s=fault.clock_offset_s)
        elif fault.kind == PARTITION_DEVICE:
            device = self._device(fault.target)
            assert self.loss is not None
            self.loss.set_loss(self.devices.index(device), 100.0)  # before the resets it hides
            device.cut()
        elif fault.kind == KILL_CONTROLLER:
            self._controller(fault.target).kill()
        elif fault.kind == KILL_BROKER:
            assert self.brokers is not None
            self.brokers.kill(fault.target)
        elif fault.kind == KILL_DATABASE:
            self.database.kill()
        elif fault.kind == LATENCY_LOSS:
            device = self._device(fault.target)
            device.slow(fault.delay_ms / 1000.0)
            assert self.loss is not None
            self.loss.set_loss(self.devices.index(device), fault.loss_pct)

    def _bring_back(self, kind: str, target: str) -> None:
        if kind == PARTITION_DEVICE:
            device = self._device(target)
            assert self.loss is not None
            self.loss.set_loss(self.devices.index(device), 0.0)
            device.restore()
        elif kind == LATENCY_LOSS:
            device = self._device(target)
            device.slow(0.0)
            assert self.loss is not None
            self.loss.set_loss(self.devices.index(device), 0.0)
        elif kind == CLOCK_JUMP:
            device = self._device(target)
            device.stop()
            device.start()
        elif target.startswith("device-"):
            self._device(target).start()
        elif target.startswith("controller-"):
            self._start_controller(self._controller(target))
        elif target.startswith("broker"):
            assert self.brokers is not None
            self.brokers.restart(target)
        elif target == "database":
            self.database.restart()

    def _start_controller(self, controller: ControllerProcess, timeout: float = 600.0) -> None:
        """Start a replica and wait until it serves. One started while the database is down
        exits: start it again. One still starting after the fixture's wait (a minute or two on
        a loaded machine) is waited for, never started twice beside itself."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                process = controller.process
                if process is None or process.poll() is not None:
                    controller.start()
                else:
                    for port in (
                        controller.enrol_port,
                        controller.data_port,
                        controller.admin_port,
                    ):
                        wait_for_port("127.0.0.1", port, 60, process=process, what="controller")
                return
            except ComponentStartError:
                if time.monotonic() > deadline:
                    controller.kill()  # gave up on it: it must not come up behind the run
                    raise
                time.sleep(1.0)

    def _is_running(self, name: str) -> bool:
        if name.startswith("device-"):
            return self._device(name).running
        if name.startswith("controller-"):
            process = self._controller(name).process
            return process is not None and process.poll() is None
        if name.startswith("broker"):
            return self.brokers is not None and self.brokers.running(name)
        return self.database.running

    def watchdog(self) -> None:
        """Restart what died unasked (and count it). A part a fault job is busy with, or holds
        down, is left to the job; looking and restarting happen under the part's lock, so a
        job that brings it back meanwhile is never doubled by a second start."""
        names = [d.name for d in self.devices]
        names += [f"controller-{i + 1}" for i in range(len(self.controllers))]
        names += [*(self.brokers.names if self.brokers else []), "database"]
        for name in names:
            lock = self._target_lock(name)
            if not lock.acquire(blocking=False):
                continue
            try:
                with self._lock:
                    held = name in self._down
                if held or self._is_running(name):
                    continue
                self.unplanned[name] += 1
                self._write({"event": "unplanned_exit", "target": name, "time": _now()})
                kind = "database" if name == "database" else name
                try:
                    self._bring_back(kind, name)
                except ComponentStartError as exc:
                    self._write(
                        {"event": "restart_failed", "target": name, "error": str(exc)[:400]}
                    )
            finally:
                lock.release()

    # -- commands ------------------------------------------------------------------------
    def send_command(self, event: CommandEvent) -> None:
        try:
            self._send_command(event)
        except Exception as exc:  # a job's error would vanish in its future; count and log it
            with self._lock:
                self.commands_failed += 1
            self._write(
                {"event": "command_failed", "target": event.target, "error": str(exc)[:300]}
            )

    def _send_command(self, event: CommandEvent) -> None:
        device_id = self._device(event.target).edge.device_id
        why = issue_command(self.controllers, device_id, event)
        if why is not None:
            with self._lock:
                self.commands_failed += 1
            self._write(
                {"event": "command_refused", "target": event.target, "why": why, "time": _now()}
            )

    # -- the run -------------------------------------------------------------------------
    def run(self) -> ChaosCounts:
        cfg = self.config
        timings: dict[str, float] = {}
        started = time.monotonic()
        self.start()
        timings["start"] = time.monotonic() - started
        # A replica takes 20-40 s to start on a loaded two-core machine; planning its next kill
        # sooner only queues faults behind its restart.
        settle = {KILL_CONTROLLER: 25.0, KILL_DATABASE: 5.0, KILL_BROKER: 2.0, CLOCK_JUMP: 3.0}
        shape = PlanShape(
            faults=cfg.faults,
            targets=self.targets(),
            mean_gap_s=cfg.mean_gap_s,
            settle_s=settle,
            weights={**DEFAULT_WEIGHTS, **cfg.weights},
        )
        plan = plan_faults(cfg.seed, shape)
        duration = plan[-1].at_s if plan else 0.0
        commands = list(
            plan_commands(cfg.seed, [d.name for d in self.devices], cfg.commands, duration)
        )
        counts = ChaosCounts(cfg.seed, len(plan), {}, {})
        jobs: dict[str, Future[None]] = {}
        every: list[Future[None]] = []
        began = time.monotonic()
        with (
            # Fault jobs wait on their target's last; commands wait for a replica to answer.
            ThreadPoolExecutor(max_workers=len(self.devices) + 8 + cfg.commands) as pool,
            _progress(self.console) as progress,
        ):
            task = progress.add_task("faults", total=len(plan))
            for fault in plan:
                while time.monotonic() - began < fault.at_s:
                    while commands and commands[0].at_s <= time.monotonic() - began:
                        pool.submit(self.send_command, commands.pop(0))
                    self.watchdog()
                    progress.update(task, completed=sum(self.faults.values()))
                    time.sleep(0.1)
                # The target's last fault is over before the next, but the wait is the job's:
                # a replica that takes half a minute to start holds up only its own faults.
                job = pool.submit(self._inject_after, jobs.get(fault.target), fault)
                jobs[fault.target] = job
                every.append(job)
            for job in every:
                job.result()
            progress.update(task, completed=sum(self.faults.values()))
        for event in commands:
            self.send_command(event)
        timings["faults"] = time.monotonic() - began
        recovery = time.monotonic()
        counts.recovered = self.recover()
        timings["recovery"] = time.monotonic() - recovery
        counts.faults_by_kind = dict(self.faults)
        counts.unplanned_exits = dict(self.unplanned)
        counts.commands_issue_failed = self.commands_failed
        check_status(self.devices, self.controllers, counts)
        counts.stray_processes = {d.name: len(d.stray_processes()) for d in self.devices}
        current = {c.process.pid for c in self.controllers if c.process is not None}
        counts.stray_processes["controllers"] = len(
            set(processes_naming(str(self.out / "controller"))) - current
        )
        outboxes = count_outboxes([d.edge.state_dir for d in self.devices])
        counts.sealed_after_stop = sum(
            len(set(view.hashes) - self.sealed_at_stop.get(path, set()))
            for path, view in outboxes.items()
        )
        count_database(counts, self.database.database_url, outboxes)
        counts.seconds = {k: round(v, 1) for k, v in timings.items()}
        return counts

    def recover(self) -> bool:
        """Everything back, collection off, every outbox drained (or the timeout). What the
        outboxes hold once every collecting daemon is stopped is the run's record set; a
        record sealed after that point is counted apart (``sealed_after_stop``)."""
        for index, device in enumerate(self.devices):
            device.restore()
            device.slow(0.0)
            if self.loss is not None:
                self.loss.set_loss(index, 0.0)
        self.watchdog()
        for device in self.devices:
            with self._target_lock(device.name):
                device.stop()
                device.profile = device.idle
        self.sealed_at_stop = {
            path: set(view.hashes)
            for path, view in count_outboxes([d.edge.state_dir for d in self.devices]).items()
        }
        for device in self.devices:
            with self._target_lock(device.name):
                device.start()
        deadline = time.monotonic() + self.config.recovery_timeout_s
        with _progress(self.console) as progress:
            task = progress.add_task("draining outboxes", total=None)
            while time.monotonic() < deadline:
                self.watchdog()
                pending = sum(
                    v.states.get("sealed", 0)
                    for v in count_outboxes([d.edge.state_dir for d in self.devices]).values()
                )
                progress.update(task, description=f"draining outboxes: {pending} pending")
                if pending == 0:
                    return True
                time.sleep(1.0)
        return False


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def run_chaos(config: ChaosConfig, console: Console | None = None) -> ChaosCounts:
    """Run, print the table, write ``summary.json`` beside ``faults.jsonl`` in ``out_dir``."""
    console = console or Console(stderr=True)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    run = ChaosRun(config, console)
    try:
        counts = run.run()
    finally:
        run.close()
    render(counts, console)
    (config.out_dir / "summary.json").write_text(
        json.dumps(counts.as_json(), ensure_ascii=False, indent=2), encoding="utf-8"
    )
    return counts
