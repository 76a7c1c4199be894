"""Document mode on synthetic skewed documents: edges found, perspective undone, still legible."""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from skimage.metrics import structural_similarity

from edge.photo import Reason, document_photo, find_document, rectify_document
from edge.photo.document import ID1_ASPECT
from edge.simulators.camera import Fault, Scene, document_card, place_document

# Corners (tl, tr, br, bl) of the card on a 640 x 480 desk: seen from above and to one side,
# so each edge has its own length and slope.
SKEWED = [(150.0, 105.0), (505.0, 125.0), (530.0, 365.0), (118.0, 350.0)]


def seen_at_an_angle(
    aspect: float, long_side: float, *, squeeze: float = 0.9, turn_deg: float = 4.0
) -> list[tuple[float, float]]:
    """Corners (tl, tr, br, bl) of a document of ``aspect`` (width / height) lying on a desk,
    seen from a camera leaning towards it: the far edge shorter by ``squeeze``, and the whole
    turned by ``turn_deg``, centred on a 640 x 480 frame."""
    w, h = (long_side, long_side / aspect) if aspect >= 1 else (long_side * aspect, long_side)
    near, far = w / 2, w * squeeze / 2
    flat = [(-far, -h / 2), (far, -h / 2), (near, h / 2), (-near, h / 2)]
    c, s = math.cos(math.radians(turn_deg)), math.sin(math.radians(turn_deg))
    return [(320 + x * c - y * s, 240 + x * s + y * c) for x, y in flat]


def gray(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)


def similarity(result: NDArray[np.uint8], original: NDArray[np.uint8]) -> float:
    """Structural similarity of the result with the original brought to the result's size."""
    h, w = result.shape[:2]
    reference = np.asarray(
        cv2.resize(original, (w, h), interpolation=cv2.INTER_AREA), dtype=np.uint8
    )
    ssim: Callable[..., float] = structural_similarity
    return float(ssim(gray(result), gray(reference), data_range=255))


def test_corners_of_a_skewed_card_are_found() -> None:
    """Each corner found lies within 3 px of where the card's corner was put."""
    frame = place_document(document_card(), SKEWED)
    quad = find_document(frame)
    assert quad is not None
    for found, (x, y) in zip(quad, SKEWED, strict=True):
        assert math.hypot(found.x - x, found.y - y) <= 3.0, (found, (x, y))


def test_rectified_card_has_its_aspect_and_reads_like_the_original() -> None:
    """The corrected card has the ID-1 aspect and matches the flat original (SSIM well above a
    same-size unrelated image), so its text stays legible."""
    card = document_card()
    frame = place_document(card, SKEWED)
    image, report = document_photo(frame)
    assert report.passed, report.reasons
    h, w = image.shape[:2]
    assert w / h == pytest.approx(ID1_ASPECT, rel=0.01)
    score = similarity(image, card)
    unrelated = similarity(image, document_card(seed=99)[::-1, ::-1].copy())
    assert score > 0.6
    assert score > unrelated + 0.2


def test_a_card_of_an_unlisted_aspect_keeps_its_own() -> None:
    """A document with no standard aspect is not forced into one; its measured aspect stands."""
    card = np.ascontiguousarray(document_card(640, 512))  # 1.25, far from ID-1 and A4
    frame = place_document(card, seen_at_an_angle(1.25, 380))
    quad = find_document(frame)
    assert quad is not None
    image = rectify_document(frame, quad)
    h, w = image.shape[:2]
    assert w / h == pytest.approx(1.25, rel=0.06)
    assert similarity(image, card) > 0.5


def test_a_card_held_upright_keeps_portrait_orientation() -> None:
    """A card photographed in portrait orientation comes out taller than wide."""
    card = np.ascontiguousarray(np.rot90(document_card()))
    frame = place_document(card, seen_at_an_angle(1 / ID1_ASPECT, 380))
    image, report = document_photo(frame)
    assert report.passed, report.reasons
    h, w = image.shape[:2]
    assert h / w == pytest.approx(ID1_ASPECT, rel=0.01)


def test_a_frame_without_a_document_says_so() -> None:
    """A person instead of a document: no four-sided shape, reason NO_DOCUMENT."""
    image, report = document_photo(Scene().frame(0))
    assert Reason.NO_DOCUMENT in report.reasons
    assert report.document is None
    assert image.shape == (480, 640, 3)


def test_a_distant_document_is_too_small() -> None:
    """A card covering little of the frame is found but reported as too small."""
    _, report = document_photo(place_document(document_card(), seen_at_an_angle(ID1_ASPECT, 200)))
    assert report.document is not None
    assert Reason.DOCUMENT_TOO_SMALL in report.reasons


def test_a_defocused_document_is_blurred() -> None:
    """Out of focus, the card is still found but its print is too soft to read."""
    frame = place_document(document_card(), SKEWED)
    soft = np.asarray(cv2.GaussianBlur(frame, (0, 0), 4.0), dtype=np.uint8)
    _, report = document_photo(soft)
    assert report.document is not None
    assert Reason.BLURRED in report.reasons


def test_a_document_in_the_dark_is_too_dark() -> None:
    """With the light off, the document is reported as too dark."""
    frame = (place_document(document_card(), SKEWED).astype(np.float32) * 0.15).astype(np.uint8)
    _, report = document_photo(frame)
    assert report.reasons[0] is Reason.TOO_DARK


def test_the_simulated_document_camera_passes() -> None:
    """The simulator's document scene, with its noise and drift, passes document mode; with
    the blur fault it does not."""
    _, report = document_photo(Scene(subject="document").frame(5))
    assert report.passed, report.reasons
    _, blurred = document_photo(Scene(subject="document", faults=(Fault("blur"),)).frame(5))
    assert Reason.BLURRED in blurred.reasons
