"""S-30 deliveries per second from one controller process to simulated departments, against a
baseline measured in the same run: the same signed bodies posted straight to the same
departments with the same concurrency, without the outbox (no claim, no mark, no database).

The departments are ``muster sim department --silent`` processes (so their work is not on the
sender's CPU); the database is PostgreSQL, durable (fsync on). The outbox run is the
controller's own :class:`DeliverySender`, batch by batch until nothing is pending.

    python tests/bench/bench_deliveries.py [--applications N] [--departments D] [--batch B]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.progress import Progress
from sqlalchemy import select

from controller.applications.departments import add_department
from controller.applications.sender import DeliverySender, pending_count
from controller.db import make_engine, migrate, session_factory
from controller.db.models import Delivery, Department
from muster.application_wire import new_secret, sign
from muster.clock import SystemClock
from muster.logs import configure_logging
from tests.fixtures.applications import fill_and_submit
from tests.fixtures.components import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
# Items that need no materials, so the bodies are the form's fields (a few hundred bytes).
KINDS = ("employment", "medins", "contribution")


def start_departments(
    directory: Path, count: int
) -> list[tuple[str, str, subprocess.Popen[bytes]]]:
    out = []
    for n in range(count):
        secret_file = directory / f"dept{n}.secret"
        secret = new_secret()
        secret_file.write_text(secret)
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from muster.cli import main; main()",
                "sim",
                "department",
                "--kind",
                KINDS[n % len(KINDS)],
                "--listen",
                f"127.0.0.1:{port}",
                "--secret-file",
                str(secret_file),
                "--silent",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", port, 60, what="simulated department")
        out.append((f"http://127.0.0.1:{port}/deliveries", secret, process))
    return out


async def outbox_run(sessions, clock: SystemClock, batch: int, total: int) -> float:  # type: ignore[no-untyped-def]
    sender = DeliverySender(sessions, clock, batch=batch)
    start = time.perf_counter()
    with Progress(transient=True) as progress:
        task = progress.add_task("outbox", total=total)
        while await sender.pump_once():
            progress.update(task, completed=sender.sent)
    elapsed = time.perf_counter() - start
    await sender.aclose()
    with sessions() as session:
        assert pending_count(session) == 0
    return sender.sent / elapsed


async def raw_run(bodies: list[tuple[str, str, bytes]], clock: SystemClock, batch: int) -> float:
    limits = httpx.Limits(max_connections=batch, max_keepalive_connections=batch)
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
        start = time.perf_counter()
        for i in range(0, len(bodies), batch):

            async def post(n: int, url: str, secret: str, body: bytes) -> None:
                headers = sign(secret, f"raw_{n}", clock.now(), body)
                answer = await client.post(url, content=body, headers=headers)
                answer.raise_for_status()

            await asyncio.gather(
                *(post(i + k, *item) for k, item in enumerate(bodies[i : i + batch]))
            )
        return len(bodies) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--applications", type=int, default=2000)
    parser.add_argument("--departments", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    configure_logging("WARNING")
    from tests.fixtures.postgres import PostgresServer

    clock = SystemClock()
    server = PostgresServer(durable=True)
    server.start()
    departments: list[tuple[str, str, subprocess.Popen[bytes]]] = []
    try:
        server.create_database("bench")
        url = server.url("bench")
        migrate(url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        with tempfile.TemporaryDirectory(prefix="muster-bench-") as tmp:
            departments = start_departments(Path(tmp), args.departments)
            with sessions.begin() as session:
                for n, (dept_url, secret, _p) in enumerate(departments):
                    add_department(
                        session,
                        kind=KINDS[n % len(KINDS)],
                        url=dept_url,
                        secret=secret,
                        now=clock.now(),
                        allow_http=True,
                    )
            kinds = tuple(KINDS[n % len(KINDS)] for n in range(min(args.departments, len(KINDS))))
            with Progress(transient=True) as progress:
                task = progress.add_task("applications", total=args.applications)
                for _ in range(args.applications):
                    fill_and_submit(sessions, clock.now(), items=kinds)
                    progress.advance(task)
            with sessions() as session:
                total = pending_count(session)
                rows = session.execute(
                    select(Department.url, Department.secret, Delivery.body).join(
                        Department, Department.id == Delivery.department_id
                    )
                ).all()
            bodies = [(u, s, b) for u, s, b in rows]
            outbox = asyncio.run(outbox_run(sessions, clock, args.batch, total))
            raw = asyncio.run(raw_run(bodies, clock, args.batch))
            engine.dispose()
    finally:
        for _u, _s, process in departments:
            process.kill()
            process.wait()
        server.stop()
    print(f"{'run':<28} {'deliveries/s':>12}")
    print(f"{'outbox (claim, post, mark)':<28} {outbox:>12.0f}")
    print(f"{'raw signed posts (baseline)':<28} {raw:>12.0f}")
    print(f"{'ratio outbox/raw':<28} {outbox / raw:>12.3f}")
    print(
        json.dumps(
            {
                "deliveries": total,
                "departments": args.departments,
                "batch": args.batch,
                "outbox_per_s": outbox,
                "raw_per_s": raw,
                "ratio": outbox / raw,
            }
        )
    )


if __name__ == "__main__":
    main()
