"""``muster edge verify-face`` on the photos the project ships: the same person accepted (0), a
different person refused (3), no face (4), bad input (2) with a message and no JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.face_cli import verify_face
from muster.face.images import MAX_BYTES

ROOT = Path(__file__).resolve().parents[2]
FACES = ROOT / "tests" / "fixtures" / "faces"
OBAMA_A = FACES / "obama_2012_portrait.jpg"
OBAMA_B = FACES / "obama_2009_congress.jpg"
OBAMA_C = FACES / "obama_2010_blue_room.jpg"
BIDEN = FACES / "biden_2010_blue_room.jpg"
COLLINS = FACES / "collins_1998_portrait.jpg"
COFFEE = FACES / "no_face_coffee.jpg"


def _run(*args: object) -> tuple[int, dict[str, object] | None, str]:
    result = CliRunner().invoke(verify_face, [str(a) for a in args])
    out = result.stdout.strip()
    return result.exit_code, (json.loads(out) if out else None), result.stderr


def test_the_same_person_is_accepted() -> None:
    code, body, _ = _run("--reference", OBAMA_A, "--live", OBAMA_B)
    assert code == 0
    assert body is not None
    assert body["match"] is True
    assert isinstance(body["score"], float) and body["score"] <= body["threshold"] == 0.6
    assert body["reasons"] == ["same_person"]


@pytest.mark.parametrize("other", [BIDEN, COLLINS], ids=["biden", "collins"])
def test_a_different_person_is_refused(other: Path) -> None:
    code, body, _ = _run("--reference", OBAMA_A, "--live", other)
    assert code == 3
    assert body is not None and body["match"] is False
    assert "different_person" in body["reasons"]  # type: ignore[operator]


def test_no_face_in_the_reference_or_in_every_live_photo_exits_4() -> None:
    code, body, _ = _run("--reference", COFFEE, "--live", OBAMA_B)
    assert code == 4 and body is not None and body["reasons"] == ["no_face_reference"]
    code, body, _ = _run("--reference", OBAMA_A, "--live", COFFEE)
    assert code == 4 and body is not None and body["reasons"] == ["no_face_live"]
    assert body["score"] is None


def test_several_live_photos_take_the_best_and_report_liveness() -> None:
    """A faceless frame among good ones is noted, not fatal; still photos fail liveness."""
    code, body, _ = _run("--reference", OBAMA_A, "--live", COFFEE, "--live", OBAMA_B)
    assert code == 0 and body is not None
    assert "no_face_live" in body["reasons"]  # type: ignore[operator]
    assert body["best_live"] == str(OBAMA_B)
    code, body, _ = _run(
        "--reference", OBAMA_A, "--live", OBAMA_B, "--live", OBAMA_B, "--require-liveness"
    )
    assert code == 3 and body is not None
    assert body["liveness"]["live"] is False  # type: ignore[index]
    assert "not_live" in body["reasons"]  # type: ignore[operator]


def test_liveness_is_required_only_when_asked() -> None:
    code, body, _ = _run("--reference", OBAMA_A, "--live", OBAMA_C, "--require-liveness")
    assert code == 3 and body is not None and "not_live" in body["reasons"]  # type: ignore[operator]


def _bomb(path: Path) -> Path:
    ihdr = (20000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    chunk = b"IHDR" + ihdr
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + len(ihdr).to_bytes(4, "big")
        + chunk
        + zlib.crc32(chunk).to_bytes(4, "big")
    )
    return path


def _huge(path: Path) -> Path:
    """A JPEG-looking file over the size limit (sparse: no disk is spent on it)."""
    with path.open("wb") as out:
        out.write(OBAMA_A.read_bytes())
        out.truncate(MAX_BYTES + 1)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "absent.jpg", "no such file"),
        (lambda d: (d / "empty.jpg", (d / "empty.jpg").write_bytes(b""))[0], "empty"),
        (
            lambda d: (d / "t.jpg", (d / "t.jpg").write_bytes(b"not an image"))[0],
            "not a JPEG or PNG",
        ),
        (
            lambda d: (d / "cut.jpg", (d / "cut.jpg").write_bytes(OBAMA_A.read_bytes()[:5000]))[0],
            "cut short",
        ),
        (lambda d: _bomb(d / "bomb.png"), "20000×20000"),
        (lambda d: d, "not a regular file"),
        (lambda d: _huge(d / "huge.jpg"), "limit"),
    ],
    ids=[
        "missing",
        "zero-bytes",
        "non-image",
        "truncated-jpeg",
        "decompression-bomb",
        "directory",
        "huge-file",
    ],
)
def test_bad_input_exits_2_with_a_message_and_no_json(
    tmp_path: Path, make: object, message: str
) -> None:
    bad = make(tmp_path)  # type: ignore[operator]
    for args in (("--reference", bad, "--live", OBAMA_B), ("--reference", OBAMA_A, "--live", bad)):
        code, body, err = _run(*args)
        assert code == 2, (args, err)
        assert body is None
        assert message in err and "照片无法使用" in err


def test_the_command_is_reachable_as_muster_edge_verify_face() -> None:
    """Through the real entry point and the lazy group, as a technician types it."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "muster",
            "edge",
            "verify-face",
            "--reference",
            str(OBAMA_A),
            "--live",
            str(OBAMA_C),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert set(body) >= {"match", "score", "threshold", "reasons"}
    assert body["match"] is True
