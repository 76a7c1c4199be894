"""The standard ID photo: the crop's layout against the standard, and the JPEG size cap."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from edge.photo import (
    ID_PHOTO_HEIGHT,
    ID_PHOTO_WIDTH,
    JpegTooLargeError,
    Reason,
    check_portrait,
    crop_id_photo,
    encode_jpeg_capped,
    portrait_photo,
)
from edge.photo.idphoto import (
    EYES_MIN_FROM_BOTTOM_PX,
    FACE_WIDTH_PX,
    FACE_WIDTH_TOLERANCE_PX,
    HEAD_ABOVE_FACE_BOX,
    HEAD_TOP_MAX_PX,
    HEAD_TOP_MIN_PX,
)
from edge.photo.quality import detect_eyes, detect_faces, to_gray
from edge.simulators.camera import Fault, Scene
from muster.errors import ConfigError


def decode(data: bytes) -> NDArray[np.uint8]:
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image, dtype=np.uint8)


@pytest.mark.parametrize(
    ("width", "height", "index"),
    [(640, 480, 0), (640, 480, 9), (640, 480, 30), (1280, 720, 5), (480, 640, 3)],
)
def test_crop_keeps_the_face_inside_the_standard_margins(
    width: int, height: int, index: int
) -> None:
    """Detected again in the ID photo, the face has the standard's width, centring and margins.

    Face 207 +/- 14 px wide and horizontally centred, eyes at least 207 px above the bottom,
    top of the head 7-21 px from the top; across camera sizes, orientations and positions.
    """
    frame = Scene(width=width, height=height).frame(index)
    report = check_portrait(frame)
    assert report.passed, report.reasons
    assert report.face is not None
    photo = crop_id_photo(frame, report.face)
    assert photo.shape == (ID_PHOTO_HEIGHT, ID_PHOTO_WIDTH, 3)

    gray = to_gray(photo)
    faces = detect_faces(gray)
    assert len(faces) == 1
    face = faces[0]
    assert abs(face.w - FACE_WIDTH_PX) <= FACE_WIDTH_TOLERANCE_PX
    assert abs(face.cx - ID_PHOTO_WIDTH / 2) <= 8
    eyes = detect_eyes(gray, face)
    assert eyes is not None
    for eye in eyes:
        assert ID_PHOTO_HEIGHT - eye.y >= EYES_MIN_FROM_BOTTOM_PX
    head_top = face.y - HEAD_ABOVE_FACE_BOX * face.h
    # The re-detected box moves by a few pixels against the one the crop was made from.
    assert HEAD_TOP_MIN_PX - 6 <= head_top <= HEAD_TOP_MAX_PX + 6


def test_a_face_near_the_edge_still_gives_a_full_size_photo() -> None:
    """A window reaching outside the frame is filled from the edge, not cut short."""
    frame = Scene(faults=(Fault("off-centre"),)).frame(0)
    report = check_portrait(frame)
    assert Reason.OFF_CENTRE in report.reasons
    assert report.face is not None
    photo = crop_id_photo(frame, report.face)
    assert photo.shape == (ID_PHOTO_HEIGHT, ID_PHOTO_WIDTH, 3)


def test_without_a_face_the_operator_sees_the_centre_of_the_frame() -> None:
    """With no face to crop around, the photo is the frame's centre at the standard size."""
    frame = Scene(faults=(Fault("no-face"),)).frame(0)
    image, report = portrait_photo(frame)
    assert report.reasons == (Reason.NO_FACE,)
    assert image.shape == (ID_PHOTO_HEIGHT, ID_PHOTO_WIDTH, 3)
    centre = frame[:, (640 - 390) // 2 : (640 + 390) // 2]
    expected = cv2.resize(centre, (ID_PHOTO_WIDTH, ID_PHOTO_HEIGHT), interpolation=cv2.INTER_AREA)
    assert np.abs(image.astype(int) - expected.astype(int)).mean() < 3


@pytest.fixture(scope="module")
def id_photo() -> NDArray[np.uint8]:
    image, report = portrait_photo(Scene().frame(0))
    assert report.passed
    return image


def test_a_generous_cap_keeps_the_starting_quality(id_photo: NDArray[np.uint8]) -> None:
    """Under a cap the first encoding already meets, no quality is given away."""
    encoded = encode_jpeg_capped(id_photo, 500_000)
    assert encoded.quality == 90
    assert decode(encoded.data).shape == id_photo.shape


def test_quality_steps_down_until_the_photo_fits(id_photo: NDArray[np.uint8]) -> None:
    """A tighter cap gives a lower quality and a file within the cap, still 358 x 441."""
    generous = encode_jpeg_capped(id_photo, 500_000)
    cap = len(generous.data) * 2 // 3
    tight = encode_jpeg_capped(id_photo, cap)
    assert len(tight.data) <= cap
    assert tight.quality < generous.quality
    assert tight.quality % 5 == 0
    # The step above would not have fitted: the quality is the highest that does.
    ok, above = cv2.imencode(".jpg", id_photo, [cv2.IMWRITE_JPEG_QUALITY, tight.quality + 5])
    assert ok and len(above) > cap
    assert decode(tight.data).shape == (ID_PHOTO_HEIGHT, ID_PHOTO_WIDTH, 3)


def test_a_cap_too_small_for_the_standard_size_is_a_settings_error(
    id_photo: NDArray[np.uint8],
) -> None:
    """The ID photo is never shrunk: a cap it cannot meet is refused and names the setting."""
    with pytest.raises(JpegTooLargeError, match="jpeg_max_bytes") as info:
        encode_jpeg_capped(id_photo, 2_000)
    assert isinstance(info.value, ConfigError)


def test_a_large_image_may_shrink_to_its_legible_minimum() -> None:
    """With a minimum long side (documents), the image shrinks to fit but not below it."""
    rng = np.random.default_rng(3)
    noisy = rng.integers(0, 256, size=(900, 1400, 3), dtype=np.uint8)
    encoded = encode_jpeg_capped(noisy, 150_000, min_long_side=800)
    assert len(encoded.data) <= 150_000
    assert 800 <= max(encoded.width, encoded.height) < 1400
    assert encoded.width / encoded.height == pytest.approx(1400 / 900, rel=0.01)
    with pytest.raises(JpegTooLargeError):
        encode_jpeg_capped(noisy, 20_000, min_long_side=800)
