"""Photo quality as a pure function of one frame.

``check_portrait(frame)`` answers "may this frame become the person's ID photo, and if not, what
should the operator change?". Every failed check is a :class:`Reason` whose Simplified Chinese
and English texts live in one table, :data:`REASON_TEXT`, so the console, the technician's CLI and
the controller show the same words.

No capture, no clocks: the face and eye detectors are OpenCV's Haar cascades shipped inside the
``opencv-python-headless`` wheel (``cv2.data.haarcascades``), loaded once per thread because a
cascade object keeps scratch buffers and must not be shared between threads.

Over 400 lines because each check (focus, exposure, face position, background) is small and they
share one measured image; one module keeps the thresholds in view together.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Literal

import cv2
import numpy as np

from edge.photo._geometry import HAAR_DIR, Box, Image, Point, as_image, id_photo_window
from muster.errors import MusterError

__all__ = [
    "DEFAULT_THRESHOLDS",
    "REASON_TEXT",
    "Box",
    "InvalidFrameError",
    "Measurements",
    "Point",
    "QualityReport",
    "Reason",
    "ReasonText",
    "Thresholds",
    "check_portrait",
    "detect_eyes",
    "detect_faces",
    "exposure",
    "sharpness",
    "to_gray",
    "window_overhang",
]


class InvalidFrameError(MusterError):
    """A frame is not an 8-bit grey or BGR image, so no check can be made on it."""


class Reason(StrEnum):
    """Why a frame failed; the value is the stable code used in JSON and telemetry."""

    TOO_DARK = "too_dark"
    TOO_BRIGHT = "too_bright"
    BLURRED = "blurred"
    NO_FACE = "no_face"
    MANY_FACES = "many_faces"
    FACE_TOO_SMALL = "face_too_small"
    FACE_TOO_LARGE = "face_too_large"
    OFF_CENTRE = "off_centre"
    EYES_NOT_FOUND = "eyes_not_found"
    EYES_NOT_LEVEL = "eyes_not_level"
    NO_DOCUMENT = "no_document"
    DOCUMENT_TOO_SMALL = "document_too_small"

    @property
    def zh(self) -> str:
        return REASON_TEXT[self].zh

    @property
    def en(self) -> str:
        return REASON_TEXT[self].en


@dataclass(frozen=True, slots=True)
class ReasonText:
    zh: str
    en: str


# Each text tells the operator what to do, not what the detector saw.
REASON_TEXT: Final = MappingProxyType(
    {
        Reason.TOO_DARK: ReasonText(
            "光线太暗，请打开照明或面向光源", "Too dark: turn on the light or face it"
        ),
        Reason.TOO_BRIGHT: ReasonText(
            "光线太亮，请避开强光直射和逆光", "Too bright: avoid direct light and backlight"
        ),
        Reason.BLURRED: ReasonText(
            "画面模糊，请保持不动并擦拭镜头", "Blurred: hold still and clean the lens"
        ),
        Reason.NO_FACE: ReasonText(
            "未检测到人脸，请正对镜头并摘下帽子", "No face found: face the camera, hat off"
        ),
        Reason.MANY_FACES: ReasonText(
            "画面中只能有被拍摄人一人，请其他人离开镜头",
            "More than one face: only the person being photographed may be in view",
        ),
        Reason.FACE_TOO_SMALL: ReasonText(
            "请靠近镜头", "Face too small: move closer to the camera"
        ),
        Reason.FACE_TOO_LARGE: ReasonText(
            "请离镜头远一些", "Face too large: move back from the camera"
        ),
        Reason.OFF_CENTRE: ReasonText(
            "请将脸部移到画面中央", "Face off centre: move to the middle of the picture"
        ),
        Reason.EYES_NOT_FOUND: ReasonText(
            "未检测到双眼，请正对镜头并睁开眼睛", "Eyes not found: look at the camera, eyes open"
        ),
        Reason.EYES_NOT_LEVEL: ReasonText(
            "请正对镜头，摆正头部，双眼保持水平",
            "Head tilted: face the camera, keep the eyes level",
        ),
        Reason.NO_DOCUMENT: ReasonText(
            "未找到证件边缘，请将证件平放在深色桌面上并完整入镜",
            "Document edges not found: lay it flat on a dark surface, wholly in view",
        ),
        Reason.DOCUMENT_TOO_SMALL: ReasonText(
            "证件太小，请将证件靠近镜头", "Document too small: bring it closer to the camera"
        ),
    }
)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Limits of the checks. The defaults suit a 4:3 or 16:9 camera at arm's length."""

    # Detection runs on a copy this wide: Haar cost grows with area, and a face large enough to
    # pass is still over 50 px wide at this size (the cascade's window is 24 px).
    detect_width: int = 320
    # A second face counts only if at least this fraction of the largest one's width; smaller
    # hits are passers-by far behind or detector noise.
    other_face_min_ratio: float = 0.5
    # Face width over frame height. The ID photo is 2.13 face widths tall, so above 0.47 the
    # standard frame no longer fits; below 0.22 it would be upscaled more than about 2x.
    min_face_ratio: float = 0.22
    max_face_ratio: float = 0.47
    # Horizontal distance of the face centre from the frame centre, as a fraction of the width.
    max_centre_offset: float = 0.12
    # Fraction of the ID-photo window that may fall outside the frame (filled by edge pixels).
    max_window_overhang: float = 0.04
    # Laplacian variance of the face resized to 128 px: a sharp face at arm's length gives
    # 150-250, a 1.5 px defocus about 45.
    min_sharpness: float = 60.0
    # Mean luminance of the face (or, with no face, the centre of the frame) and the share of
    # its pixels crushed to black or blown to white.
    min_brightness: float = 60.0
    max_brightness: float = 210.0
    max_clipped: float = 0.15
    max_eye_tilt_deg: float = 8.0
    # Document mode: the document's share of the frame area and the sharpness of its rectified
    # image resized to 512 px wide (printed text scores several hundred).
    min_document_area: float = 0.15
    min_document_sharpness: float = 100.0
    # Share of the document's pixels blown to white: a reflection that hides print.
    max_document_glare: float = 0.30


DEFAULT_THRESHOLDS: Final = Thresholds()


@dataclass(frozen=True, slots=True)
class Measurements:
    """What the checks measured; ``None`` where a value could not be measured."""

    brightness: float
    clipped_dark: float
    clipped_bright: float
    sharpness: float
    faces: int = 0
    face_ratio: float | None = None
    centre_offset: float | None = None
    window_overhang: float | None = None
    eye_tilt_deg: float | None = None
    document_area: float | None = None


@dataclass(frozen=True, slots=True)
class QualityReport:
    """The verdict on one frame: empty ``reasons`` means it passed."""

    mode: Literal["portrait", "document"]
    reasons: tuple[Reason, ...]
    measurements: Measurements
    face: Box | None = None
    eyes: tuple[Point, Point] | None = None
    document: tuple[Point, Point, Point, Point] | None = None

    @property
    def passed(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form with both languages of every reason."""
        m = self.measurements
        return {
            "mode": self.mode,
            "passed": self.passed,
            "reasons": [{"code": r.value, "zh": r.zh, "en": r.en} for r in self.reasons],
            "measurements": {
                k: (round(v, 3) if isinstance(v, float) else v)
                for k in m.__slots__
                if (v := getattr(m, k)) is not None
            },
            "face": None
            if self.face is None
            else [self.face.x, self.face.y, self.face.w, self.face.h],
            "eyes": (
                None if self.eyes is None else [[round(p.x, 1), round(p.y, 1)] for p in self.eyes]
            ),
            "document": (
                None
                if self.document is None
                else [[round(p.x, 1), round(p.y, 1)] for p in self.document]
            ),
        }


_local = threading.local()


def _cascade(name: str) -> cv2.CascadeClassifier:
    cache: dict[str, cv2.CascadeClassifier] | None = getattr(_local, "cascades", None)
    if cache is None:
        cache = _local.cascades = {}
    cascade = cache.get(name)
    if cascade is None:
        cascade = cv2.CascadeClassifier(str(HAAR_DIR / name))
        if cascade.empty():
            raise FileNotFoundError(f"OpenCV cascade {name} missing from {HAAR_DIR}")
        cache[name] = cascade
    return cascade


def to_gray(frame: Image) -> Image:
    """The frame as 8-bit grey; refuses anything that is not an 8-bit grey, BGR or BGRA image."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise InvalidFrameError("a frame must be a numpy array of uint8")
    if frame.ndim == 2:
        gray = frame
    elif frame.ndim == 3 and frame.shape[2] == 3:
        gray = as_image(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    elif frame.ndim == 3 and frame.shape[2] == 4:
        gray = as_image(cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY))
    else:
        raise InvalidFrameError(f"a frame must be grey, BGR or BGRA, not of shape {frame.shape}")
    if gray.shape[0] < 32 or gray.shape[1] < 32:
        raise InvalidFrameError(f"a frame of {gray.shape[1]}x{gray.shape[0]} px is too small")
    return np.ascontiguousarray(gray)


def detect_faces(
    gray: Image, thresholds: Thresholds = DEFAULT_THRESHOLDS, *, equalize: bool = False
) -> list[Box]:
    """Frontal faces in a grey frame, largest first, in the frame's own coordinates.

    ``equalize`` stretches the histogram first, which finds faces in dim or washed-out frames
    at about twice the cost.
    """
    scale = min(1.0, thresholds.detect_width / gray.shape[1])
    small = gray
    if scale < 1.0:
        small = as_image(cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    if equalize:
        small = as_image(cv2.equalizeHist(small))
    # Down to 60 % of the smallest passing face, so a face a little too far is reported as too
    # small rather than missed; every halving of the smallest size roughly doubles the cost.
    min_side = max(24, int(0.6 * thresholds.min_face_ratio * small.shape[0]))
    found = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        small,
        scaleFactor=1.15,
        minNeighbors=5,
        minSize=(min_side, min_side),
        maxSize=(small.shape[0], small.shape[0]),
    )
    boxes = [
        Box(round(x / scale), round(y / scale), round(bw / scale), round(bh / scale))
        for x, y, bw, bh in (tuple(int(v) for v in r) for r in found)
    ]
    return sorted(boxes, key=lambda b: b.w * b.h, reverse=True)


def detect_eyes(gray: Image, face: Box) -> tuple[Point, Point] | None:
    """The centres of the left and right eye (in image order) inside a face, or ``None``."""
    # Eyes sit in a band from about 20 % to 55 % of a Haar face box's height.
    top = face.y + face.h // 5
    bottom = face.y + face.h * 11 // 20
    x0, x1 = max(face.x, 0), min(face.x + face.w, gray.shape[1])
    band = gray[max(top, 0) : min(bottom, gray.shape[0]), x0:x1]
    if band.size == 0:
        return None
    # Work at a fixed face width so the cascade cost does not grow with the camera's resolution;
    # at 120 px an eye is still 25 px, enough for the cascade and for a 2-degree tilt estimate.
    scale = min(1.0, 120 / face.w)
    if scale < 1.0:
        band = as_image(cv2.resize(band, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    side = max(12, int(face.w * scale / 8))
    for name in ("haarcascade_eye.xml", "haarcascade_eye_tree_eyeglasses.xml"):
        found = _cascade(name).detectMultiScale(
            band,
            scaleFactor=1.1,
            minNeighbors=4,
            minSize=(side, side),
            maxSize=(4 * side, 4 * side),
        )
        mid = band.shape[1] / 2
        left: tuple[float, float, float] | None = None
        right: tuple[float, float, float] | None = None
        for ex, ey, ew, eh in (tuple(int(v) for v in r) for r in found):
            cx, cy, size = ex + ew / 2, ey + eh / 2, float(ew * eh)
            if cx < mid and (left is None or size > left[2]):
                left = (cx, cy, size)
            elif cx >= mid and (right is None or size > right[2]):
                right = (cx, cy, size)
        if left is not None and right is not None:
            return (
                Point(x0 + left[0] / scale, top + left[1] / scale),
                Point(x0 + right[0] / scale, top + right[1] / scale),
            )
    return None


def sharpness(gray: Image, width: int) -> float:
    """Variance of the Laplacian after resizing to ``width`` px, so scores compare across sizes."""
    h, w = gray.shape
    resized = cv2.resize(gray, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(resized, cv2.CV_64F).var())


def exposure(gray: Image) -> tuple[float, float, float]:
    """Mean luminance and the shares of pixels at or below 5 and at or above 250."""
    hist = cv2.calcHist([gray], [0], None, [256], [0, 256]).ravel()
    total = float(hist.sum())
    mean = float(np.dot(hist, np.arange(256))) / total
    return mean, float(hist[:6].sum()) / total, float(hist[250:].sum()) / total


def _exposure_reasons(brightness: float, dark: float, bright: float, t: Thresholds) -> list[Reason]:
    if brightness < t.min_brightness or dark > t.max_clipped:
        return [Reason.TOO_DARK]
    if brightness > t.max_brightness or bright > t.max_clipped:
        return [Reason.TOO_BRIGHT]
    return []


def _crop(gray: Image, box: Box) -> Image:
    h, w = gray.shape
    return gray[max(box.y, 0) : min(box.y + box.h, h), max(box.x, 0) : min(box.x + box.w, w)]


def window_overhang(face: Box, frame_w: int, frame_h: int) -> float:
    """How far the standard ID-photo window around ``face`` sticks out of the frame.

    The larger of the horizontal and vertical overhang, each as a fraction of the window's size.
    """
    x, y, w, h = id_photo_window(face)
    over_x = max(0.0, -x) + max(0.0, x + w - frame_w)
    over_y = max(0.0, -y) + max(0.0, y + h - frame_h)
    return max(over_x / w, over_y / h)


def check_portrait(frame: Image, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> QualityReport:
    """Check one frame for the ID photo: light, sharpness, one face, its size and place, eyes.

    Every failing check is reported, the light first, so the operator fixes the light before
    being told to move.
    """
    t = thresholds
    gray = to_gray(frame)
    fh, fw = gray.shape
    faces = detect_faces(gray, t)
    if not faces:
        # Look again in a poorly lit frame, so the operator hears about the light first.
        mean, dark, bright = exposure(gray)
        if _exposure_reasons(mean, dark, bright, t):
            faces = detect_faces(gray, t, equalize=True)
    if faces:
        others = [f for f in faces[1:] if f.w >= t.other_face_min_ratio * faces[0].w]
        count = 1 + len(others)
    else:
        count = 0
    face = faces[0] if faces else None

    if face is not None:
        region = _crop(gray, face)
    else:
        # Judge the light where a face belongs: the middle of the frame.
        side = int(min(fw, fh) * 0.4)
        region = _crop(gray, Box((fw - side) // 2, (fh - side) // 3, side, side))
    brightness, dark, bright = exposure(region)
    focus = sharpness(region, 128)
    if face is not None:
        reasons = _exposure_reasons(brightness, dark, bright, t)
        if focus < t.min_sharpness:
            reasons.append(Reason.BLURRED)
    else:
        # A bare wall is evenly lit and has nothing in focus, so without a face only darkness
        # and blown highlights are certain; the operator is told about them and the missing face.
        reasons = [Reason.TOO_DARK] if brightness < t.min_brightness else []
        if bright > t.max_clipped:
            reasons.append(Reason.TOO_BRIGHT)

    base = Measurements(
        brightness=brightness,
        clipped_dark=dark,
        clipped_bright=bright,
        sharpness=focus,
        faces=count,
    )
    if face is None:
        reasons.append(Reason.NO_FACE)
        return QualityReport("portrait", tuple(reasons), base)
    if count > 1:
        reasons.append(Reason.MANY_FACES)

    ratio = face.w / fh
    offset = (face.cx - fw / 2) / fw
    overhang = window_overhang(face, fw, fh)
    if ratio < t.min_face_ratio:
        reasons.append(Reason.FACE_TOO_SMALL)
    elif ratio > t.max_face_ratio:
        reasons.append(Reason.FACE_TOO_LARGE)
    elif abs(offset) > t.max_centre_offset or overhang > t.max_window_overhang:
        reasons.append(Reason.OFF_CENTRE)

    eyes = detect_eyes(gray, face)
    tilt: float | None = None
    if eyes is None:
        reasons.append(Reason.EYES_NOT_FOUND)
    else:
        left, right = eyes
        tilt = math.degrees(math.atan2(right.y - left.y, right.x - left.x))
        if abs(tilt) > t.max_eye_tilt_deg:
            reasons.append(Reason.EYES_NOT_LEVEL)

    measured = Measurements(
        brightness=brightness,
        clipped_dark=dark,
        clipped_bright=bright,
        sharpness=focus,
        faces=count,
        face_ratio=ratio,
        centre_offset=offset,
        window_overhang=overhang,
        eye_tilt_deg=tilt,
    )
    return QualityReport("portrait", tuple(reasons), measured, face=face, eyes=eyes)
