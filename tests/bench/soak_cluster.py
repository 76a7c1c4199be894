"""The fleet soak over the broker cluster: N simulated devices (100,000 by default) beating every
60 s through a 3-node NATS cluster into controller replicas on one PostgreSQL, for M minutes
(30 by default), watching that the heartbeats are held, that offline detection stays right, and
that each process's memory stays flat. First it measures what a second replica adds.

Parts, all real: ``nats-server`` x 3 (MQTT over mutual TLS, the devices' per-device rights and a
fleet simulator identity, tests/fixtures/nats_cluster.py), ``muster controller run`` x R with
``telemetry_transport = "nats"`` (queue group + JetStream, controller/fleet/telemetry_nats.py),
each on its own node, PostgreSQL (durable), and ``muster sim fleet``'s simulator in this process,
one connection group per node.

1. replicas: a burst of B heartbeats to 1 replica, then (a second one started) to 2; each step's
   rate, each replica's share and the controllers' CPU per message.
2. soak:     every device beats on its 60 s schedule; a share hangs (status online, beats stop:
   must read ``stale`` three beats later) and a share is switched off (retained offline status:
   must read ``offline``). Every ``--sample`` seconds: the rate sent and handled per replica,
   the lag, the devices whose state is not what it should be, and each process's memory (PSS).
3. verdict:  heartbeats held (the lag at the end under one interval's worth), no device misjudged
   after the first three beats, and memory flat (after the warm-up, no process grew by more than
   ``--growth-mb`` or 10 %); the exit status says whether all three hold.

    bash scripts/soak.sh [--devices 100000] [--minutes 30] [--burst 50000] [--out soak.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from controller.devices.pki_store import ensure_controller_pki
from edge.simulators.fleet import FleetShape, FleetSimulator
from muster.clock import SystemClock
from muster.mqtt import client_tls_context
from muster.profiles import load_profile
from tests.bench.bench_fleet import ControllerUnderTest, cpu_seconds, say
from tests.fixtures.nats_telemetry import TelemetryNatsCluster
from tests.fixtures.postgres import PostgresServer

STALE_AFTER_BEATS = 3  # controller/fleet/rules.py: stale after three missed beats
SWEEP_SLACK_S = 30.0  # the fleet monitor's sweep (10 s) and a loaded machine's delay


@functools.cache
def profile_interval(name: str) -> float:
    """The heartbeat interval the controller judges a device by: its profile's."""
    return load_profile(name).uplink.heartbeat_interval_s


def pss_mb(pid: int) -> tuple[float, float]:
    """(PSS, PSS less shared memory segments), from one read of the process's rollup. PSS counts
    shared pages once across processes; the second leaves out PostgreSQL's shared buffers
    (128 MB here), which fill as its backends touch more pages: warming, not growth."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0, 0.0
    fields = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in ("Pss", "Pss_Shmem"):
            fields[name] = int(rest.split()[0]) / 1024
    pss = fields.get("Pss", 0.0)
    return pss, pss - fields.get("Pss_Shmem", 0.0)


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


class Fleet:
    """One simulator per node, each a third of the devices, run side by side."""

    def __init__(self, cluster: TelemetryNatsCluster, devices: int, shape: dict[str, float]):
        cert = cluster.allow_simulator()
        self.cluster, self.cert, self.parts = cluster, cert, []
        self._spec = (devices, shape)

    def connect(self) -> None:
        devices, shape = self._spec
        tls = client_tls_context(self.cluster.ca_path, self.cert.cert, self.cert.key)
        nodes = self.cluster.nodes
        share = -(-devices // len(nodes))
        for k, node in enumerate(nodes):
            first, count = k * share, min(share, devices - k * share)
            sim = FleetSimulator(
                self.cluster.url(node),
                count,
                first=first,
                connections=2,
                shape=FleetShape(seed=100 + k, stuck_share=0.0, reader_faults_per_hour=0.0,
                                 **shape),
                clock=SystemClock(),
                tls_context=tls,
            )  # fmt: skip
            sim.connect()
            self.parts.append(sim)

    def each(self, job: str, *args: Any, **kwargs: Any) -> None:
        threads = [
            threading.Thread(target=getattr(sim, job), args=args, kwargs=kwargs)
            for sim in self.parts
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    @property
    def sent(self) -> int:
        return sum(sim.sent for sim in self.parts)

    def expected(self, elapsed_s: float) -> dict[str, str]:
        """What each device's state must read ``elapsed_s`` into the soak: offline once switched
        off; once its first beat of the soak is in (a device never heard from reads stale),
        online while it beats, and for a hung one online until three of its profile's beats are
        missed, stale once that and a sweep have passed (its last beat fell within its first
        interval). A device in between is not judged."""
        want: dict[str, str] = {}
        for sim in self.parts:
            for device_id, device in sim.devices.items():
                if device.mode == "offline":
                    want[device_id] = "offline"
                    continue
                heard = device.interval_s + SWEEP_SLACK_S
                if elapsed_s < heard:
                    continue
                if device.mode == "ok":
                    want[device_id] = "online"
                    continue
                stale_after = STALE_AFTER_BEATS * profile_interval(device.sim.profile)
                if elapsed_s < stale_after:
                    want[device_id] = "online"
                elif elapsed_s > device.interval_s + stale_after + SWEEP_SLACK_S:
                    want[device_id] = "stale"
        return want

    def hang_judged_after(self) -> float:
        """Seconds into the soak after which every hung device is judged stale."""
        return max(
            (
                d.interval_s + STALE_AFTER_BEATS * profile_interval(d.sim.profile) + SWEEP_SLACK_S
                for sim in self.parts
                for d in sim.devices.values()
                if d.mode == "hang"
            ),
            default=0.0,
        )

    def close(self) -> None:
        for sim in self.parts:
            sim.close()


class Replicas:
    def __init__(self, directory: Path, cluster: TelemetryNatsCluster, db: str, count: int):
        urls = [cluster.client_url(node) for node in cluster.nodes]
        self.all = []
        for n in range(count):
            node = cluster.nodes[n % len(cluster.nodes)]
            mine = urls[n % len(urls) :] + urls[: n % len(urls)]  # its own node first
            env = {
                "MUSTER_CONTROLLER_TELEMETRY_TRANSPORT": "nats",
                "MUSTER_CONTROLLER_NATS_URLS": json.dumps(mine),
                "MUSTER_CONTROLLER_NATS_STREAM_REPLICAS": "3",
            }
            self.all.append(
                ControllerUnderTest(directory, cluster.url(node), n=n, database_url=db, env=env)
            )

    @property
    def running(self) -> list[ControllerUnderTest]:
        return [c for c in self.all if c.process is not None]

    def start(self, count: int) -> None:
        for replica in self.all[:count]:
            if replica.process is None:
                if replica is not self.all[0]:
                    replica._auth = self.all[0].auth()  # one admin, one token for all
                replica.start()

    def wait_handled(self, target: int, timeout: float = 900.0) -> list[int]:
        deadline = time.monotonic() + timeout
        while sum(handled := self.handled()) < target:
            if time.monotonic() > deadline:
                raise SystemExit(f"replicas handled {sum(handled)} of {target} in {timeout:.0f} s")
            time.sleep(0.1)
        return handled

    def handled(self) -> list[int]:
        return [c.telemetry()["messages_handled"] for c in self.running]

    def pids(self) -> list[int]:
        return [c.process.pid for c in self.running if c.process is not None]

    def stop(self) -> None:
        for replica in self.all:
            replica.stop()


def burst(replicas: Replicas, fleet: Fleet, count: int) -> dict[str, Any]:
    before = replicas.handled()
    cpu = sum(cpu_seconds(pid) for pid in replicas.pids())
    start = time.monotonic()
    fleet.each("burst", count // len(fleet.parts))
    target = sum(before) + count // len(fleet.parts) * len(fleet.parts)
    handled = replicas.wait_handled(target)
    span = time.monotonic() - start
    used = sum(cpu_seconds(pid) for pid in replicas.pids()) - cpu
    each = [(after - first) / span for first, after in zip(before, handled, strict=True)]
    return {"replicas": len(before), "rate": sum(each), "each": each,
            "cpu_us": used / (target - sum(before)) * 1e6}  # fmt: skip


def states(db: str) -> dict[str, str]:
    with psycopg.connect(db.replace("postgresql+psycopg://", "postgresql://")) as connection:
        return dict(connection.execute("SELECT id, state FROM devices").fetchall())


def memory(
    replicas: Replicas, cluster: TelemetryNatsCluster, pg: PostgresServer
) -> tuple[dict[str, float], dict[str, float]]:
    """Each process's (PSS, PSS less shared memory) in MB, from one pass over /proc."""
    pids: dict[str, list[int]] = {
        f"controller-{n + 1}": [pid] for n, pid in enumerate(replicas.pids())
    }
    for node in cluster.nodes:
        pids[f"nats-{node.name}"] = [node.process.pid] if node.process else []
    postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
    pids["postgresql"] = [postmaster, *children(postmaster)]
    pids["simulator"] = [os.getpid()]
    pss: dict[str, float] = {}
    own: dict[str, float] = {}
    for name, group in pids.items():
        sizes = [pss_mb(pid) for pid in group]
        pss[name] = sum(size[0] for size in sizes)
        own[name] = sum(size[1] for size in sizes)
    return pss, own


def soak(replicas: Replicas, fleet: Fleet, cluster: TelemetryNatsCluster, pg: PostgresServer,
         db: str, seconds: float, sample: float) -> list[dict[str, Any]]:  # fmt: skip
    stop = threading.Event()
    thread = threading.Thread(target=fleet.each, args=("run", seconds), kwargs={"stop": stop})
    base_sent, base_handled = fleet.sent, replicas.handled()
    last_sent, last_handled, last_t = base_sent, base_handled, time.monotonic()
    t0 = last_t
    thread.start()
    windows: list[dict[str, Any]] = []
    try:
        while thread.is_alive():
            thread.join(sample)
            now = time.monotonic()
            handled, sent = replicas.handled(), fleet.sent
            span = now - last_t
            got = states(db)
            pss, own = memory(replicas, cluster, pg)
            expected = fleet.expected(now - t0)
            wrong = [d for d, want in expected.items() if got.get(d) != want]
            counts = {s: list(got.values()).count(s) for s in ("online", "stale", "offline")}
            window = {
                "at_s": round(now - t0),
                "sent_per_s": (sent - last_sent) / span,
                "handled_per_s": [
                    (h - p) / span for h, p in zip(handled, last_handled, strict=True)
                ],
                "lag": (sent - base_sent) - (sum(handled) - sum(base_handled)),
                "states": counts,
                "judged": len(expected),
                "misjudged": len(wrong),
                "misjudged_sample": wrong[:5],
                "memory_mb": pss,
                "memory_own_mb": own,
            }
            windows.append(window)
            say(
                f"  [{window['at_s']:5d}s] sent {window['sent_per_s']:6.0f}/s · handled "
                + " + ".join(f"{r:5.0f}" for r in window["handled_per_s"])
                + f"/s · lag {window['lag']:6d} · online {counts['online']} stale "
                f"{counts['stale']} offline {counts['offline']} · misjudged "
                f"{window['misjudged']}/{window['judged']} · MB "
                + " ".join(f"{k} {v:.0f}" for k, v in window["memory_mb"].items())
            )
            last_sent, last_handled, last_t = sent, handled, now
    finally:
        stop.set()
        thread.join()
    return windows


def verdict(windows: list[dict[str, Any]], devices: int, growth_mb: float, warmup_s: float,
            hang_judged_after: float) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    problems: list[str] = []
    notes: list[str] = []
    end_lag = windows[-1]["lag"]
    # One interval's beats may be in flight; more than that left at the end is not held.
    if end_lag > devices:
        problems.append(f"heartbeats not held: {end_lag} behind at the end")
    bad = [w for w in windows if w["misjudged"]]
    if bad:
        problems.append(
            f"devices misjudged in {len(bad)} of {len(windows)} samples, e.g. at "
            f"{bad[0]['at_s']} s: {', '.join(bad[0]['misjudged_sample'])}"
        )
    if windows[-1]["at_s"] < hang_judged_after:
        notes.append(
            f"hung devices not judged stale: the soak ended before {hang_judged_after:.0f} s "
            "(three beats of their profile and a sweep)"
        )
    later = [w for w in windows if w["at_s"] >= warmup_s] or windows[-1:]
    growth = {}
    # Judged without shared memory segments (see pss_mb); both are kept.
    for name in later[0]["memory_own_mb"]:
        first, last = later[0]["memory_own_mb"][name], later[-1]["memory_own_mb"].get(name, 0.0)
        peak = max(w["memory_own_mb"].get(name, 0.0) for w in later)
        growth[name] = {"after_warmup_mb": first, "end_mb": last, "peak_mb": peak,
                        "growth_mb": last - first,
                        "pss_end_mb": later[-1]["memory_mb"].get(name, 0.0)}  # fmt: skip
        if last - first > max(growth_mb, 0.10 * first):
            problems.append(f"{name} grew {first:.0f} → {last:.0f} MB after the warm-up")
    rates = [sum(w["handled_per_s"]) for w in windows[1:]] or [0.0]
    return {"end_lag": end_lag, "handled_per_s_median": statistics.median(rates),
            "memory": growth, "notes": notes}, problems  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=60.0, help="heartbeat interval (s)")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--burst", type=int, default=50_000, help="0: skip the replica steps")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--hang-share", type=float, default=0.005)
    parser.add_argument("--offline-share", type=float, default=0.005)
    parser.add_argument("--warmup", type=float, default=300.0, help="seconds before memory counts")
    parser.add_argument("--growth-mb", type=float, default=25.0)
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args()
    # A SIGTERM (timeout, a CI job cancelled) stops the parts as an interrupt does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with tempfile.TemporaryDirectory(prefix="muster-soak-") as tmp:
        directory = Path(tmp)
        pg = PostgresServer(durable=True)
        pg.start()
        pg.create_database("soak")
        db = pg.url("soak")
        pki = ensure_controller_pki(
            directory / "controller", ["127.0.0.1", "localhost"], now=datetime.now(UTC)
        )
        cluster = TelemetryNatsCluster(directory / "nats", authority=(pki.ca_key, pki.ca_cert))
        shape = {"offline_share": args.offline_share, "hang_share": args.hang_share,
                 "interval_s": args.interval}  # fmt: skip
        fleet = Fleet(cluster, args.devices, shape)
        replicas = Replicas(directory, cluster, db, args.replicas)
        figures: dict[str, Any] = {"devices": args.devices, "minutes": args.minutes}
        try:
            say(f"registering {args.devices} simulated devices in PostgreSQL…")
            replicas.all[0].register(args.devices)
            say("starting the 3-node NATS cluster…")
            cluster.start()
            say("1 replica: starting…")
            replicas.start(1)
            fleet.connect()
            say("announcing every device's status (retained, on the cluster)…")
            fleet.each("announce")
            replicas.wait_handled(args.devices)  # every status stored before anything is timed
            steps = []
            for count in range(1, args.replicas + 1):
                replicas.start(count)
                if args.burst:
                    say(f"1.{count} {args.burst} heartbeats to {count} replica(s)…")
                    step = burst(replicas, fleet, args.burst)
                    steps.append(step)
                    say(f"   {step['rate']:,.0f} msg/s, each " + ", ".join(
                        f"{r:,.0f}" for r in step["each"]) + f"; {step['cpu_us']:.0f} µs CPU/msg")  # fmt: skip
            if len(steps) > 1:
                say(
                    f"   a second replica: {steps[1]['rate'] / steps[0]['rate']:.2f}× the rate of one"
                )
            figures["replica_steps"] = steps
            say(f"2. soak: {args.devices} devices at a {args.interval:.0f} s heartbeat for "
                f"{args.minutes:.0f} min over {len(replicas.running)} replicas…")  # fmt: skip
            windows = soak(replicas, fleet, cluster, pg, db, args.minutes * 60, args.sample)
            figures["windows"] = windows
            summary, problems = verdict(windows, args.devices, args.growth_mb, args.warmup,
                                        fleet.hang_judged_after())  # fmt: skip
            figures.update(summary=summary, problems=problems)
            say("3. memory (PSS less shared memory, MB) after the warm-up → end (peak):")
            for name, m in summary["memory"].items():
                say(f"   {name:14s} {m['after_warmup_mb']:7.1f} → {m['end_mb']:7.1f} "
                    f"({m['peak_mb']:.1f}), {m['growth_mb']:+.1f}")  # fmt: skip
            say(f"   handled {summary['handled_per_s_median']:,.0f} msg/s (median window), "
                f"lag at the end {summary['end_lag']}")  # fmt: skip
            for note in summary["notes"]:
                say(f"   note: {note}")
        finally:
            fleet.close()
            replicas.stop()
            cluster.stop()
            pg.stop()
        if args.out:
            args.out.write_text(json.dumps(figures, indent=1, ensure_ascii=False))
        print(json.dumps({k: v for k, v in figures.items() if k != "windows"}, ensure_ascii=False))
        if problems:
            say("soak: FAILED: " + "; ".join(problems))
            sys.exit(1)
        say("soak: held, offline detection right, memory flat")


if __name__ == "__main__":
    main()
