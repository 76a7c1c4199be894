"""The walking skeleton end to end with real processes: a controller, edge daemons, a real
Mosquitto broker, and the controller's database on SQLite and on PostgreSQL."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.fixtures.fleet import ControllerProcess, EdgeProcess, Fleet, wait_until, write_profile
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.secure_broker import SecureBrokerFactory


def stored_ids(controller: ControllerProcess, device_id: str) -> list[str]:
    url = controller.database_url or f"sqlite:///{controller.data_dir / 'controller.db'}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT record_id FROM records WHERE device_id = :d"), {"d": device_id}
            )
            return [row[0] for row in rows]
    finally:
        engine.dispose()


def by_id(controller: ControllerProcess) -> dict[str, dict[str, object]]:
    return {d["id"]: d for d in controller.devices()}


def drain(edge: EdgeProcess, profile: Path, timeout: float = 120) -> None:
    """Restart the edge with collection off and wait until its outbox is empty."""
    edge.stop()
    edge.start(profile)
    wait_until(
        lambda: edge.outbox_stats().pending == 0,
        timeout,
        f"{edge.state_dir.name} to drain its outbox",
    )


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_fleet_enrols_reports_and_uploads(
    fleet: Fleet,
    mosquitto: MosquittoBroker,
    database: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """Two devices enrol with codes, go online over MQTT, upload sealed records that the
    controller stores once each, and show offline after a clean stop (retained status)."""
    database_url = request.getfixturevalue("postgres_url") if database == "postgres" else ""
    controller = fleet.controller(mqtt_url=mosquitto.url, database_url=database_url)
    profile = write_profile(tmp_path / "fast.yaml", records_per_minute=600)
    edges = [
        fleet.edge(controller, profile, township) for township in ("370902001000", "370902002000")
    ]

    wait_until(lambda: len(controller.devices()) == 2, 60, "both devices to enrol")
    wait_until(lambda: all(d["online"] for d in controller.devices()), 30, "both devices online")
    wait_until(
        lambda: all(int(d["records_received"]) >= 20 for d in controller.devices()),  # type: ignore[call-overload]
        60,
        "records from both devices",
    )
    devices = by_id(controller)
    assert {d["township_code"] for d in devices.values()} == {"370902001000", "370902002000"}

    for edge in edges:
        edge.stop()
    wait_until(
        lambda: not any(d["online"] for d in controller.devices()), 30, "both devices offline"
    )

    for edge in edges:
        stats = edge.outbox_stats()
        assert stats.pending == 0 and stats.rejected == 0, stats
        ids = stored_ids(controller, edge.device_id)
        assert len(ids) == len(set(ids)) == stats.acked == len(edge.sealed_ids())
        assert set(ids) == edge.sealed_ids()
        assert by_id(controller)[edge.device_id]["records_received"] == stats.acked


def test_fleet_catches_up_after_broker_and_controller_restart(
    fleet: Fleet, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """Devices keep collecting while the broker and then the controller are down, and afterwards
    report online again and deliver everything they sealed meanwhile."""
    controller = fleet.controller(mqtt_url=mosquitto.url)
    profile = write_profile(tmp_path / "fast.yaml", records_per_minute=300)
    edge = fleet.edge(controller, profile)
    wait_until(lambda: any(d["online"] for d in controller.devices()), 60, "device online")

    mosquitto.stop()
    controller.stop()
    sealed_before = edge.outbox_stats().sealed_total
    wait_until(
        lambda: edge.outbox_stats().sealed_total >= sealed_before + 10,
        30,
        "collection while offline",
    )
    assert edge.running, edge.log()
    assert edge.outbox_stats().pending > 0

    mosquitto.start()
    controller.start()
    wait_until(
        lambda: edge.outbox_stats().pending < 5, 60, "the backlog to upload after the restart"
    )
    wait_until(
        lambda: by_id(controller)[edge.device_id]["online"] is True, 60, "device online again"
    )

    drain(edge, write_profile(tmp_path / "idle.yaml", records_per_minute=0))
    ids = stored_ids(controller, edge.device_id)
    assert sorted(ids) == sorted(edge.sealed_ids())


def test_sigkill_while_uploading_loses_and_doubles_nothing(
    fleet: Fleet, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """kill -9 the edge daemon repeatedly while it seals and uploads: after it restarts and
    drains, every record it ever sealed is stored at the controller exactly once and acked."""
    controller = fleet.controller(mqtt_url=mosquitto.url)
    fast = write_profile(tmp_path / "fast.yaml", records_per_minute=3000)
    edge = fleet.edge(controller, fast)
    wait_until(lambda: (edge.state_dir / "outbox.sqlite3").exists(), 60, "the device to enrol")
    rng = random.Random(7)
    kills = 0
    for round_ in range(1, 6):
        # Kill only once this round has sealed and uploaded something of its own, so every
        # kill lands in the middle of real work however slow the machine is today.
        sealed, acked = edge.outbox_stats().sealed_total, edge.outbox_stats().acked
        wait_until(
            lambda sealed=sealed, acked=acked: (
                edge.outbox_stats().sealed_total >= sealed + 30
                and edge.outbox_stats().acked > acked
            ),
            120,
            f"round {round_}: sealing and uploads under way",
        )
        time.sleep(rng.uniform(0.1, 1.0))
        edge.kill()
        kills += 1
        edge.start()
    drain(edge, write_profile(tmp_path / "idle.yaml", records_per_minute=0))

    stats = edge.outbox_stats()
    ids = stored_ids(controller, edge.device_id)
    assert kills == 5
    assert stats.sealed_total > 100, "the test must upload a real backlog"
    assert stats.pending == 0 and stats.rejected == 0
    assert len(ids) == len(set(ids)) == stats.sealed_total
    assert set(ids) == edge.sealed_ids()


def test_fleet_over_mosquitto_with_client_certificates(
    fleet: Fleet, secure_mosquitto: SecureBrokerFactory, tmp_path: Path
) -> None:
    """The production broker shape: TLS, client certificates from the controller's CA, the ACL.
    Devices enrolled by the controller report through it and the controller sees them."""
    broker = secure_mosquitto(tmp_path / "controller")
    controller = fleet.controller(
        mqtt_url=broker.centre_url, extra_args=("--device-mqtt-url", broker.url)
    )
    edge = fleet.edge(controller, write_profile(tmp_path / "p.yaml", records_per_minute=120))
    wait_until(lambda: any(d["online"] for d in controller.devices()), 60, "device online over TLS")
    # The broker took the user name from the device's certificate, not from anything it said.
    assert f"as {edge.device_id} " in broker.log() and f"u'{edge.device_id}'" in broker.log()
    wait_until(
        lambda: int(by_id(controller)[edge.device_id]["records_received"]) > 0, 60, "uploads"
    )  # type: ignore[call-overload]
    edge.stop()
    wait_until(
        lambda: by_id(controller)[edge.device_id]["online"] is False,
        30,
        "graceful offline over TLS",
    )
