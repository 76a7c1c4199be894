"""Photo quality checks on frames made to pass and to fail each of them."""

from __future__ import annotations

import json
import re
from functools import cache

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from edge.photo import REASON_TEXT, InvalidFrameError, Reason, Thresholds, check_portrait
from edge.photo.quality import exposure, sharpness
from edge.simulators.camera import Fault, Scene

CJK = re.compile(r"[\u4e00-\u9fff]")


@cache
def frame(fault: str | None = None, index: int = 0) -> NDArray[np.uint8]:
    faults = (Fault(fault),) if fault else ()
    return Scene(faults=faults).frame(index)


@pytest.mark.parametrize("index", [0, 11, 23])
def test_a_sharp_centred_well_lit_face_passes(index: int) -> None:
    """A head-and-shoulders frame of one person, centred and in focus, passes every check."""
    report = check_portrait(frame(None, index))
    assert report.passed, report.reasons
    assert report.measurements.faces == 1
    assert report.face is not None and report.eyes is not None
    left, right = report.eyes
    assert left.x < right.x
    # Both eyes inside the face box, in its upper half.
    for eye in report.eyes:
        assert report.face.x < eye.x < report.face.x + report.face.w
        assert report.face.y < eye.y < report.face.cy


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("no-face", Reason.NO_FACE),
        ("two-faces", Reason.MANY_FACES),
        ("far", Reason.FACE_TOO_SMALL),
        ("near", Reason.FACE_TOO_LARGE),
        ("off-centre", Reason.OFF_CENTRE),
        ("blur", Reason.BLURRED),
        ("dark", Reason.TOO_DARK),
        ("bright", Reason.TOO_BRIGHT),
        ("tilt", Reason.EYES_NOT_LEVEL),
    ],
)
def test_each_fault_fails_with_its_reason_first(fault: str, reason: Reason) -> None:
    """A frame with one defect fails, and the first reason names that defect."""
    report = check_portrait(frame(fault))
    assert not report.passed
    assert report.reasons[0] is reason, report.reasons


@pytest.mark.parametrize("fault", ["blur", "far", "off-centre", "tilt"])
def test_a_single_geometric_or_focus_defect_is_the_only_reason(fault: str) -> None:
    """Defects that leave the face detectable do not drag in unrelated reasons."""
    report = check_portrait(frame(fault))
    assert len(report.reasons) == 1, report.reasons


def test_tilt_direction_is_measured_with_its_sign() -> None:
    """Rotating the same head one way and the other gives eye tilts of opposite sign."""
    base = frame()
    h, w = base.shape[:2]
    tilts = []
    for angle in (14.0, -14.0):
        face = check_portrait(base).face
        assert face is not None
        matrix = cv2.getRotationMatrix2D((face.cx, face.cy), angle, 1.0)
        rotated = np.asarray(
            cv2.warpAffine(base, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE), dtype=np.uint8
        )
        report = check_portrait(rotated)
        assert Reason.EYES_NOT_LEVEL in report.reasons
        assert report.measurements.eye_tilt_deg is not None
        tilts.append(report.measurements.eye_tilt_deg)
    assert tilts[0] < -8 < 8 < tilts[1]


def test_eyes_covered_with_skin_are_not_found() -> None:
    """With both eyes painted over in the colour of the cheek below them (eyes shut), the face
    is still found but the eyes are not, and that is the only reason."""
    image = frame().copy()
    report = check_portrait(image)
    assert report.face is not None and report.eyes is not None
    for eye in report.eyes:
        x, y = round(eye.x), round(eye.y)
        skin = image[y + 30 : y + 40, x - 5 : x + 5].reshape(-1, 3).mean(axis=0)
        axes = (round(report.face.w * 0.08), round(report.face.w * 0.04))
        cv2.ellipse(image, (x, y), axes, 0, 0, 360, tuple(int(v) for v in skin), -1)
    covered = np.asarray(cv2.GaussianBlur(image, (0, 0), 0.8), dtype=np.uint8)
    assert check_portrait(covered).reasons == (Reason.EYES_NOT_FOUND,)


def test_thresholds_decide_the_verdict() -> None:
    """The limits are parameters: a blurred frame passes when the sharpness limit is lowered."""
    blurred = frame("blur")
    focus = check_portrait(blurred).measurements.sharpness
    lenient = Thresholds(min_sharpness=focus / 2)
    assert check_portrait(blurred, lenient).passed
    strict = Thresholds(min_sharpness=check_portrait(frame()).measurements.sharpness * 2)
    assert check_portrait(frame(), strict).reasons == (Reason.BLURRED,)


def test_sharpness_falls_with_blur_and_ignores_size() -> None:
    """Laplacian variance drops as a pattern is blurred and is comparable across image sizes."""
    board = np.kron((np.indices((8, 8)).sum(axis=0) % 2) * 200 + 30, np.ones((16, 16)))
    board = board.astype(np.uint8)
    scores = [
        sharpness(np.asarray(cv2.GaussianBlur(board, (0, 0), s), dtype=np.uint8), 128)
        for s in (0.5, 2.0, 5.0)
    ]
    assert scores[0] > scores[1] > scores[2]
    big = np.asarray(
        cv2.resize(board, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST), dtype=np.uint8
    )
    assert sharpness(big, 128) == pytest.approx(sharpness(board, 128), rel=0.05)


def test_exposure_measures_mean_and_clipping() -> None:
    """Exposure reports the mean and the shares of crushed and blown pixels."""
    image = np.full((100, 100), 128, dtype=np.uint8)
    image[:10] = 0
    image[-20:] = 255
    mean, dark, bright = exposure(image)
    assert mean == pytest.approx((10 * 0 + 70 * 128 + 20 * 255) / 100)
    assert dark == pytest.approx(0.10)
    assert bright == pytest.approx(0.20)


def test_grey_frames_are_accepted() -> None:
    """A single-channel frame is checked like its colour original."""
    grey = np.asarray(cv2.cvtColor(frame(), cv2.COLOR_BGR2GRAY), dtype=np.uint8)
    assert check_portrait(grey).passed


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((480, 640, 3), dtype=np.float32),
        np.zeros((480, 640, 2), dtype=np.uint8),
        np.zeros((16, 16, 3), dtype=np.uint8),
    ],
)
def test_what_is_not_an_image_is_refused(bad: NDArray[np.generic]) -> None:
    """Arrays of the wrong type, channel count or size raise InvalidFrameError, a MusterError."""
    with pytest.raises(InvalidFrameError):
        check_portrait(bad)  # type: ignore[arg-type]


def test_every_reason_has_chinese_and_english_text() -> None:
    """The reason table covers every reason with an operator instruction in both languages."""
    assert set(REASON_TEXT) == set(Reason)
    for reason in Reason:
        assert CJK.search(reason.zh), reason
        assert reason.en and not CJK.search(reason.en), reason


def test_report_serialises_with_both_languages() -> None:
    """The JSON form carries the codes, both texts and the measurements."""
    report = check_portrait(frame("dark"))
    doc = json.loads(json.dumps(report.to_dict(), ensure_ascii=False))
    assert doc["passed"] is False
    assert doc["reasons"][0] == {
        "code": "too_dark",
        "zh": Reason.TOO_DARK.zh,
        "en": Reason.TOO_DARK.en,
    }
    assert doc["measurements"]["brightness"] < Thresholds().min_brightness
