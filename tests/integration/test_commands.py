"""Commands from the centre to real edge daemons through Mosquitto in its production shape (TLS,
client certificates, the ACL): issued over the admin API, delivered with QoS 1 to the device's
persistent session, acknowledged, tracked; and held by the broker while the device is away."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.fleet import ControllerProcess, Fleet, wait_until, write_profile
from tests.fixtures.secure_broker import SecureBrokerFactory


def send(
    controller: ControllerProcess, device_id: str, kind: str, **arguments: str
) -> dict[str, Any]:
    response = httpx.post(
        f"{controller.admin_url}/api/v1/devices/{device_id}/commands",
        headers=controller.auth,
        json={"kind": kind, "arguments": arguments},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    command: dict[str, Any] = response.json()
    return command


def command(controller: ControllerProcess, command_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{controller.admin_url}/api/v1/commands/{command_id}", headers=controller.auth, timeout=10
    )
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


def wait_finished(
    controller: ControllerProcess, command_id: str, timeout: float = 30
) -> dict[str, Any]:
    wait_until(
        lambda: command(controller, command_id)["state"] not in ("pending", "sent"),
        timeout,
        f"command {command_id} to be answered",
    )
    return command(controller, command_id)


def device_view(controller: ControllerProcess, device_id: str) -> dict[str, Any]:
    return {d["id"]: d for d in controller.devices()}[device_id]


def online(controller: ControllerProcess, device_id: str) -> bool:
    return any(d["id"] == device_id and d["online"] for d in controller.devices())


def test_commands_are_acked_with_their_results(
    fleet: Fleet, secure_mosquitto: SecureBrokerFactory, tmp_path: Path
) -> None:
    """Each command kind reaches the daemon and comes back with the result an admin needs:
    the log level changes, the log tail arrives (capped), slice sync and licence renewal are
    answered by their parts of the daemon, and revoke stops collection at once."""
    broker = secure_mosquitto(tmp_path / "controller")
    controller = fleet.controller(
        mqtt_url=broker.centre_url, extra_args=("--device-mqtt-url", broker.url)
    )
    edge = fleet.edge(controller, write_profile(tmp_path / "p.yaml", records_per_minute=60))
    wait_until(
        lambda: (
            online(controller, edge.device_id)
            if edge.state_dir.joinpath("identity", "enrolment.json").exists()
            else False
        ),
        60,
        "device online over TLS",
    )

    level = wait_finished(
        controller, send(controller, edge.device_id, "set-log-level", level="debug")["id"]
    )
    assert level["state"] == "acked" and "DEBUG" in level["result_message"]

    logs = wait_finished(
        controller, send(controller, edge.device_id, "upload-logs", max_bytes="4000")["id"]
    )
    assert logs["state"] == "acked"
    assert "telemetry connected" in logs["output"]
    assert 0 < len(logs["output"].encode()) <= 4000

    # The daemon's slice and licence parts answer these through their hooks.
    sync = wait_finished(controller, send(controller, edge.device_id, "sync-slice")["id"])
    assert sync["state"] == "acked" and sync["result_message"]

    renew = wait_finished(controller, send(controller, edge.device_id, "renew-licence")["id"])
    assert renew["state"] == "acked" and renew["result_message"]

    revoke = wait_finished(controller, send(controller, edge.device_id, "revoke")["id"])
    assert revoke["state"] == "acked"
    wait_until(
        lambda: device_view(controller, edge.device_id)["collection_allowed"] is False,
        30,
        "the heartbeat to report collection refused",
    )
    assert device_view(controller, edge.device_id)["revoked"] is True
    assert edge.running, edge.log()

    # A bad command is refused before anything is stored or sent.
    bad = httpx.post(
        f"{controller.admin_url}/api/v1/devices/{edge.device_id}/commands",
        headers=controller.auth,
        json={"kind": "set-log-level", "arguments": {"level": "LOUD"}},
        timeout=10,
    )
    assert bad.status_code == 422 and "level" in bad.json()["detail"]
    listed = httpx.get(
        f"{controller.admin_url}/api/v1/devices/{edge.device_id}/commands",
        headers=controller.auth,
        timeout=10,
    ).json()
    assert len(listed) == 5


def test_command_waits_for_an_offline_device_and_restart_exits_cleanly(
    fleet: Fleet, secure_mosquitto: SecureBrokerFactory, tmp_path: Path
) -> None:
    """A command sent while the device is off is held by the broker and answered when it comes
    back; one that expired meanwhile is not run. A restart command ends the daemon by itself
    with exit code 0, for the service manager to start it again."""
    broker = secure_mosquitto(tmp_path / "controller")
    controller = fleet.controller(
        mqtt_url=broker.centre_url, extra_args=("--device-mqtt-url", broker.url)
    )
    profile = write_profile(tmp_path / "p.yaml", records_per_minute=0)
    edge = fleet.edge(controller, profile)
    wait_until(
        lambda: (
            (edge.state_dir / "identity" / "enrolment.json").exists()
            and online(controller, edge.device_id)
        ),
        60,
        "device online",
    )
    edge.stop()
    wait_until(lambda: not online(controller, edge.device_id), 30, "device offline")

    waiting = send(controller, edge.device_id, "upload-logs")
    short = httpx.post(
        f"{controller.admin_url}/api/v1/devices/{edge.device_id}/commands",
        headers=controller.auth,
        json={"kind": "set-log-level", "arguments": {"level": "DEBUG"}, "expires_in_s": 2},
        timeout=10,
    ).json()
    wait_until(
        lambda: command(controller, waiting["id"])["state"] == "sent", 15, "handed to broker"
    )
    wait_until(lambda: command(controller, short["id"])["state"] == "expired", 15, "expiry")

    edge.start()
    done = wait_finished(controller, waiting["id"], timeout=60)
    assert done["state"] == "acked" and done["output"]
    assert command(controller, short["id"])["state"] == "expired"
    wait_until(
        lambda: "命令已过期" in edge.log() or "REJECTED" in edge.log(),
        15,
        "device refused the expired command",
    )

    restart = wait_finished(controller, send(controller, edge.device_id, "restart")["id"])
    assert restart["state"] == "acked"
    assert edge.process is not None
    assert edge.process.wait(timeout=30) == 0


def test_wipe_erases_identity_and_outbox_after_acking(
    fleet: Fleet, secure_mosquitto: SecureBrokerFactory, tmp_path: Path
) -> None:
    """A wipe (which must be confirmed) is acked first, then the daemon stops and its identity,
    licence and outbox are gone from the device."""
    broker = secure_mosquitto(tmp_path / "controller")
    controller = fleet.controller(
        mqtt_url=broker.centre_url, extra_args=("--device-mqtt-url", broker.url)
    )
    edge = fleet.edge(controller, write_profile(tmp_path / "p.yaml", records_per_minute=120))
    wait_until(
        lambda: (
            (edge.state_dir / "identity" / "enrolment.json").exists()
            and online(controller, edge.device_id)
        ),
        60,
        "device online",
    )
    unconfirmed = httpx.post(
        f"{controller.admin_url}/api/v1/devices/{edge.device_id}/commands",
        headers=controller.auth,
        json={"kind": "wipe"},
        timeout=10,
    )
    assert unconfirmed.status_code == 422 and "confirm=yes" in unconfirmed.json()["detail"]

    wipe = wait_finished(controller, send(controller, edge.device_id, "wipe", confirm="yes")["id"])
    assert wipe["state"] == "acked"
    assert edge.process is not None and edge.process.wait(timeout=30) == 0
    assert not (edge.state_dir / "identity").exists()
    assert not (edge.state_dir / "outbox.sqlite3").exists()
