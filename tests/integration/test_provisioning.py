"""Provisioning end to end with real processes: a controller, a real Mosquitto broker with TLS,
client certificates and a CRL, and devices enrolled with the technician's commands (S-06, S-08,
S-13)."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from pathlib import Path

import grpc
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from muster.v1 import data_pb2, data_pb2_grpc
from tests.fixtures.fleet import MUSTER, Fleet, wait_until, write_profile
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.secure_broker import SecureBrokerFactory


def broker_accepts(
    broker: MosquittoBroker, ca: Path, cert: Path, key: Path, cid: str, port: int | None = None
) -> bool:
    """Connect with a client certificate; True only if the broker sent a successful CONNACK.
    A device's certificate is probed on the centre's port while its daemon is connected: on
    the devices' port the client id is the certificate's, so the probe would be the daemon."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid)
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    client.tls_set_context(context)
    done = threading.Event()
    accepted: list[bool] = []

    def on_connect(*args: object) -> None:
        accepted.append(not getattr(args[3], "is_failure", True))
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(broker.host, port or broker.port, keepalive=10)
    except (OSError, ssl.SSLError):
        return False
    client.loop_start()
    done.wait(5)
    client.disconnect()
    client.loop_stop()
    return bool(accepted and accepted[0])


def data_channel(identity: Path, endpoint: str) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(identity / "ca.crt").read_bytes(),
        private_key=(identity / "device.key").read_bytes(),
        certificate_chain=(identity / "device.crt").read_bytes(),
    )
    return grpc.secure_channel(endpoint, credentials)


def provision(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MUSTER, "provision", *args], capture_output=True, text=True, timeout=120
    )


def test_a_revoked_device_is_refused_by_grpc_the_broker_and_itself(
    fleet: Fleet,
    secure_mosquitto: SecureBrokerFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After `muster provision revoke`: the data port refuses the device's uploads and tells it
    it is revoked, the running controller republishes the CRL and signals Mosquitto, which then
    refuses the device's certificate (while still accepting others), and the device itself
    stops collecting and says why."""
    data_dir = tmp_path / "controller"
    assert provision("crl", "--data-dir", str(data_dir)).returncode == 0
    crl = data_dir / "pki" / "crl.pem"
    broker = secure_mosquitto(data_dir, listener_config=f"crlfile {crl}")
    pid_file = tmp_path / "mosquitto.pid"
    assert broker._process is not None
    pid_file.write_text(str(broker._process.pid))
    monkeypatch.setenv("MUSTER_CONTROLLER_BROKER_PID_FILE", str(pid_file))
    monkeypatch.setenv("MUSTER_EDGE_HEALTH_EVERY_S", "2")
    controller = fleet.controller(
        mqtt_url=broker.centre_url, extra_args=("--device-mqtt-url", broker.url)
    )
    edge = fleet.edge(controller, write_profile(tmp_path / "p.yaml", records_per_minute=120))
    wait_until(lambda: any(d["online"] for d in controller.devices()), 60, "device online")
    identity = edge.state_dir / "identity"
    ca = data_dir / "pki" / "ca-bundle.crt"
    pki = data_dir / "pki"
    device_cert = (identity / "device.crt", identity / "device.key")
    assert broker_accepts(broker, ca, *device_cert, "probe-1", broker.centre_port)

    revoked = provision(
        "revoke", edge.device_id, "--reason", "设备丢失", "--data-dir", str(data_dir)
    )
    assert revoked.returncode == 0, revoked.stderr
    assert "已吊销" in revoked.stdout

    endpoint = f"127.0.0.1:{controller.data_port}"
    with data_channel(identity, endpoint) as channel:
        health = data_pb2_grpc.DeviceStub(channel).Health(data_pb2.HealthRequest(), timeout=10)
        assert health.revoked
        with pytest.raises(grpc.RpcError) as refused:
            list(data_pb2_grpc.UploadsStub(channel).Upload(iter([]), timeout=10))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]

    wait_until(
        lambda: not broker_accepts(broker, ca, *device_cert, "probe-2", broker.centre_port),
        40,
        "the broker to refuse the revoked certificate",
        interval=1.0,
    )
    assert not broker_accepts(broker, ca, *device_cert, "probe-2b")  # the devices' port too
    assert broker_accepts(
        broker,
        ca,
        pki / "controller-client.crt",
        pki / "controller-client.key",
        "probe-3",
        broker.centre_port,
    )
    wait_until(lambda: (identity / "revoked").exists(), 30, "the device to learn it is revoked")
    sealed = edge.outbox_stats().sealed_total
    selftest = provision("selftest", "--state-dir", str(edge.state_dir), "--json")
    assert selftest.returncode == 1
    licence = json.loads(selftest.stdout)[0]
    assert licence["verdict"] == "fail" and "revoked" in licence["detail"]
    assert "吊销" in licence["fix"]
    wait_until(lambda: edge.outbox_stats().sealed_total == sealed, 10, "collection to stop")
    assert edge.running, edge.log()


def test_technician_enrols_with_a_code_once_and_gets_the_self_test(
    fleet: Fleet, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """The documented path: a code for one township; a technician who names another township is
    refused and nothing is written; the right township enrols and prints the self-test table;
    the same code a second time is refused."""
    controller = fleet.controller(mqtt_url=mosquitto.url)
    code = controller.create_code(township="370902001000")
    common = [
        "enroll",
        "--controller",
        f"127.0.0.1:{controller.enrol_port}",
        "--code",
        code,
        "--ca-cert",
        str(controller.ca_cert),
        "--simulated",
    ]
    state = tmp_path / "device"
    wrong = provision(*common, "--township", "370902002000", "--state-dir", str(state))
    assert wrong.returncode == 2 and "另一个乡镇" in wrong.stderr
    assert not state.exists() or not any(state.rglob("*"))

    right = provision(*common, "--township", "370902001000", "--state-dir", str(state))
    assert right.returncode == 0, right.stderr
    assert "注册成功" in right.stdout
    for row in ("授权 licence", "证书 certificate", "中心连接 controller", "磁盘 disk"):
        assert row in right.stdout
    assert "通过 ok" in right.stdout

    again = provision(*common, "--state-dir", str(tmp_path / "second"))
    assert again.returncode == 2 and "已被使用" in again.stderr
