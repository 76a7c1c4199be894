"""A flood of logins against a real controller process: the admin port must not be a way to
freeze the gRPC servers that share its event loop."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import httpx

from muster.v1 import data_pb2, data_pb2_grpc
from tests.fixtures.fleet import Fleet, wait_until
from tests.fixtures.mosquitto import MosquittoBroker

LOOPS = 8
ATTACK_S = 5.0
HEALTH_DEADLINE_S = 2.0


def _data_channel(identity: Path, endpoint: str) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(identity / "ca.crt").read_bytes(),
        private_key=(identity / "device.key").read_bytes(),
        certificate_chain=(identity / "device.crt").read_bytes(),
    )
    return grpc.secure_channel(endpoint, credentials)


def _guess_passwords(url: str, loop: int, until: float, answers: Counter[int]) -> None:
    """One attacker's loop: wrong passwords for made-up names, as fast as answers come."""
    with httpx.Client(base_url=url, timeout=30) as client:
        n = 0
        while time.monotonic() < until:
            n += 1
            answer = client.post(
                "/login", data={"username": f"guess{loop}.{n}", "password": f"wrong-{n}-pw"}
            )
            answers[answer.status_code] += 1


def test_a_flood_of_logins_does_not_freeze_the_grpc_servers(
    fleet: Fleet, mosquitto: MosquittoBroker
) -> None:
    """Attack: eight unauthenticated loops post wrong passwords to the admin port of a real
    controller (each check is scrypt at 128 MiB). Every gRPC Health call a device makes
    meanwhile is answered within its 2 s deadline, since the hashing runs on a bounded pool
    off the event loop; logins past the pool are told "busy", wrong ones are refused, and the
    controller serves the admin API as before."""
    controller = fleet.controller(mqtt_url=mosquitto.url)
    edge = fleet.edge(controller)
    identity = edge.state_dir / "identity"
    wait_until(lambda: (identity / "device.crt").exists(), 60, "the device to enrol")
    edge.stop()  # its own calls are not under test; ours are
    channel = _data_channel(identity, f"127.0.0.1:{controller.data_port}")
    device = data_pb2_grpc.DeviceStub(channel)
    device.Health(data_pb2.HealthRequest(), timeout=10)  # connected before the clock starts

    answers: Counter[int] = Counter()
    until = time.monotonic() + ATTACK_S
    attackers = [
        threading.Thread(target=_guess_passwords, args=(controller.admin_url, n, until, answers))
        for n in range(LOOPS)
    ]
    for thread in attackers:
        thread.start()
    outcomes: Counter[str] = Counter()
    try:
        time.sleep(0.3)  # the loops are at it
        while time.monotonic() < until:
            try:
                device.Health(data_pb2.HealthRequest(), timeout=HEALTH_DEADLINE_S)
                outcomes["answered"] += 1
            except grpc.RpcError as exc:
                outcomes[exc.code().name] += 1  # type: ignore[attr-defined]
            time.sleep(0.1)
    finally:
        for thread in attackers:
            thread.join(60)
        channel.close()

    assert outcomes["answered"] >= 5 and set(outcomes) == {"answered"}, (outcomes, answers)
    assert answers[401] > 0, answers  # passwords were checked during the attack...
    assert answers[503] > 0, answers  # ...and the rest were turned away, not queued
    assert set(answers) <= {401, 429, 503}, answers
    assert controller.summary()["devices"] == 1
