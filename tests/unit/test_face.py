"""muster.face on the real models and the photos the project ships (tests/fixtures/faces):
templates, their bytes, comparisons, the liveness challenge, and hostile image files."""

from __future__ import annotations

import struct
import zlib
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from muster.errors import ConfigError
from muster.face import (
    DEFAULT_THRESHOLD,
    FaceImageError,
    NoFace,
    Template,
    compare,
    decode_image,
    face_template,
    liveness,
    read_image,
)
from muster.face.images import MAX_BYTES
from muster.face.template import TEMPLATE_BYTES, find_face

FACES = Path(__file__).resolve().parents[1] / "fixtures" / "faces"
OBAMA = ("obama_2012_portrait.jpg", "obama_2009_congress.jpg", "obama_2010_blue_room.jpg")
OTHERS = ("biden_2010_blue_room.jpg", "collins_1998_portrait.jpg")


def _person(name: str) -> str:
    return name.split("_", 1)[0]


@pytest.fixture(scope="module")
def templates() -> dict[str, Template]:
    found = {}
    for name in (*OBAMA, *OTHERS):
        template = face_template(read_image(FACES / name))
        assert isinstance(template, Template), name
        found[name] = template
    return found


def test_every_shipped_photo_of_a_person_yields_a_template(templates: dict[str, Template]) -> None:
    """One face each, a 128-value float32 vector, with where the face is."""
    for name, template in templates.items():
        assert template.vector.shape == (128,)
        assert template.vector.dtype == np.float32
        assert template.box is not None and min(template.box[2:]) > 40, name


def test_photos_of_the_same_person_match(templates: dict[str, Template]) -> None:
    """The three photos of Obama, years apart, match each other pairwise."""
    for a, b in combinations(OBAMA, 2):
        verdict = compare(templates[a], templates[b])
        assert verdict.match, (a, b, verdict)
        assert verdict.score <= DEFAULT_THRESHOLD
        assert "same_person" in verdict.reasons


def test_photos_of_different_people_do_not_match(templates: dict[str, Template]) -> None:
    """Every pair of photos of two different people is refused."""
    pairs = [(a, b) for a, b in combinations(templates, 2) if _person(a) != _person(b)]
    assert len(pairs) == 7
    for a, b in pairs:
        verdict = compare(templates[a], templates[b])
        assert not verdict.match, (a, b, verdict)
        assert verdict.reasons[0] == "different_person"


def test_a_stricter_threshold_can_refuse_a_genuine_pair(templates: dict[str, Template]) -> None:
    verdict = compare(templates[OBAMA[0]], templates[OBAMA[1]], threshold=0.1)
    assert not verdict.match and verdict.threshold == 0.1


def test_a_picture_without_a_face_yields_no_face() -> None:
    assert face_template(read_image(FACES / "no_face_coffee.jpg")) == NoFace("no_face")
    blank = np.full((300, 300, 3), 128, dtype=np.uint8)
    assert face_template(blank) == NoFace("no_face")


def test_a_template_survives_its_bytes(templates: dict[str, Template]) -> None:
    template = templates[OBAMA[0]]
    data = template.to_bytes()
    assert len(data) == TEMPLATE_BYTES and data[:3] == b"MFT"
    back = Template.from_bytes(data)
    assert back == template
    assert compare(back, templates[OBAMA[1]]).score == compare(template, templates[OBAMA[1]]).score


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: d[:-1],
        lambda d: d + b"\x00",
        lambda d: b"XYZ" + d[3:],
        lambda d: d[:3] + b"\x09" + d[4:],
        lambda d: d[:5] + struct.pack("<f", float("nan")) + d[9:],
        lambda d: b"",
    ],
    ids=["short", "long", "magic", "version", "nan", "empty"],
)
def test_a_damaged_template_is_refused(templates: dict[str, Template], mangle: object) -> None:
    data = templates[OBAMA[0]].to_bytes()
    with pytest.raises(ConfigError):
        Template.from_bytes(mangle(data))  # type: ignore[operator]


def test_templates_of_different_models_are_not_compared(templates: dict[str, Template]) -> None:
    other = Template(vector=templates[OBAMA[0]].vector, model=2)
    verdict = compare(templates[OBAMA[0]], other)
    assert not verdict.match and verdict.reasons == ("model_mismatch",)


# --- liveness ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    return read_image(FACES / OBAMA[0])


def _eyes_and_span(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    found = find_face(image)
    assert not isinstance(found, NoFace)
    points = found.landmarks
    eye_a, eye_b = points[0:2].mean(axis=0), points[2:4].mean(axis=0)
    return eye_a, eye_b, float(np.linalg.norm(eye_a - eye_b)), points[4]


def _eyes_closed(image: np.ndarray) -> np.ndarray:
    """The eyes covered with blurred skin from below them and a dark lid line: a closed eye."""
    eye_a, eye_b, span, _nose = _eyes_and_span(image)
    out = image.copy()
    for eye in (eye_a, eye_b):
        x, y = int(eye[0]), int(eye[1])
        w, h, below = int(0.28 * span), int(0.14 * span), int(0.5 * span)
        skin = image[y + below - h : y + below + h, x - w : x + w]
        out[y - h : y + h, x - w : x + w] = cv2.GaussianBlur(skin, (0, 0), 3)
        cv2.line(out, (x - w, y), (x + w, y), (40, 30, 30), 2)
    return out


def _nose_moved(image: np.ndarray, amount: float) -> np.ndarray:
    """The nose pushed sideways relative to the eyes, as a head turned a little shows it."""
    eye_a, eye_b, span, nose = _eyes_and_span(image)
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    centre_y = ((eye_a[1] + eye_b[1]) / 2 + nose[1]) / 2
    bump = np.exp(-((xs - nose[0]) ** 2 + (ys - centre_y) ** 2) / (2 * (0.45 * span) ** 2))
    map_x = (xs - amount * span * bump).astype(np.float32)
    return cv2.remap(image, map_x, ys, cv2.INTER_LINEAR)


def test_a_still_photo_is_not_live(portrait: np.ndarray) -> None:
    """The same picture three times, or moved and brightened as a whole: no challenge seen."""
    shifted = np.roll(portrait, 6, axis=1)
    brighter = cv2.convertScaleAbs(portrait, alpha=1.2, beta=10)
    for frames in ([portrait, portrait, portrait], [portrait, shifted, brighter]):
        verdict = liveness(frames)
        assert not verdict.live, verdict
        assert verdict.reasons == ("no_movement",)


def test_a_blink_is_seen(portrait: np.ndarray) -> None:
    verdict = liveness([portrait, _eyes_closed(portrait), portrait])
    assert verdict.live and verdict.challenge == "blink", verdict


def test_closed_eyes_that_never_reopen_are_no_blink(portrait: np.ndarray) -> None:
    closed = _eyes_closed(portrait)
    assert not liveness([portrait, closed, closed]).live


def test_a_head_turn_is_seen(portrait: np.ndarray) -> None:
    verdict = liveness([portrait, _nose_moved(portrait, 0.35)])
    assert verdict.live and verdict.challenge == "turn", verdict


def test_frames_of_different_people_are_refused(portrait: np.ndarray) -> None:
    other = read_image(FACES / "biden_2010_blue_room.jpg")
    verdict = liveness([portrait, other])
    assert not verdict.live and verdict.reasons == ("frames_show_different_people",)


def test_liveness_needs_two_frames_with_a_face(portrait: np.ndarray) -> None:
    assert liveness([portrait]).reasons == ("too_few_frames",)
    coffee = read_image(FACES / "no_face_coffee.jpg")
    assert liveness([portrait, coffee]).reasons == ("no_face_in_frame",)


# --- hostile image files ----------------------------------------------------------------------


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", len(idat))
        + b"IDAT"
        + idat
        + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    )


def test_a_decompression_bomb_is_refused_by_its_header() -> None:
    """A 20000×20000 PNG of a few hundred bytes is refused before any pixel is decoded."""
    with pytest.raises(FaceImageError, match="20000×20000"):
        decode_image(_png_header(20000, 20000))


def test_a_jpeg_claiming_a_huge_size_is_refused() -> None:
    data = (FACES / OBAMA[0]).read_bytes()
    sof = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))
    assert sof > 0
    bomb = data[: sof + 5] + struct.pack(">HH", 30000, 30000) + data[sof + 9 :]
    with pytest.raises(FaceImageError, match="30000×30000"):
        decode_image(bomb)


def test_a_truncated_jpeg_is_refused() -> None:
    data = (FACES / OBAMA[0]).read_bytes()
    with pytest.raises(FaceImageError, match="cut short"):
        decode_image(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, this is not a picture\n", "not a JPEG or PNG"),
        (b"\x00" * 1024, "WLT"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 8, "PNG header"),
        (b"\xff\xd8\xff", "JPEG header"),
        (_png_header(0, 10), "zero size"),
    ],
    ids=["empty", "text", "wlt", "png-stub", "jpeg-stub", "zero"],
)
def test_bad_bytes_are_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(FaceImageError, match=message):
        decode_image(data)


def test_a_png_with_damaged_pixels_is_refused() -> None:
    with pytest.raises(FaceImageError, match="cannot be decoded"):
        decode_image(_png_header(64, 64))


def test_files_that_are_missing_huge_or_not_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FaceImageError, match="no such file"):
        read_image(tmp_path / "absent.jpg")
    with pytest.raises(FaceImageError, match="not a regular file"):
        read_image(tmp_path)
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as out:
        out.truncate(MAX_BYTES + 1)
    with pytest.raises(FaceImageError, match="limit"):
        read_image(huge)


def test_a_png_photo_is_read_like_a_jpeg(tmp_path: Path) -> None:
    png = tmp_path / "face.png"
    cv2.imwrite(str(png), read_image(FACES / OBAMA[1]))
    assert isinstance(face_template(read_image(png)), Template)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b""]), st.binary(max_size=600))
def test_random_bytes_never_escape_as_anything_but_a_face_image_error(
    prefix: bytes, body: bytes
) -> None:
    try:
        image = decode_image(prefix + body)
    except FaceImageError:
        return
    assert image.ndim == 3 and image.dtype == np.uint8


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """The JPEG with an EXIF block saying how to turn it upright, as phones write them."""
    entry = struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + entry + struct.pack("<I", 0)
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def test_a_phone_photo_stored_sideways_is_turned_upright_and_verified(
    templates: dict[str, Template],
) -> None:
    """Stored rotated with EXIF orientation 6 (as a phone held upright writes it): the decoder
    turns it upright, the size check accepts the swapped sides, and the face still matches."""
    upright = read_image(FACES / OBAMA[1])
    sideways = cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE)
    ok, encoded = cv2.imencode(".jpg", sideways)
    assert ok
    image = decode_image(_with_exif_orientation(encoded.tobytes(), 6))
    assert image.shape[:2] == upright.shape[:2]
    template = face_template(image)
    assert isinstance(template, Template)
    assert compare(templates[OBAMA[0]], template).match
