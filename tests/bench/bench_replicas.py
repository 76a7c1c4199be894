"""What a second controller replica adds to upload ingest, on one PostgreSQL: the same backlog
uploaded by the same number of device daemons into 1 replica, then into 2 (each device enrolled
with, and uploading to, one of them), each step on a fresh database, in one run.

Parts, all real: PostgreSQL (durable: ``synchronous_commit`` on), Mosquitto (plain; the replicas
share the telemetry through ``$share``), ``muster controller run`` processes, ``muster edge run``
daemons (mutual TLS gRPC) with backlogs sealed the real way. The time runs from the first record
stored to the last, so process start-up is not counted; CPU is the replicas' own.

    python tests/bench/bench_replicas.py [--records 20000] [--devices 4] [--replicas 2]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.bench.bench_fleet import cpu_seconds, say
from tests.bench.progress import step
from tests.fixtures.backlog import preseal_backlog
from tests.fixtures.fleet import ControllerProcess, EdgeProcess, wait_until, write_profile
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.postgres import PostgresServer


def stored(pg: PostgresServer, database: str) -> int:
    with psycopg.connect(host=pg.host, port=pg.port, user=pg.user, dbname=database) as db:
        row = db.execute("SELECT count(*) FROM records").fetchone()
    return int(row[0]) if row else 0


def why(edges: list[EdgeProcess]) -> str:
    """The first refusal's code and reason, from a device's outbox."""
    for edge in edges:
        with sqlite3.connect(edge.state_dir / "outbox.sqlite3") as db:
            row = db.execute(
                "SELECT reject_code, reject_reason FROM records WHERE state = 'rejected' LIMIT 1"
            ).fetchone()
        if row:
            return f"{row[0]}: {row[1]}"
    return "no reason kept"


def measure(
    directory: Path,
    pg: PostgresServer,
    broker: MosquittoBroker,
    replicas: int,
    devices: int,
    records: int,
) -> dict[str, Any]:
    database = f"replicas_{replicas}"
    pg.create_database(database)
    idle = write_profile(directory / "idle.yaml", records_per_minute=0, heartbeat_s=30)
    group = ("--shared-group", "bench") if replicas > 1 else ()
    controllers: list[ControllerProcess] = []
    edges: list[EdgeProcess] = []
    try:
        for n in range(replicas):
            controller = ControllerProcess(
                directory, database_url=pg.url(database), mqtt_url=broker.url, extra_args=group
            )
            controller.log_path = directory / f"controller-{n + 1}.log"
            controller.start()
            controllers.append(controller)
        per_device = records // devices
        with step(
            f"enrolling {devices} devices, sealing {per_device} records each", devices
        ) as bar:
            for n in range(devices):
                controller = controllers[n % replicas]
                code = controller.create_code(township=f"370902{n + 1:03d}000")
                edge = EdgeProcess(directory / f"device-{n + 1}", controller, code, idle)
                edge.start()
                edges.append(edge)
            for number, edge in enumerate(edges, start=1):
                wait_until((edge.state_dir / "outbox.sqlite3").exists, 180, "a device to enrol")
                edge.stop()
                # Its own seed: the same one twice would seal the same record ids on two
                # devices, and the centre refuses the second as a conflict.
                preseal_backlog(edge.state_dir, per_device, seed=replicas * 1000 + number)
                bar.advance()
        total = per_device * devices
        cpu = sum(cpu_seconds(c.process.pid) for c in controllers if c.process is not None)
        started = time.monotonic()
        for edge in edges:
            edge.start()
        first: tuple[float, int] | None = None
        deadline = time.monotonic() + 1800
        next_check = time.monotonic() + 5.0
        while (count := stored(pg, database)) < total:
            now = time.monotonic()
            if first is None and count:
                first = (now, count)
            if now > deadline:
                raise SystemExit(f"{replicas} replica(s) stored {count} of {total} in 30 min")
            if now > next_check:  # a refused record never comes: say so, do not wait it out
                rejected = sum(edge.outbox_stats().rejected for edge in edges)
                if rejected:
                    raise SystemExit(f"the centre refused {rejected} records: {why(edges)}")
                next_check = now + 5.0
            time.sleep(0.2)
        done = time.monotonic()
        used = sum(cpu_seconds(c.process.pid) for c in controllers if c.process is not None) - cpu
        if first is None:  # all stored between two looks (a small backlog): time from the start
            first = (started, 0)
        rate = (total - first[1]) / max(done - first[0], 1e-6)
        return {"replicas": replicas, "records": total, "rate": rate,
                "cpu_us_per_record": used / total * 1e6}  # fmt: skip
    finally:
        for edge in edges:
            edge.stop()
        for controller in controllers:
            controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--replicas", type=int, default=2, help="measure 1, 2, ..., N")
    args = parser.parse_args()
    pg = PostgresServer(durable=True)
    pg.start()
    steps: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="muster-bench-replicas-") as tmp:
            broker = MosquittoBroker(Path(tmp) / "broker")
            broker.start()
            try:
                for count in range(1, args.replicas + 1):
                    say(f"{count} replica(s): {args.records} records from {args.devices} devices")
                    directory = Path(tmp) / f"step-{count}"
                    directory.mkdir()
                    result = measure(directory, pg, broker, count, args.devices, args.records)
                    steps.append(result)
                    say(f"   {result['rate']:,.0f} records/s stored, "
                        f"{result['cpu_us_per_record']:.0f} µs of replica CPU per record")  # fmt: skip
            finally:
                broker.stop()
    finally:
        pg.stop()
    base = steps[0]["rate"]
    for result in steps:
        result["ratio_to_one"] = result["rate"] / base
        say(f"   {result['replicas']} replica(s): {result['rate']:,.0f}/s = "
            f"{result['ratio_to_one']:.2f}× one")  # fmt: skip
    print(json.dumps({"replicas": steps}))


if __name__ == "__main__":
    main()
