"""Document photos: find a card or sheet's four edges, undo the perspective, judge legibility.

Pure: a frame in, the rectified image and a :class:`~edge.photo.quality.QualityReport` out.
Documents are photographed lying on a desk, so the paper is expected to be lighter than what it
lies on; both its outline in an edge map and its shape in a brightness threshold are tried.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.photo._geometry import Image, Point, as_image
from edge.photo.quality import (
    DEFAULT_THRESHOLDS,
    Measurements,
    QualityReport,
    Reason,
    Thresholds,
    exposure,
    sharpness,
    to_gray,
)

__all__ = [
    "ID1_ASPECT",
    "ISO216_ASPECT",
    "KNOWN_ASPECTS",
    "Quad",
    "document_photo",
    "find_document",
    "rectify_document",
]
Quad = tuple[Point, Point, Point, Point]
"""Corners in order: top-left, top-right, bottom-right, bottom-left."""

# ID-1 cards (the resident ID card, bank and social security cards) are 85.60 x 53.98 mm;
# certificates and forms are ISO 216 sheets (A4, A5), sqrt(2) long.
ID1_ASPECT: Final = 85.60 / 53.98
ISO216_ASPECT: Final = math.sqrt(2)
KNOWN_ASPECTS: Final = (ID1_ASPECT, ISO216_ASPECT)
# A measured aspect this close (relative) to a known one is taken to be it: perspective makes
# the measurement a few per cent off, and a card that comes out squashed is harder to read.
SNAP_TOLERANCE: Final = 0.06
# Edge finding works on a copy this wide; the corners are scaled back to the full frame.
_WORK_WIDTH: Final = 640
# Shapes smaller than this share of the frame are not considered at all; between it and
# ``Thresholds.min_document_area`` a document is reported as too small.
_MIN_CANDIDATE_AREA: Final = 0.03
MAX_LONG_SIDE: Final = 1600
# A document image is not shrunk below this to meet the JPEG cap: ID-card text stays readable.
MIN_LEGIBLE_LONG_SIDE: Final = 800


def _order(points: NDArray[np.float32]) -> Quad:
    s = points.sum(axis=1)
    d = points[:, 1] - points[:, 0]
    tl, br = points[int(np.argmin(s))], points[int(np.argmax(s))]
    tr, bl = points[int(np.argmin(d))], points[int(np.argmax(d))]
    return (
        Point(float(tl[0]), float(tl[1])),
        Point(float(tr[0]), float(tr[1])),
        Point(float(br[0]), float(br[1])),
        Point(float(bl[0]), float(bl[1])),
    )


def _quads(mask: Image, min_area: float) -> list[tuple[float, NDArray[np.float32]]]:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    found: list[tuple[float, NDArray[np.float32]]] = []
    h, w = mask.shape
    for contour in sorted(contours, key=cv2.contourArea, reverse=True)[:5]:
        if cv2.contourArea(contour) < min_area:
            break
        # A shape cut by the frame's edge is the background or a document partly out of view;
        # its fourth corner would be the frame's, and the page would come out cropped.
        x, y, bw, bh = cv2.boundingRect(contour)
        if x <= 1 or y <= 1 or x + bw >= w - 1 or y + bh >= h - 1:
            continue
        # The hull bridges notches that a finger or a shadow bites out of an edge.
        hull = cv2.convexHull(contour)
        approx = cv2.approxPolyDP(hull, 0.02 * cv2.arcLength(hull, True), True)
        if len(approx) == 4 and cv2.isContourConvex(approx):
            area = float(cv2.contourArea(approx))
            if area >= min_area:
                found.append((area, approx.reshape(4, 2).astype(np.float32)))
    return found


def find_document(frame: Image) -> Quad | None:
    """The corners of the largest four-sided light shape in the frame, or ``None``."""
    gray = to_gray(frame)
    scale = min(1.0, _WORK_WIDTH / gray.shape[1])
    if scale < 1.0:
        gray = as_image(cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    small = as_image(cv2.GaussianBlur(gray, (5, 5), 0))
    min_area = _MIN_CANDIDATE_AREA * small.shape[0] * small.shape[1]
    kernel = np.ones((3, 3), np.uint8)

    edges = as_image(cv2.dilate(cv2.Canny(small, 50, 150), kernel))
    # Closing the threshold mask removes the holes that the printing makes in the paper.
    _, bright = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = as_image(cv2.morphologyEx(bright, cv2.MORPH_CLOSE, kernel, iterations=3))

    candidates = _quads(edges, min_area) + _quads(bright, min_area)
    if not candidates:
        return None
    _, best = max(candidates, key=lambda c: c[0])
    return _order(best / scale)


def _dist(a: Point, b: Point) -> float:
    return math.hypot(a.x - b.x, a.y - b.y)


def rectify_document(
    frame: Image,
    quad: Quad,
    *,
    known_aspects: Sequence[float] = KNOWN_ASPECTS,
    snap_tolerance: float = SNAP_TOLERANCE,
    max_long_side: int = MAX_LONG_SIDE,
) -> Image:
    """The document seen square-on, at about the resolution it had in the frame.

    Its aspect is the mean of opposite edges, snapped to a known document aspect when close.
    """
    tl, tr, br, bl = quad
    width = max(_dist(tl, tr), _dist(bl, br))
    height = max(_dist(tl, bl), _dist(tr, br))
    aspect = (_dist(tl, tr) + _dist(bl, br)) / max(1e-6, _dist(tl, bl) + _dist(tr, br))
    for known in known_aspects:
        for candidate in (known, 1 / known):
            if abs(aspect / candidate - 1) <= snap_tolerance:
                aspect = candidate
    # Keep the longer measured side's resolution; never invent detail by enlarging.
    if aspect >= 1:
        out_w = min(float(max_long_side), max(width, height * aspect))
        out_h = out_w / aspect
    else:
        out_h = min(float(max_long_side), max(height, width / aspect))
        out_w = out_h * aspect
    size = (max(1, round(out_w)), max(1, round(out_h)))
    src = np.array([[p.x, p.y] for p in quad], dtype=np.float32)
    dst = np.array(
        [[0, 0], [size[0] - 1, 0], [size[0] - 1, size[1] - 1], [0, size[1] - 1]], dtype=np.float32
    )
    matrix = cv2.getPerspectiveTransform(src, dst)
    return as_image(cv2.warpPerspective(frame, matrix, size, flags=cv2.INTER_CUBIC))


def _quad_area(quad: Quad) -> float:
    pts = np.array([[p.x, p.y] for p in quad], dtype=np.float32)
    return float(cv2.contourArea(pts))


def document_photo(
    frame: Image, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> tuple[Image, QualityReport]:
    """Find, rectify and judge a document; without one, the whole frame and the reason."""
    t = thresholds
    gray = to_gray(frame)
    fh, fw = gray.shape
    quad = find_document(frame)
    if quad is None:
        brightness, dark, bright = exposure(gray)
        reasons = [Reason.TOO_DARK] if brightness < t.min_brightness else []
        reasons.append(Reason.NO_DOCUMENT)
        measured = Measurements(brightness, dark, bright, sharpness(gray, 512))
        return frame, QualityReport("document", tuple(reasons), measured)

    image = rectify_document(frame, quad)
    doc_gray = to_gray(image)
    brightness, dark, bright = exposure(doc_gray)
    focus = sharpness(doc_gray, 512)
    area = _quad_area(quad) / (fw * fh)
    reasons = []
    # Paper is meant to be light, so only a dim page or a glare spot counts against it.
    if brightness < t.min_brightness:
        reasons.append(Reason.TOO_DARK)
    elif bright > t.max_document_glare:
        reasons.append(Reason.TOO_BRIGHT)
    if focus < t.min_document_sharpness:
        reasons.append(Reason.BLURRED)
    if area < t.min_document_area:
        reasons.append(Reason.DOCUMENT_TOO_SMALL)
    measured = Measurements(brightness, dark, bright, focus, document_area=area)
    return image, QualityReport("document", tuple(reasons), measured, document=quad)
