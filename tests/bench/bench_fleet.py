"""Telemetry throughput of the controller at national scale, against the broker's raw delivery
rate to a bare subscriber measured in the same run; then 100,000 devices at a 60 s heartbeat held
over time; then the admin pages' load time with 100,000 devices.

Parts, all real: Mosquitto (plain listener: the simulator multiplexes many devices per
connection, which the per-device TLS ACL would refuse), ``muster controller run`` processes on
one SQLite database (WAL, synchronous=FULL), ``muster sim fleet``'s simulator in this process,
and ``mosquitto_sub`` (C) as the bare subscriber.

1. raw:        the simulator sends M heartbeats as fast as it can; time until mosquitto_sub has
               received all M.
2. controller: the same burst to one controller process, then (``--controllers N``) to 2, ..., N
               processes sharing the subscription (``$share``, one started per step); time until
               they have handled all M (applied, or judged older than what is stored: processes
               sharing the load see a device's beats out of order). Each step prints the total
               and each process's rate, both as ratios to the raw rate.
3. sustained:  N devices, each heartbeat every 60 s (N/60 msg/s), for D seconds, with every
               process running; per 10 s window the rate sent, received and handled, and the lag
               (sent - handled) at its end.
4. pages:      server time of the fleet pages, and Chromium's load of the overview.

    python tests/bench/bench_fleet.py [--devices 100000] [--burst 100000] [--sustain 120]
                                      [--controllers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from edge.simulators.fleet import FleetShape, FleetSimulator
from muster.clock import SystemClock
from muster.fleet_layout import simulated_device
from tests.fixtures.admin_login import login
from tests.fixtures.components import free_port, require, terminate, wait_for_port
from tests.fixtures.mosquitto import MosquittoBroker

MUSTER = [sys.executable, "-m", "muster"]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class ControllerUnderTest:
    def __init__(
        self,
        directory: Path,
        broker_url: str,
        shared_group: str = "",
        n: int = 0,
        *,
        database_url: str = "",
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = directory / "controller"
        self.admin_port = free_port()
        self.log = directory / f"controller{n}.log"
        self.broker_url = broker_url
        self.shared_group = shared_group
        # Every command on this controller's data: its directory, and the database when not the
        # directory's SQLite file.
        self.db_args = ["--data-dir", str(self.data_dir)]
        if database_url:
            self.db_args += ["--database-url", database_url]
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self._auth: dict[str, str] = {}
        self._client: httpx.Client | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def register(self, devices: int) -> None:
        subprocess.run(
            [
                *MUSTER,
                "controller",
                "register-simulated",
                "--devices",
                str(devices),
                *self.db_args,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *MUSTER,
                    "controller",
                    "run",
                    *self.db_args,
                    "--mqtt-url",
                    self.broker_url,
                    "--admin-port",
                    str(self.admin_port),
                    "--enrol-port",
                    str(free_port()),
                    "--data-port",
                    str(free_port()),
                    "--log-level",
                    "WARNING",
                    *(["--shared-group", self.shared_group] if self.shared_group else []),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )
        wait_for_port(
            "127.0.0.1",
            self.admin_port,
            180,  # a loaded machine (the test suite beside it) starts a controller slowly
            process=self.process,
            log_path=self.log,
            what="controller",
        )
        while True:
            try:
                if ControllerUnderTest.telemetry(self)["connected"]:  # this process alone
                    break
            except httpx.TransportError:
                if self.process.poll() is not None:
                    tail = self.log.read_text(errors="replace")[-3000:]
                    raise SystemExit(
                        f"controller exited ({self.process.returncode}):\n{tail}"
                    ) from None
                raise
            time.sleep(0.1)

    def auth(self) -> dict[str, str]:
        """A national admin's bearer token: the admin API needs a login like any client."""
        if not self._auth:
            db = self.db_args
            subprocess.run(
                [*MUSTER, "controller", "admin", "add", "--username", "bench", "--role", "ministry",
                 "--region", "", *db],
                input="Bench-passw0rd\n", check=True, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            token = subprocess.run(
                [*MUSTER, "controller", "admin", "token", "--username", "bench", *db],
                check=True, capture_output=True, text=True, timeout=60,
            ).stdout.strip()  # fmt: skip
            self._auth = {"Authorization": f"Bearer {token}"}
        return self._auth

    def telemetry(self) -> dict[str, Any]:
        # One client kept open: a new one per poll builds an SSL context each time (~10 ms of
        # this process's CPU, taken from the controllers it measures).
        if self._client is None:
            self._client = httpx.Client(timeout=30)
        response = self._client.get(f"{self.url}/api/v1/telemetry", headers=self.auth())
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def wait_handled(self, target: int, timeout: float, interval: float = 0.05) -> float:
        """Monotonic time at which ``messages_handled`` reached ``target``. Handled, not
        applied: processes sharing the load see a device's beats out of order, and a beat older
        than the one already stored is judged (a read and a comparison) but changes nothing."""
        deadline = time.monotonic() + timeout
        while True:
            handled = self.telemetry()["messages_handled"]
            if handled >= target:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise SystemExit(f"controller handled {handled} of {target} in {timeout:.0f} s")
            time.sleep(interval)

    def settle(self) -> int:
        """Wait until the controller has handled everything it received and nothing more comes;
        returns the count handled."""
        last = -1
        while True:
            stats = self.telemetry()
            if stats["messages_handled"] == stats["messages_received"] == last:
                return int(last)
            last = (
                stats["messages_received"]
                if stats["messages_handled"] == stats["messages_received"]
                else -1
            )
            time.sleep(1.0)

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is not None:
            terminate(self.process, grace=15)


class Controllers(ControllerUnderTest):
    """Several controller processes on one database, splitting the heartbeats through an MQTT
    shared subscription; their counters are summed. With one process it is that process."""

    def __init__(self, directory: Path, broker_url: str, count: int) -> None:
        group = "bench" if count > 1 else ""
        super().__init__(directory, broker_url, group)
        self.others = [
            ControllerUnderTest(directory, broker_url, group, n) for n in range(1, count)
        ]

    @property
    def running(self) -> list[ControllerUnderTest]:
        return [c for c in (self, *self.others) if c.process is not None]

    @property
    def pids(self) -> list[int]:
        return [c.process.pid for c in self.running if c.process is not None]

    def start(self, count: int = 1) -> None:
        """Run ``count`` processes: the first migrates the database; then the rest, one at a
        time, joining the shared subscription."""
        if self.process is None:
            super().start()
        for other in self.others[: count - 1]:
            if other.process is None:
                other._auth = self.auth()
                other.start()

    def handled_each(self) -> list[int]:
        """``messages_handled`` of each running process."""
        return [ControllerUnderTest.telemetry(c)["messages_handled"] for c in self.running]

    def telemetry(self) -> dict[str, Any]:
        stats = super().telemetry()
        for other in self.running[1:]:
            extra = other.telemetry()
            for key in ("messages_applied", "messages_received", "messages_handled"):
                stats[key] += extra[key]
            stats["connected"] = stats["connected"] and extra["connected"]
        return stats

    def stop(self) -> None:
        for other in self.others:
            other.stop()
        super().stop()


def raw_rate(broker: MosquittoBroker, sim: FleetSimulator, count: int) -> float:
    sub = subprocess.Popen(
        [
            require("mosquitto_sub", "as the bare subscriber"),
            "-h",
            broker.host,
            "-p",
            str(broker.port),
            "-q",
            "1",
            "-t",
            "muster/v1/dev/+/telemetry",
            "-C",
            str(count),
        ],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # subscribed
    start = time.monotonic()
    sim.burst(count)
    sub.wait(timeout=600)
    return count / (time.monotonic() - start)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_profile(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling every thread of ``pid`` (collapsed stacks, native frames folded into
    their Python caller) until ``stop_profile``."""
    spy = Path(sys.executable).with_name("py-spy")
    profiler = subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
         "--nonblocking", "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # attached
    return profiler


def stop_profile(profiler: subprocess.Popen[bytes]) -> None:
    profiler.send_signal(signal.SIGINT)
    profiler.wait(timeout=60)


def controller_rate(
    controller: Controllers, sim: FleetSimulator, count: int, profile: Path | None = None
) -> tuple[float, float, list[float]]:
    """(messages handled per second by all running processes, their CPU microseconds per
    message, each process's own rate over the same span)."""
    before = controller.settle()
    each_before = controller.handled_each()
    profiler = start_profile(controller.pids[0], profile) if profile else None
    cpu = sum(cpu_seconds(pid) for pid in controller.pids)
    start = time.monotonic()
    sim.burst(count)
    done = controller.wait_handled(before + count, timeout=600, interval=0.1)
    used = sum(cpu_seconds(pid) for pid in controller.pids) - cpu
    each = [
        (after - first) / (done - start)
        for first, after in zip(each_before, controller.handled_each(), strict=True)
    ]
    if profiler is not None:
        stop_profile(profiler)
    return count / (done - start), used / count * 1e6, each


def sustained(
    controller: Controllers, sim: FleetSimulator, seconds: float
) -> list[dict[str, float]]:
    stop = threading.Event()
    base = controller.telemetry()
    sent0 = sim.sent
    thread = threading.Thread(target=sim.run, args=(seconds,), kwargs={"stop": stop})
    thread.start()
    windows: list[dict[str, float]] = []
    t0 = time.monotonic()
    last = {"sent": 0, "received": 0, "handled": 0, "t": t0}
    try:
        while thread.is_alive():
            thread.join(10.0)
            now = time.monotonic()
            stats = controller.telemetry()
            cur = {
                "sent": sim.sent - sent0,
                "received": stats["messages_received"] - base["messages_received"],
                "handled": stats["messages_handled"] - base["messages_handled"],
                "t": now,
            }
            span = now - last["t"]
            window = {
                "at_s": round(now - t0, 1),
                "span_s": span,
                "sent_per_s": (cur["sent"] - last["sent"]) / span,
                "received_per_s": (cur["received"] - last["received"]) / span,
                "handled_per_s": (cur["handled"] - last["handled"]) / span,
                "lag_messages": cur["sent"] - cur["handled"],
            }
            windows.append(window)
            say(
                f"  [{window['at_s']:5.0f}s] sent {window['sent_per_s']:7.0f}/s · received "
                f"{window['received_per_s']:7.0f}/s · handled {window['handled_per_s']:7.0f}/s · "
                f"lag {window['lag_messages']:.0f} messages"
            )
            last = cur
    finally:
        stop.set()
        thread.join()
    return windows


def page_times(controller: ControllerUnderTest, devices: int) -> dict[str, float]:
    device = simulated_device(devices // 2).device_id
    paths = {
        "overview /": "/",
        "province /?region=37": "/?region=37",
        "offline devices": "/devices?state=offline",
        "search by id": f"/devices?q={device[-9:]}",
        "device page": f"/devices/{device}",
        "alerts": "/alerts",
        "data flow": "/flow",
    }
    out: dict[str, float] = {}
    with httpx.Client(base_url=controller.url, headers=controller.auth(), timeout=60) as client:
        for name, path in paths.items():
            samples = []
            for _ in range(5):
                start = time.perf_counter()
                client.get(path).raise_for_status()
                samples.append(time.perf_counter() - start)
            out[name] = statistics.median(samples)
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            page = browser.new_page()
            login(page, controller.url, "bench", "Bench-passw0rd")
            samples = []
            for _ in range(3):
                start = time.perf_counter()
                page.goto(controller.url + "/", wait_until="load")
                samples.append(time.perf_counter() - start)
            out["chromium: overview load"] = statistics.median(samples)
            browser.close()
    except Exception as exc:  # the figure is optional; the server times above are not
        say(f"  (no Chromium figure: {exc})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--burst", type=int, default=100_000)
    parser.add_argument("--sustain", type=float, default=120.0, help="seconds at 60 s heartbeats")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--controllers",
        type=int,
        default=1,
        help="measure 1, 2, ..., N controller processes sharing the subscription ($share)",
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy the controller during the burst, stacks to this file"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="muster-bench-fleet-") as tmp:
        directory = Path(tmp)
        broker = MosquittoBroker(directory / "broker", extra_config="max_queued_messages 1000000")
        broker.start()
        controller = Controllers(directory, broker.url, args.controllers)
        try:
            say(f"registering {args.devices} simulated devices…")
            controller.register(args.devices)
            shape = FleetShape(
                offline_share=0.0,
                hang_share=0.0,
                stuck_share=0.0,
                reader_faults_per_hour=0.0,
                interval_s=60.0,
            )
            sim = FleetSimulator(
                broker.url,
                args.devices,
                connections=args.connections,
                shape=shape,
                clock=SystemClock(),
            )
            sim.connect()

            say(f"1. raw: {args.burst} heartbeats to mosquitto_sub…")
            raw = raw_rate(broker, sim, args.burst)
            say(f"   {raw:,.0f} msg/s")

            steps: list[dict[str, Any]] = []
            for count in range(1, args.controllers + 1):
                say(f"2.{count} {count} controller process(es): starting…")
                controller.start(count)
                if count == 1:
                    say("   announcing every device's status…")
                    sim.announce()
                say(f"   {args.burst} heartbeats to {count} controller process(es)…")
                ctl, cpu_us, each = controller_rate(
                    controller, sim, args.burst, args.profile if count == 1 else None
                )
                steps.append({"processes": count, "total": ctl, "cpu_us": cpu_us, "each": each})
                say(
                    f"   {ctl:,.0f} msg/s ({ctl / raw:.3f}× raw), per process "
                    + ", ".join(f"{r:,.0f} ({r / raw:.3f}×)" for r in each)
                    + f"; {cpu_us:.0f} µs of controller CPU per message"
                )

            say(
                f"3. sustained: {args.devices} devices at a 60 s heartbeat for {args.sustain:.0f} s…"
            )
            windows = sustained(controller, sim, args.sustain)
            sim.close()
            controller.settle()

            say("4. pages at this fleet size…")
            pages = page_times(controller, args.devices)
        finally:
            controller.stop()
            broker.stop()

    target = args.devices / 60.0
    # A last window of a second or two, as the run ends, says nothing about the steady rate.
    steady = [w for w in windows[1:] if w["span_s"] >= 5.0] or windows
    handled = statistics.mean(w["handled_per_s"] for w in steady)
    lags = [w["lag_messages"] for w in windows]
    one = steps[0]["total"]
    last = steps[-1]
    ctl, cpu_us, ratio = last["total"], last["cpu_us"], last["total"] / raw
    print(f"{'what':<58} {'figure':>12}")
    print(f"{'broker raw delivery to a bare subscriber (msg/s)':<58} {raw:>12,.0f}")
    for step in steps:
        n = step["processes"]
        procs = "one controller process" if n == 1 else f"{n} processes ($share)"
        print(f"{procs + ': heartbeats handled (msg/s)':<58} {step['total']:>12,.0f}")
        print(f"{procs + ': ratio to raw (target >= 0.8)':<58} {step['total'] / raw:>12.3f}")
        if n > 1:
            each = ", ".join(f"{r / raw:.3f}" for r in step["each"])
            print(f"{procs + ': each process, ratio to raw':<58} {each:>12}")
        print(f"{procs + ': controller CPU per heartbeat (µs)':<58} {step['cpu_us']:>12.0f}")
    print(
        f"{f'sustained: offered load, {args.devices} devices @60 s (msg/s)':<58} {target:>12,.0f}"
    )
    print(f"{'sustained: handled, mean after the first window (msg/s)':<58} {handled:>12,.0f}")
    print(f"{'sustained: lag at each window end (messages)':<58} {[round(x) for x in lags]!s:>12}")
    for name, seconds in pages.items():
        print(f"{'page ' + name + ' (ms)':<58} {seconds * 1000:>12.0f}")
    print(
        json.dumps(
            {
                "devices": args.devices,
                "controllers": args.controllers,
                "raw_msg_per_s": round(raw),
                "controller_msg_per_s": round(ctl),
                "ratio": round(ratio, 3),
                "controller_cpu_us_per_msg": round(cpu_us),
                "one_process_msg_per_s": round(one),
                "per_process_msg_per_s": [round(r) for r in last["each"]],
                "steps": [
                    {
                        "processes": step["processes"],
                        "msg_per_s": round(step["total"]),
                        "ratio": round(step["total"] / raw, 3),
                        "each_msg_per_s": [round(r) for r in step["each"]],
                        "cpu_us_per_msg": round(step["cpu_us"]),
                    }
                    for step in steps
                ],
                "sustained_target_msg_per_s": round(target),
                "sustained_handled_msg_per_s": round(handled),
                "sustained_lag_messages": [round(x) for x in lags],
                "page_ms": {k: round(v * 1000) for k, v in pages.items()},
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
