"""Enrolment as a technician meets it, against a real controller process: the QR code from
`code create` read from a photo or through the camera driver, the CA certificate checked against
its fingerprint, codes typed in lower case without dashes, the mistakes a technician makes (the
wrong CA certificate, the data port, a code for another kind of device) each told in their
words with no gRPC C-core line, and codes in bulk from a townships CSV."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import segno

from controller.devices.pki_store import ensure_controller_pki
from tests.fixtures.components import free_port
from tests.fixtures.fleet import MUSTER, ControllerProcess, Fleet
from tests.fixtures.mosquitto import MosquittoBroker

TOWNSHIP = "370902001000"


def provision(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MUSTER, "provision", *args], capture_output=True, text=True, timeout=120, input=stdin
    )


def create(
    controller: ControllerProcess, *extra: str, profile: str = "simulator"
) -> dict[str, str]:
    done = provision(
        "code",
        "create",
        "--township",
        TOWNSHIP,
        "--profile",
        profile,
        "--data-dir",
        str(controller.data_dir),
        "--enrol-port",
        str(controller.enrol_port),
        "--json",
        *extra,
    )
    assert done.returncode == 0, done.stderr
    created: dict[str, str] = json.loads(done.stdout)
    return created


def enrol(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return provision("enroll", "--simulated", "--no-selftest", "--state-dir", str(state), *args)


def no_c_core_lines(stderr: str) -> bool:
    """gRPC's C core logs like 'E1201 15:19:03.838 ... ssl_transport_security.cc:1234] ...'."""
    return ".cc:" not in stderr and "E0000" not in stderr and "I0000" not in stderr


def test_enrol_from_a_photo_of_the_qr_code(
    fleet: Fleet, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """The QR PNG from `code create --qr-png` gives controller, port, code and the CA
    fingerprint; the device enrols with only the picture and the CA certificate, and the same
    picture a second time is refused as used."""
    controller = fleet.controller(mqtt_url=mosquitto.url)
    png = tmp_path / "code.png"
    created = create(controller, "--qr-png", str(png))
    assert created["qr"].startswith(f"MUSTER1/{created['code']}/127.0.0.1/{controller.enrol_port}/")
    done = enrol(tmp_path / "dev", "--qr-image", str(png), "--ca-cert", str(controller.ca_cert))
    assert done.returncode == 0, done.stderr
    assert "注册成功" in done.stdout and TOWNSHIP in done.stdout
    again = enrol(tmp_path / "dev2", "--qr-image", str(png), "--ca-cert", str(controller.ca_cert))
    assert again.returncode == 2 and "已被使用" in again.stderr


def test_enrol_from_a_segno_qr_image_of_a_bulk_code_and_through_the_camera(
    fleet: Fleet, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """Codes in bulk: the townships CSV gives a PDF and a CSV. One payload of that CSV, drawn
    with segno, enrols from its picture; another, shown to the camera (a video file through the
    daemon's camera driver), enrols with --qr-camera."""
    controller = fleet.controller(mqtt_url=mosquitto.url)
    townships = tmp_path / "townships.csv"
    townships.write_text(f"乡镇代码,型号\n{TOWNSHIP},simulator\n370902002000,simulator\n", "utf-8")
    bulk = provision(
        "code",
        "create",
        "--bulk",
        str(townships),
        "--data-dir",
        str(controller.data_dir),
        "--enrol-port",
        str(controller.enrol_port),
    )
    assert bulk.returncode == 0, bulk.stderr
    sheet = tmp_path / "townships-codes.pdf"
    assert sheet.read_bytes().startswith(b"%PDF")
    rows = list(csv.reader(io.StringIO((tmp_path / "townships-codes.csv").read_text("utf-8-sig"))))
    assert [r[0] for r in rows[1:]] == [TOWNSHIP, "370902002000"]

    picture = tmp_path / "first.png"
    segno.make(rows[1][5], error="m").save(str(picture), scale=6)
    first = enrol(tmp_path / "a", "--qr-image", str(picture), "--ca-cert", str(controller.ca_cert))
    assert first.returncode == 0, first.stderr
    assert TOWNSHIP in first.stdout

    symbol = cv2.imread(str(_png(tmp_path / "second.png", rows[2][5])), cv2.IMREAD_COLOR)
    video = tmp_path / "shown.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10, (640, 480))
    for shift in range(20):
        frame = np.full((480, 640, 3), 200, np.uint8)
        y, x = 40 + shift, 120 + shift
        frame[y : y + symbol.shape[0], x : x + symbol.shape[1]] = symbol
        writer.write(frame)
    writer.release()
    profile = tmp_path / "cam.yaml"
    profile.write_text(
        "name: simulator\nmodel: test\nkind: simulator\nreader: {kind: none}\n"
        f"camera: {{kind: opencv, source: '{video}'}}\nsimulation: {{records_per_minute: 1}}\n",
        encoding="utf-8",
    )
    second = enrol(
        tmp_path / "b",
        "--qr-camera",
        "--profile",
        str(profile),
        "--scan-timeout",
        "20",
        "--ca-cert",
        str(controller.ca_cert),
    )
    assert second.returncode == 0, second.stderr
    assert "370902002000" in second.stdout


def _png(path: Path, payload: str) -> Path:
    segno.make(payload, error="m").save(str(path), scale=5)
    return path


def test_a_ca_certificate_that_does_not_match_is_named(
    fleet: Fleet, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """Another controller's CA: with the QR code it is refused before any connection (the
    fingerprint differs); typed by hand it is told as a CA that does not match, not as an
    unreachable controller, and no gRPC C-core line reaches the technician. The code stays
    unused and enrols with the right CA."""
    controller = fleet.controller(mqtt_url=mosquitto.url)
    other = ensure_controller_pki(tmp_path / "other", ["127.0.0.1"], now=datetime.now(UTC))
    png = tmp_path / "code.png"
    created = create(controller, "--qr-png", str(png))
    state = tmp_path / "dev"
    by_qr = enrol(state, "--qr-image", str(png), "--ca-cert", str(other.ca_cert_path))
    assert by_qr.returncode == 2
    assert "指纹不符" in by_qr.stderr, by_qr.stderr
    by_hand = enrol(
        state,
        "--controller",
        f"127.0.0.1:{controller.enrol_port}",
        "--code",
        created["code"],
        "--ca-cert",
        str(other.ca_cert_path),
    )
    assert by_hand.returncode == 2
    assert "CA 证书与中心不符" in by_hand.stderr, by_hand.stderr
    assert "unreachable" not in by_hand.stderr
    assert no_c_core_lines(by_hand.stderr), by_hand.stderr
    assert not state.exists() or not any(state.rglob("*"))
    right = enrol(state, "--qr-image", str(png), "--ca-cert", str(controller.ca_cert))
    assert right.returncode == 0, right.stderr


def test_the_data_port_given_by_mistake_is_named_and_a_typed_code_is_normalised(
    fleet: Fleet, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """The data port instead of the enrolment port: told as the data port, with the
    enrolment port to use, not "Socket closed". Then the code typed in lower case without
    dashes, on the right port, enrols."""
    controller = fleet.controller(mqtt_url=mosquitto.url)
    code = create(controller)["code"]
    state = tmp_path / "dev"
    wrong = enrol(
        state,
        "--controller",
        f"127.0.0.1:{controller.data_port}",
        "--code",
        code,
        "--ca-cert",
        str(controller.ca_cert),
    )
    assert wrong.returncode == 2
    assert "数据端口" in wrong.stderr and "7443" in wrong.stderr, wrong.stderr
    assert "Socket closed" not in wrong.stderr and no_c_core_lines(wrong.stderr)
    typed = code.replace("-", "").lower()
    right = enrol(
        state,
        "--controller",
        f"127.0.0.1:{controller.enrol_port}",
        "--code",
        typed,
        "--ca-cert",
        str(controller.ca_cert),
    )
    assert right.returncode == 0, right.stderr
    bad = enrol(
        tmp_path / "dev2",
        "--controller",
        f"127.0.0.1:{controller.enrol_port}",
        "--code",
        "abc",
        "--ca-cert",
        str(controller.ca_cert),
    )
    assert bad.returncode == 2 and "16 位" in bad.stderr


def test_a_code_for_another_kind_of_device_is_refused_and_stays_unused(
    fleet: Fleet, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """A code the centre made for a portable tablet, used on a fixed kiosk (--profile
    fixed-kiosk): refused naming both kinds; the code stays unused and enrols the tablet."""
    controller = fleet.controller(mqtt_url=mosquitto.url)
    png = tmp_path / "code.png"
    create(controller, "--qr-png", str(png), profile="portable-tablet")
    state = tmp_path / "kiosk"
    common = ("--qr-image", str(png), "--ca-cert", str(controller.ca_cert))
    kiosk = enrol(state, *common, "--profile", "fixed-kiosk")
    assert kiosk.returncode == 2
    assert "便携式" in kiosk.stderr and "固定式" in kiosk.stderr and "未被使用" in kiosk.stderr
    assert not state.exists() or not any(state.rglob("*"))
    tablet = enrol(tmp_path / "tablet", *common, "--profile", "portable-tablet")
    assert tablet.returncode == 0, tablet.stderr
    assert "portable-tablet" in tablet.stdout


def test_code_create_refuses_a_data_dir_without_the_controllers_keys(tmp_path: Path) -> None:
    """Without the controller's keys at the data dir nothing is created (no database, no
    keys) and the message says where it looked and how to point at the right one."""
    empty = tmp_path / "not-the-controller"
    done = provision(
        "code", "create", "--township", TOWNSHIP, "--profile", "simulator", "--data-dir", str(empty)
    )
    assert done.returncode == 2
    assert str(empty.resolve()) in done.stderr
    assert "--data-dir" in done.stderr and "MUSTER_CONTROLLER_DATA_DIR" in done.stderr
    assert not empty.exists() or not any(empty.rglob("*"))


def test_a_device_learns_the_broker_cluster_at_enrolment_and_the_self_test_probes_every_node(
    fleet: Fleet, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """A controller told the cluster's nodes (``--device-broker`` once per node) names them all
    in the enrolment answer; the device keeps them in that order for its daemon, and the
    self-test probes each: one node down still passes (the daemon fails over), naming it."""
    dead = f"mqtt://127.0.0.1:{free_port()}"
    controller = fleet.controller(
        mqtt_url=mosquitto.url,
        extra_args=("--device-broker", dead, "--device-broker", mosquitto.url),
    )
    code = create(controller)["code"]
    state = tmp_path / "dev"
    done = enrol(
        state,
        "--controller",
        f"127.0.0.1:{controller.enrol_port}",
        "--code",
        code,
        "--ca-cert",
        str(controller.ca_cert),
    )
    assert done.returncode == 0, done.stderr
    saved = json.loads((state / "identity" / "enrolment.json").read_text())
    assert saved["mqtt_urls"] == [dead, mosquitto.url] and saved["mqtt_url"] == dead
    checked = provision("selftest", "--state-dir", str(state), "--json", "--timeout", "3")
    broker = next(c for c in json.loads(checked.stdout) if "broker" in c["check"])
    assert broker["verdict"] == "pass", broker
    assert "1/2" in broker["detail"] and dead in broker["detail"], broker
    # The daemon's own --broker list is what the self-test probes when given: both dead fails.
    other = f"mqtt://127.0.0.1:{free_port()}"
    checked = provision(
        "selftest", "--state-dir", str(state), "--json", "--timeout", "3",
        "--broker", dead, "--broker", other,
    )  # fmt: skip
    broker = next(c for c in json.loads(checked.stdout) if "broker" in c["check"])
    assert broker["verdict"] == "fail" and dead in broker["detail"] and other in broker["detail"]
    assert "网络" in broker["fix"], broker


def test_a_controller_refuses_a_broker_cluster_it_cannot_hand_out(tmp_path: Path) -> None:
    """Nodes mixing mqtt:// and mqtts://, a node listed twice or a bad port would reach every
    device enrolled afterwards: the controller refuses to start, naming the item."""
    for brokers, said in (
        (["mqtts://127.0.0.1:8883", "mqtt://127.0.0.1:1883"], "mqtt://"),
        (["mqtts://127.0.0.1:8883", "mqtts://127.0.0.1:8883"], "重复"),
        (["mqtts://127.0.0.1:99999"], "端口"),
        (["http://127.0.0.1:8883"], "mqtts://HOST:PORT"),
    ):
        flags = [part for url in brokers for part in ("--device-broker", url)]
        done = subprocess.run(
            [*MUSTER, "controller", "run", "--data-dir", str(tmp_path / "ctl"), *flags],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode != 0 and "device_brokers" in done.stderr, done.stderr
        assert said in done.stderr, done.stderr
        assert not (tmp_path / "ctl" / "controller.db").exists()
