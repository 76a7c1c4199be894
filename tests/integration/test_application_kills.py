"""kill -9 of the delivering process, over and over, mid-delivery: a small sender process
(``muster controller deliver``) over the real PostgreSQL database, delivering to a simulated
department that holds each request a moment, killed as soon as a delivery has reached the
department and before its answer is recorded. After at least 100 kills and a last clean run:
none lost (the department has every delivery of the outbox) and none delivered twice as
different deliveries (each item under exactly one webhook-id; resends repeat that id)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from controller.applications.departments import add_department
from controller.applications.hooks import hooks_router
from controller.db import make_engine, migrate, session_factory
from controller.db.models import Delivery
from muster.application_wire import new_secret
from muster.clock import SystemClock
from muster.department_sim import DepartmentScript, SimulatedDepartment, create_department_app
from tests.fixtures.applications import fill_and_submit, serve

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("MUSTER_DELIVERY_KILLS", "100"))
APPLICATIONS = 4 * KILLS + 200


class _Zygote:
    """The sender, imported once; every ``spawn()`` forks a new sender process."""

    def __init__(self, postgres_url: str) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from tests.fixtures.applications import sender_zygote_main; sender_zygote_main()",
                postgres_url,
                "0.5",
                "4",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def spawn(self) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(b"spawn\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timeout(1800)
async def test_kill_the_sender_mid_delivery_100_times(postgres_url: str) -> None:
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    sessions = session_factory(engine)
    clock = SystemClock()
    secret = new_secret()
    sim = SimulatedDepartment(secret, "", clock, DepartmentScript(silent=True, slow_s=0.05))
    public = FastAPI()
    public.include_router(hooks_router(sessions, clock))
    async with serve(create_department_app(sim)) as sim_url:
        with sessions.begin() as session:
            add_department(
                session,
                kind="medins",
                url=f"{sim_url}/deliveries",
                secret=secret,
                region_prefix="3710",
                now=clock.now(),
                allow_http=True,
            )
        for _ in range(APPLICATIONS):
            fill_and_submit(sessions, clock.now(), items=("medins",))
        zygote = _Zygote(postgres_url)
        kills = mid_delivery = 0
        while kills < KILLS:
            seen = sim.answered
            pid = await asyncio.to_thread(zygote.spawn)
            for _ in range(3000):  # until a delivery reaches the department (or 30 s)
                if sim.answered > seen or not _alive(pid):
                    break
                await asyncio.sleep(0.005)
            assert _alive(pid), "the sender process ended by itself"
            mid_delivery += sim.answered > seen
            os.kill(pid, signal.SIGKILL)
            for _ in range(2000):  # the kernel takes it away at once; reaped by the zygote
                if not _alive(pid):
                    break
                await asyncio.sleep(0.005)
            kills += 1
        # a last life, not killed, delivers what is left
        pid = await asyncio.to_thread(zygote.spawn)
        for _ in range(6000):
            with sessions() as session:
                left = session.scalars(select(Delivery.id).where(Delivery.state == "pending")).all()
            if not left:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the last answers on their way
        os.kill(pid, signal.SIGKILL)
        zygote.close()
    with sessions() as session:
        outbox = {d.id: d for d in session.scalars(select(Delivery))}
    engine.dispose()
    stats = sim.stats()
    figures = {
        "kills": kills,
        "kills_mid_delivery": mid_delivery,
        "deliveries": len(outbox),
        "received_unique": stats["unique_deliveries"],
        "resends_same_id": stats["resends"],
        "items_under_two_ids": sum(1 for n in sim.rounds.values() if n > 1),
        "lost": len(set(outbox) - set(sim.seen)),
    }
    print(json.dumps(figures))
    assert kills >= 100 or KILLS < 100
    assert mid_delivery == kills, figures  # every kill landed with a delivery in flight
    assert all(d.state == "sent" for d in outbox.values()), figures
    assert set(sim.seen) == set(outbox), figures  # none lost, none unknown
    assert figures["items_under_two_ids"] == 0 and len(sim.rounds) == APPLICATIONS, figures
    assert stats["resends"] > 0, figures  # kills did cut deliveries off before their mark


async def test_the_deliver_command_delivers_and_stops_on_sigterm(
    postgres_url: str, tmp_path: Path
) -> None:
    """``muster controller deliver`` on its own: the outbox is emptied, SIGTERM ends it cleanly."""
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    sessions = session_factory(engine)
    clock = SystemClock()
    secret = new_secret()
    sim = SimulatedDepartment(secret, "", clock, DepartmentScript(silent=True))
    async with serve(create_department_app(sim)) as sim_url:
        with sessions.begin() as session:
            add_department(
                session,
                kind="medins",
                url=f"{sim_url}/deliveries",
                secret=secret,
                now=clock.now(),
                allow_http=True,
            )
        for _ in range(5):
            fill_and_submit(sessions, clock.now(), items=("medins",))
        process = await asyncio.to_thread(
            subprocess.Popen,
            [
                sys.executable,
                "-c",
                "from muster.cli import main; main()",
                "controller",
                "deliver",
                "--database-url",
                postgres_url,
                "--data-dir",
                str(tmp_path),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for _ in range(1200):
            with sessions() as session:
                states = set(session.scalars(select(Delivery.state)))
            if states == {"sent"}:
                break
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 60) == 0
    with sessions() as session:
        assert {d.state for d in session.scalars(select(Delivery))} == {"sent"}
    engine.dispose()
