"""The device self-test through the daemon's own adapters, on real parts: a controller, a real
Mosquitto, the SAM reader simulator on a pty, pcscd with the vpcd virtual reader, and a video
file as the camera. Each part is checked passing, then taken away and checked failing with the
fix the technician needs."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.simulators.camera import Scene, write_video
from edge.simulators.idcard import IdCardSimulator, SimulatorThread, running
from edge.simulators.vcard import VirtualCard
from muster.clock import SystemClock
from tests.fixtures.fleet import MUSTER, Fleet
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.pcscd import VIRTUAL_READER
from tests.integration.test_sam_serial import RESIDENT, PtyBridge


def provision(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MUSTER, "provision", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def sam_pty(tmp_path: Path) -> Iterator[PtyBridge]:
    with running(IdCardSimulator(RESIDENT, clock=SystemClock())) as thread:
        assert isinstance(thread, SimulatorThread)
        bridge = PtyBridge(tmp_path / "ttySAM0", thread.server.port)
        bridge.plug()
        yield bridge
        bridge.unplug()


def hardware_profile(path: Path, *, port: Path, camera: Path, pcsc_filter: str) -> Path:
    path.write_text(
        "name: simulator\nmodel: test kiosk\nkind: simulator\n"
        f"reader: {{kind: sam, port: '{port}', timeout_s: 1.0}}\n"
        f"pcsc: {{enabled: true, reader_filter: '{pcsc_filter}'}}\n"
        f"camera: {{kind: opencv, source: '{camera}'}}\n"
        "outbox: {min_disk_free_bytes: 0}\n"
        "simulation: {records_per_minute: 1}\n",
        encoding="utf-8",
    )
    return path


def selftest(state: Path, profile: Path) -> tuple[int, dict[str, dict[str, str]]]:
    done = provision(
        "selftest", "--state-dir", str(state), "--profile", str(profile), "--timeout", "5", "--json"
    )
    rows = json.loads(done.stdout)
    return done.returncode, {row["check"].split()[0]: row for row in rows}


def test_the_self_test_checks_each_part_through_the_daemons_adapter(
    fleet: Fleet,
    mosquitto: MosquittoBroker,
    sam_pty: PtyBridge,
    virtual_card: VirtualCard,
    tmp_path: Path,
) -> None:
    """All parts present: every row passes and says what the adapter saw (the SAM module id
    read over the pty, the PC/SC reader and whether a card is in it, the camera's frame size,
    the controller's round trip). Then the reader is unplugged, the camera file removed and the
    PC/SC filter names a reader that is not there: each row fails with its own fix, and the
    exit status is 1."""
    controller = fleet.controller(mqtt_url=mosquitto.url)
    state = tmp_path / "device"
    enrolled = provision(
        "enroll",
        "--controller",
        f"127.0.0.1:{controller.enrol_port}",
        "--code",
        controller.create_code(),
        "--ca-cert",
        str(controller.ca_cert),
        "--simulated",
        "--state-dir",
        str(state),
        "--no-selftest",
    )
    assert enrolled.returncode == 0, enrolled.stderr
    video = tmp_path / "camera.avi"
    write_video(video, Scene(fps=15), seconds=1.0)
    profile = hardware_profile(
        tmp_path / "kiosk.yaml", port=sam_pty.link, camera=video, pcsc_filter=VIRTUAL_READER
    )
    virtual_card.insert()

    status, rows = selftest(state, profile)
    assert status == 0, rows
    assert all(row["verdict"] == "pass" for row in rows.values()), rows
    reader = rows["读卡器"]["detail"]
    assert "05.01-00385525-0719315144-0123456789" in reader  # the SAM id, over the pty
    assert VIRTUAL_READER in reader and "有卡" in reader
    assert "x" in rows["摄像头"]["detail"] and str(video) in rows["摄像头"]["detail"]
    assert "往返" in rows["中心连接"]["detail"]

    sam_pty.unplug()
    video.unlink()
    status, rows = selftest(state, profile)
    assert status == 1
    assert rows["读卡器"]["verdict"] == "fail"
    assert str(sam_pty.link) in rows["读卡器"]["detail"]
    assert "USB" in rows["读卡器"]["fix"]
    assert rows["摄像头"]["verdict"] == "fail" and "摄像头" in rows["摄像头"]["fix"]
    assert rows["中心连接"]["verdict"] == "pass"

    sam_pty.plug()
    missing = hardware_profile(
        tmp_path / "other.yaml", port=sam_pty.link, camera=video, pcsc_filter="No Such Reader"
    )
    status, rows = selftest(state, missing)
    assert status == 1
    assert rows["读卡器"]["verdict"] == "fail" and "PC/SC" in rows["读卡器"]["detail"]
    assert "pcscd" in rows["读卡器"]["fix"]


def test_a_silent_reader_is_told_from_an_unplugged_one(
    fleet: Fleet, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """A pty with nobody answering on the other end (wrong device on the port) times out, and
    the fix names the port and the baud rate rather than the cable."""
    controller = fleet.controller(mqtt_url=mosquitto.url)
    state = tmp_path / "device"
    enrolled = provision(
        "enroll",
        "--controller",
        f"127.0.0.1:{controller.enrol_port}",
        "--code",
        controller.create_code(),
        "--ca-cert",
        str(controller.ca_cert),
        "--simulated",
        "--state-dir",
        str(state),
        "--no-selftest",
    )
    assert enrolled.returncode == 0, enrolled.stderr
    socat = PtyBridge(tmp_path / "ttySILENT", 0).socat
    silent = subprocess.Popen(
        [socat, f"pty,raw,echo=0,link={tmp_path / 'ttySILENT'}", "system:cat >/dev/null"],
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(500):
            if (tmp_path / "ttySILENT").exists():
                break
            time.sleep(0.01)
        profile = tmp_path / "silent.yaml"
        profile.write_text(
            "name: simulator\nmodel: test kiosk\nkind: simulator\n"
            f"reader: {{kind: sam, port: '{tmp_path / 'ttySILENT'}', timeout_s: 0.5}}\n"
            "camera: {kind: none}\noutbox: {min_disk_free_bytes: 0}\n"
            "simulation: {records_per_minute: 1}\n",
            encoding="utf-8",
        )
        status, rows = selftest(state, profile)
    finally:
        silent.terminate()
        silent.wait(10)
    assert status == 1
    assert rows["读卡器"]["verdict"] == "fail"
    assert "波特率" in rows["读卡器"]["fix"], rows["读卡器"]
