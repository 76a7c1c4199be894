"""Several controller processes split the telemetry through an MQTT shared subscription on
real Mosquitto: each takes part of it, together they take all of it, and nothing is applied
twice."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from edge.simulators.fleet import FleetShape, FleetSimulator
from muster.clock import SystemClock
from tests.fixtures.fleet import MUSTER, ControllerProcess, Fleet, wait_until
from tests.fixtures.mosquitto import MosquittoBroker

DEVICES = 200
EVENTS = 2000


def received(controller: ControllerProcess) -> int:
    stats = httpx.get(
        f"{controller.admin_url}/api/v1/telemetry", headers=controller.auth, timeout=10
    ).json()
    return int(stats["messages_received"])


def stored_events(controller: ControllerProcess) -> int:
    engine = create_engine(f"sqlite:///{controller.data_dir / 'controller.db'}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM device_events")).scalar_one())
    finally:
        engine.dispose()


def test_two_controllers_split_the_load_without_loss_or_doubles(
    fleet: Fleet, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """Two controllers in one shared-subscription group on one database: 2,000 events from 200
    simulated devices are each stored exactly once, and both controllers took a share."""
    group = ("--shared-group", "controllers")
    first = fleet.controller(mqtt_url=mosquitto.url, extra_args=group)
    second = fleet.controller(mqtt_url=mosquitto.url, extra_args=group)
    subprocess.run(
        [
            *MUSTER,
            "controller",
            "register-simulated",
            "--devices",
            str(DEVICES),
            "--data-dir",
            str(first.data_dir),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    wait_until(
        lambda: all(
            httpx.get(f"{c.admin_url}/api/v1/telemetry", headers=c.auth, timeout=5).json()[
                "connected"
            ]
            for c in (first, second)
        ),
        30,
        "both consumers connected",
    )
    sim = FleetSimulator(
        mosquitto.url,
        DEVICES,
        connections=2,
        shape=FleetShape(offline_share=0, hang_share=0),
        clock=SystemClock(),
    )
    sim.connect()
    try:
        sim.announce()
        sim.burst(EVENTS, kind="event")
    finally:
        sim.close()

    total = DEVICES + EVENTS  # retained statuses, then the events
    wait_until(lambda: received(first) + received(second) >= total, 60, "every message consumed")
    wait_until(lambda: stored_events(first) >= EVENTS, 30, "events stored")
    assert received(first) + received(second) == total
    assert received(first) > total * 0.2 and received(second) > total * 0.2
    assert stored_events(first) == EVENTS
