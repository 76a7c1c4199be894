"""Collection driven by real card reads: a SAM reader simulator on a TCP port presents a queue of
visitors' cards; the device reads each through the real driver and seals one record per card."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

from edge.simulators.idcard import synthetic_cards
from tests.fixtures.components import free_port, terminate, wait_for_port
from tests.fixtures.fleet import Fleet, wait_until
from tests.fixtures.mosquitto import MosquittoBroker


def test_each_card_read_becomes_a_record(
    fleet: Fleet, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """The simulated collector (configured, no console) takes the reads: the people in the
    controller's records are exactly the people whose cards were presented, each once, and
    the heartbeat reports the reader working and when it last read a card."""
    port = free_port()
    simulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "muster",
            "sim",
            "idcard",
            "--listen",
            f"127.0.0.1:{port}",
            "--queue",
            "4",
            "--county",
            "370902",
            "--seed",
            "3",
            "--dwell-s",
            "0.5",
            "--gap-s",
            "0.3",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, 30, process=simulator, what="reader simulator")
        profile = tmp_path / "reader.yaml"
        profile.write_text(
            "name: simulator\nmodel: t\nkind: simulator\n"
            f"reader: {{kind: sam, port: 'socket://127.0.0.1:{port}'}}\ncamera: {{kind: none}}\n"
            "uplink: {heartbeat_interval_s: 1}\noutbox: {min_disk_free_bytes: 0}\n"
            "simulation: {records_per_minute: 0}\n",
            encoding="utf-8",
        )
        controller = fleet.controller(mqtt_url=mosquitto.url)
        edge = fleet.edge(controller, profile)
        wait_until(
            lambda: any(int(d["records_received"]) >= 4 for d in controller.devices()),  # type: ignore[call-overload]
            90,
            "a record from each of the four cards",
        )
    finally:
        terminate(simulator)

    presented = {
        card.text.id_number: card.text.name for card in synthetic_cards("370902", 4, seed=3)
    }
    engine = create_engine(f"sqlite:///{controller.data_dir / 'controller.db'}")
    with engine.connect() as conn:
        payloads = [
            json.loads(p) if isinstance(p, str) else p
            for (p,) in conn.execute(text("SELECT payload FROM records"))
        ]
        (beat,) = conn.execute(
            text("SELECT last_heartbeat FROM devices WHERE id = :d"), {"d": edge.device_id}
        ).one()
    engine.dispose()
    people = {(p["person"]["id_number"], p["person"]["name"]) for p in payloads}
    # The reader presents the four cards over and over; each person is collected once.
    assert people == set(presented.items())
    assert len(payloads) == len(presented)
    beat = json.loads(beat) if isinstance(beat, str) else beat
    assert beat["reader"] == "COMPONENT_STATE_OK"
