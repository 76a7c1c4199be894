"""The parts a chaos run starts and breaks, each a real process: a PostgreSQL of its own (killed
-9 and restarted, so never the test session's shared server), the brokers (``brokers.py``:
Mosquitto, or the 3-node NATS cluster), controller replicas on that database, and enrolled device daemons whose links run through TCP proxies the run
can cut or slow down (``links.py``). A device can restart under libfaketime to jump its clock.
Each daemon runs in a process group of its own, so a kill leaves nothing behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.chaos.brokers import ChaosBrokers
from tests.chaos.links import ChaosLink
from tests.fixtures.backlog import preseal_backlog
from tests.fixtures.components import ComponentStartError, require, terminate
from tests.fixtures.fleet import MUSTER, ControllerProcess, EdgeProcess, wait_until, write_profile
from tests.fixtures.postgres import PostgresServer

__all__ = [
    "ChaosDatabase",
    "ChaosDevice",
    "make_device",
    "processes_naming",
    "start_controllers",
    "write_profiles",
]

FAKETIME_LIBRARY = "/usr/lib/*/faketime/libfaketime.so.1"
DATABASE = "chaos"


class ChaosDatabase(PostgresServer):
    """A durable cluster of the run's own: with ``synchronous_commit`` on, a kill -9 of the
    postmaster loses no commit, so what the controller acked is on disk."""

    def __init__(self) -> None:
        super().__init__(durable=True)

    @property
    def database_url(self) -> str:
        return self.url(DATABASE)

    def postmaster_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return pid

    @property
    def running(self) -> bool:
        return self.postmaster_pid() is not None

    def kill(self) -> None:
        pid = self.postmaster_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not self.running, 30, "the postmaster to die")

    def restart(self, timeout: float = 60.0) -> None:
        """``pg_ctl start`` again; the orphaned backends of a killed postmaster hold its shared
        memory for a moment, so it is retried until they are gone."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._run(
                    "pg_ctl",
                    "start",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_path),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    self._options(),
                )
                self._started = True
                return
            except ComponentStartError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def start_controllers(
    directory: Path,
    count: int,
    database_url: str,
    brokers: ChaosBrokers,
    replicas: list[ControllerProcess],
) -> list[ControllerProcess]:
    """``count`` replicas over one database and one data directory (the CA and keys), each with
    its own ports and log, appended to ``replicas`` as they start (so a failure later still
    leaves them to be stopped). The first migrates the database before the others start."""
    for number in range(1, count + 1):
        flags, mqtt_url, env = brokers.replica_args(number)
        replica = ControllerProcess(
            directory, database_url=database_url, mqtt_url=mqtt_url, extra_args=flags, env=env
        )
        replica.log_path = directory / f"controller-{number}.log"
        replica.start()
        replicas.append(replica)
    return replicas


@dataclass
class ChaosDevice:
    """One enrolled device daemon, its links through proxies (uploads; MQTT, one per node)."""

    name: str
    edge: EdgeProcess
    collecting: Path
    idle: Path
    data_proxy: ChaosLink | None = None
    mqtt_proxies: list[ChaosLink] = field(default_factory=list)
    sealed_backlog: int = 0
    clock_offset_s: float = 0.0
    profile: Path = field(init=False)

    def __post_init__(self) -> None:
        self.profile = self.collecting

    @property
    def running(self) -> bool:
        return self.edge.running

    def enrol(self, backlog: int, seed: int, brokers: ChaosBrokers) -> None:
        """Enrol on an idle profile, put the backlog in its outbox, route its links through the
        proxies (the enrolment record names the endpoints the daemon dials: the data port, and
        every broker node, in order)."""
        self.edge.start(self.idle)
        enrolment_path = self.edge.state_dir / "identity" / "enrolment.json"
        wait_until(enrolment_path.exists, 120, f"{self.name} to enrol")
        wait_until((self.edge.state_dir / "outbox.sqlite3").exists, 60, f"{self.name}'s outbox")
        self.edge.stop()
        if backlog:
            preseal_backlog(self.edge.state_dir, backlog, seed=seed)
        self.sealed_backlog = backlog
        self.data_proxy = ChaosLink("127.0.0.1", self.edge.controller.data_port)
        self.mqtt_proxies = [ChaosLink("127.0.0.1", port) for port in brokers.device_ports]
        enrolment = json.loads(enrolment_path.read_text())
        enrolment["data_endpoint"] = self.data_proxy.address
        urls = [f"mqtts://{proxy.address}" for proxy in self.mqtt_proxies]
        assert len(enrolment.get("mqtt_urls") or [None]) == len(urls), enrolment
        enrolment["mqtt_url"] = urls[0]
        enrolment["mqtt_urls"] = urls if len(urls) > 1 else []
        tmp = enrolment_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(enrolment))
        tmp.replace(enrolment_path)

    def start(self, *, clock_offset_s: float = 0.0) -> None:
        """Start the daemon; with an offset its wall clock runs that far off (libfaketime), its
        monotonic clock untouched, as when an RTC is set wrong.

        The daemon is the direct child, in a process group of its own: the ``faketime`` wrapper
        forks and waits, so a kill -9 or SIGTERM of the wrapper left the real daemon running
        and sealing on the jumped clock after the run had stopped collecting. The library is
        preloaded instead, and a kill hits the whole group."""
        if self.edge.process is not None and self.running:
            # Two daemons on one state directory would both seal: a harness bug, never hidden.
            raise RuntimeError(f"{self.name} still runs (pid {self.edge.process.pid}); stop it")
        self.clock_offset_s = clock_offset_s
        command = [
            *MUSTER,
            "edge",
            "run",
            "--profile",
            str(self.profile),
            "--state-dir",
            str(self.edge.state_dir),
        ]
        env = dict(os.environ)
        if clock_offset_s:
            library = require(FAKETIME_LIBRARY, "to jump a device's clock (libfaketime)")
            env["LD_PRELOAD"] = " ".join(filter(None, [library, env.get("LD_PRELOAD")]))
            env["FAKETIME"] = f"{int(clock_offset_s):+d}"
            env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
        with self.edge.log_path.open("ab") as log:
            self.edge.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )

    def kill(self) -> None:
        """kill -9 of the device's whole process group (a power cut), and wait for it."""
        process = self.edge.process
        if process is None:
            return
        _kill_group(process.pid)
        process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM to the daemon (it shuts down cleanly), then kill -9 of whatever is left in
        its group."""
        process = self.edge.process
        if process is None:
            return
        terminate(process, grace=20)
        _kill_group(process.pid)

    def stray_processes(self) -> list[int]:
        """Pids of processes other than the current daemon whose command line names this
        device's state directory: 0 is the only good answer."""
        current = self.edge.process.pid if self.running and self.edge.process else None
        return [pid for pid in processes_naming(str(self.edge.state_dir)) if pid != current]

    def cut(self) -> None:
        for proxy in self._proxies:
            proxy.cut()

    def restore(self) -> None:
        for proxy in self._proxies:
            proxy.restore()

    def slow(self, delay_s: float) -> None:
        for proxy in self._proxies:
            proxy.slow(delay_s)

    @property
    def _proxies(self) -> list[ChaosLink]:
        return [p for p in (self.data_proxy, *self.mqtt_proxies) if p is not None]

    @property
    def link_ports(self) -> list[int]:
        return [p.port for p in self._proxies]

    def close(self) -> None:
        self.stop()
        for proxy in self._proxies:
            proxy.close()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def processes_naming(text: str) -> list[int]:
    """Pids of live processes whose command line holds ``text`` as one argument."""
    wanted = text.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if wanted in argv and state != "Z":
            found.append(int(entry.name))
    return sorted(found)


def make_device(
    directory: Path, number: int, controller: ControllerProcess, collecting: Path, idle: Path
) -> ChaosDevice:
    """A device enrolled with a code from ``controller`` (it uploads to that replica), of a
    township of its own."""
    code = controller.create_code(township=f"370902{number:03d}000")
    edge = EdgeProcess(directory / f"device-{number}", controller, code, idle)
    return ChaosDevice(f"device-{number}", edge, collecting, idle)


def write_profiles(
    directory: Path, records_per_minute: float, heartbeat_s: float
) -> tuple[Path, Path]:
    """(collecting, idle) simulator profiles: the chaos run collects, recovery drains."""
    collecting = write_profile(
        directory / "collecting.yaml",
        records_per_minute=records_per_minute,
        heartbeat_s=heartbeat_s,
    )
    idle = write_profile(directory / "idle.yaml", records_per_minute=0, heartbeat_s=heartbeat_s)
    return collecting, idle
