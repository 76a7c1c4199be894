"""``muster sim camera`` writes a camera file; ``muster edge snap`` tests a camera with it."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from edge.photo import ID_PHOTO_HEIGHT, ID_PHOTO_WIDTH, Reason
from edge.photo.document import ID1_ASPECT
from edge.simulators.camera import UNPLUGGED_SUFFIX, Fault, play_unplugs
from muster.cli import cli
from muster.errors import ConfigError


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def good_camera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "good.avi"
    code, out, _ = run("sim", "camera", "--out", str(path), "--seconds", "1")
    assert code == 0, out
    return path


def test_sim_camera_writes_an_mjpg_video_opencv_reads(good_camera: Path) -> None:
    """The simulated camera file opens with cv2.VideoCapture: MJPG, 640 x 480, 15 fps."""
    capture = cv2.VideoCapture(str(good_camera))
    try:
        assert capture.isOpened()
        fourcc = int(capture.get(cv2.CAP_PROP_FOURCC))
        assert fourcc.to_bytes(4, "little") == b"MJPG"
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(15.0)
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 15
        ok, frame = capture.read()
        assert ok and frame.shape == (480, 640, 3)
    finally:
        capture.release()


def test_snap_prints_a_passing_report_and_writes_the_id_photo(
    good_camera: Path, tmp_path: Path
) -> None:
    """A good camera: exit 0, the JSON report says passed, the JPEG is the 358 x 441 photo."""
    out = tmp_path / "snap.jpg"
    code, stdout, _ = run(
        "edge", "snap", "--camera", str(good_camera), "--out", str(out), "--profile", "generic-pc"
    )
    assert code == 0, stdout
    report = json.loads(stdout)
    assert report["passed"] is True and report["reasons"] == []
    assert report["mode"] == "portrait"
    assert report["measurements"]["faces"] == 1
    image = cv2.imread(str(out))
    assert image is not None
    assert image.shape == (ID_PHOTO_HEIGHT, ID_PHOTO_WIDTH, 3)
    assert report["jpeg_bytes"] == out.stat().st_size


@pytest.mark.parametrize(("fault", "reason"), [("blur", Reason.BLURRED), ("dark", Reason.TOO_DARK)])
def test_snap_fails_with_the_reasons_in_both_languages(
    tmp_path: Path, fault: str, reason: Reason
) -> None:
    """A faulty camera: non-zero exit, the reason in the JSON and on stderr in zh and en."""
    camera = tmp_path / f"{fault}.avi"
    assert run("sim", "camera", "--out", str(camera), "--seconds", "0.5", "--fault", fault)[0] == 0
    out = tmp_path / "snap.jpg"
    code, stdout, stderr = run(
        "edge", "snap", "--camera", str(camera), "--out", str(out), "--timeout", "0.3"
    )
    assert code == 3
    report = json.loads(stdout)
    assert report["passed"] is False
    assert report["reasons"][0]["code"] == reason.value
    assert f"{reason.zh} / {reason.en}" in stderr
    assert out.exists()  # the technician sees what the camera saw


def test_snap_document_rectifies_the_card(tmp_path: Path) -> None:
    """``--document`` on a camera looking at a card gives the card square-on, ID-1 shaped."""
    camera = tmp_path / "doc.avi"
    code, _, _ = run(
        "sim", "camera", "--out", str(camera), "--seconds", "0.5", "--subject", "document"
    )
    assert code == 0
    out = tmp_path / "doc.jpg"
    code, stdout, _ = run("edge", "snap", "--camera", str(camera), "--out", str(out), "--document")
    assert code == 0, stdout
    assert json.loads(stdout)["mode"] == "document"
    image = cv2.imread(str(out))
    assert image is not None
    h, w = image.shape[:2]
    assert w / h == pytest.approx(ID1_ASPECT, rel=0.01)


def test_snap_on_a_missing_camera_exits_as_unavailable(tmp_path: Path) -> None:
    """No camera at the source: exit 5 and a message naming it, and no JSON on stdout."""
    missing = tmp_path / "nothing.avi"
    code, stdout, stderr = run(
        "edge",
        "snap",
        "--camera",
        str(missing),
        "--out",
        str(tmp_path / "x.jpg"),
        "--open-timeout",
        "0.3",
    )
    assert code == 5
    assert stdout == ""
    assert "摄像头无法使用" in stderr and str(missing) in stderr


def test_snap_needs_a_camera_or_a_profile(tmp_path: Path) -> None:
    """Without --camera or --profile, snap is a usage error."""
    code, _, stderr = run("edge", "snap", "--out", str(tmp_path / "x.jpg"))
    assert code == 2
    assert "--camera" in stderr


def test_snap_with_a_too_small_jpeg_cap_is_a_settings_error(
    good_camera: Path, tmp_path: Path
) -> None:
    """A profile whose JPEG cap the standard photo cannot meet is reported as a settings error."""
    profile = tmp_path / "tiny.yaml"
    profile.write_text(
        "name: tiny\nmodel: test\nkind: generic\ncamera:\n  jpeg_max_bytes: 1500\n",
        encoding="utf-8",
    )
    out = str(tmp_path / "x.jpg")
    code, _, stderr = run(
        "edge", "snap", "--camera", str(good_camera), "--profile", str(profile), "--out", out
    )
    assert code == 4
    assert "jpeg_max_bytes" in stderr


def test_sim_camera_rejects_an_unknown_fault(tmp_path: Path) -> None:
    """A misspelt fault is a usage error listing the known ones."""
    code, _, stderr = run("sim", "camera", "--out", str(tmp_path / "x.avi"), "--fault", "fog")
    assert code == 2
    assert "no-face" in stderr


def test_unplug_script_takes_the_file_away_and_back(good_camera: Path, tmp_path: Path) -> None:
    """``unplug@START+DURATION`` removes the camera file at START for DURATION, then restores it.

    Time is virtual: the sleep records what the camera looked like at each moment.
    """
    path = tmp_path / "cam.avi"
    path.write_bytes(good_camera.read_bytes())
    clock = 0.0
    seen: list[tuple[float, bool]] = []

    def sleep(seconds: float) -> None:
        nonlocal clock
        seen.append((clock, path.exists()))
        clock += seconds

    faults = [Fault.parse("unplug@1+2"), Fault.parse("unplug@5+0.5"), Fault.parse("blur")]
    play_unplugs(path, faults, sleep=sleep, say=lambda _: None)
    assert seen == [(0.0, True), (1.0, False), (3.0, True), (5.0, False)]
    assert path.exists() and not path.with_name(path.name + UNPLUGGED_SUFFIX).exists()
    assert clock == pytest.approx(5.5)
    with pytest.raises(ConfigError, match="overlaps"):
        play_unplugs(
            path,
            [Fault.parse("unplug@0+3"), Fault.parse("unplug@1")],
            sleep=lambda _: None,
            say=lambda _: None,
        )
    assert path.exists()


def test_fault_specs_parse_times() -> None:
    """Fault specs carry a start and an optional duration, and know when they are active."""
    fault = Fault.parse("dark@1.5+2")
    assert (fault.kind, fault.start, fault.duration) == ("dark", 1.5, 2.0)
    assert [fault.active(t) for t in (1.0, 1.5, 3.4, 3.5)] == [False, True, True, False]
    assert Fault.parse("tilt").active(1e6)
    with pytest.raises(ConfigError):
        Fault.parse("dark@-1")
    with pytest.raises(ConfigError):
        Fault.parse("dark@x")
