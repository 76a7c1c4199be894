"""The standard ID photo: crop and scale a frame around its face, then fit a JPEG under a cap.

Pure: arrays in, arrays or bytes out. The layout constants are those of the resident identity
card photo (358 x 441 px, face 207 +/- 14 px wide, head top 7-21 px from the top, eyes at least
207 px above the bottom).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import cv2

from edge.photo._geometry import (
    EYES_MIN_FROM_BOTTOM_PX,
    FACE_WIDTH_PX,
    FACE_WIDTH_TOLERANCE_PX,
    HEAD_ABOVE_FACE_BOX,
    HEAD_TOP_MAX_PX,
    HEAD_TOP_MIN_PX,
    ID_PHOTO_HEIGHT,
    ID_PHOTO_WIDTH,
    Box,
    Image,
    as_image,
    id_photo_window,
)
from edge.photo.quality import DEFAULT_THRESHOLDS, QualityReport, Thresholds, check_portrait
from muster.errors import ConfigError

__all__ = [
    "EYES_MIN_FROM_BOTTOM_PX",
    "FACE_WIDTH_PX",
    "FACE_WIDTH_TOLERANCE_PX",
    "HEAD_ABOVE_FACE_BOX",
    "HEAD_TOP_MAX_PX",
    "HEAD_TOP_MIN_PX",
    "ID_PHOTO_HEIGHT",
    "ID_PHOTO_WIDTH",
    "EncodedJpeg",
    "JpegTooLargeError",
    "centre_crop",
    "crop_id_photo",
    "encode_jpeg_capped",
    "id_photo_window",
    "portrait_photo",
]

# The standard names quality factor 70; start above it so a generous cap keeps more detail.
START_QUALITY: Final = 90
MIN_QUALITY: Final = 30
QUALITY_STEP: Final = 5


class JpegTooLargeError(ConfigError):
    """The profile's ``jpeg_max_bytes`` is too small for this image even at the lowest quality."""


@dataclass(frozen=True, slots=True)
class EncodedJpeg:
    data: bytes
    quality: int
    width: int
    height: int


def _region(frame: Image, x: float, y: float, w: float, h: float, size: tuple[int, int]) -> Image:
    """Region ``(x, y, w, h)`` of ``frame`` resized to ``size``; outside the frame, edge pixels."""
    fh, fw = frame.shape[:2]
    x0, y0 = round(x), round(y)
    x1, y1 = round(x + w), round(y + h)
    pad_l, pad_t = max(0, -x0), max(0, -y0)
    pad_r, pad_b = max(0, x1 - fw), max(0, y1 - fh)
    crop = frame[max(y0, 0) : min(y1, fh), max(x0, 0) : min(x1, fw)]
    if pad_l or pad_t or pad_r or pad_b:
        crop = as_image(cv2.copyMakeBorder(crop, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE))
    shrinking = crop.shape[1] > size[0]
    return as_image(
        cv2.resize(crop, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    )


def crop_id_photo(frame: Image, face: Box) -> Image:
    """The 358 x 441 head-and-shoulders photo around ``face``, laid out per the standard."""
    x, y, w, h = id_photo_window(face)
    return _region(frame, x, y, w, h, (ID_PHOTO_WIDTH, ID_PHOTO_HEIGHT))


def centre_crop(frame: Image, size: tuple[int, int]) -> Image:
    """The largest centred region of ``frame`` with the aspect of ``size``, resized to it.

    Shown to the operator when no face was found, so they see what the camera sees.
    """
    fh, fw = frame.shape[:2]
    aspect = size[0] / size[1]
    w, h = (fh * aspect, float(fh)) if fw / fh > aspect else (float(fw), fw / aspect)
    return _region(frame, (fw - w) / 2, (fh - h) / 2, w, h, size)


def portrait_photo(
    frame: Image, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> tuple[Image, QualityReport]:
    """Check a frame and make its ID photo; without a face, the centre of the frame instead."""
    report = check_portrait(frame, thresholds)
    if report.face is None:
        return centre_crop(frame, (ID_PHOTO_WIDTH, ID_PHOTO_HEIGHT)), report
    return crop_id_photo(frame, report.face), report


def encode_jpeg_capped(
    image: Image,
    max_bytes: int,
    *,
    start_quality: int = START_QUALITY,
    min_quality: int = MIN_QUALITY,
    step: int = QUALITY_STEP,
    min_long_side: int | None = None,
) -> EncodedJpeg:
    """Encode ``image`` as JPEG no larger than ``max_bytes``, lowering the quality step by step.

    With ``min_long_side`` set (documents), an image that still does not fit at
    ``min_quality`` is shrunk by a tenth at a time, down to that long side, and tried again from
    ``start_quality``; without it (the ID photo has a fixed size) it is refused.
    """
    if not 1 <= min_quality <= start_quality <= 100 or step < 1:
        raise ConfigError(f"JPEG qualities {start_quality}..{min_quality} step {step} are invalid")
    current = image
    while True:
        smallest = 0
        for quality in range(start_quality, min_quality - 1, -step):
            ok, buf = cv2.imencode(".jpg", current, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise ConfigError(f"OpenCV could not encode a {current.shape} image as JPEG")
            smallest = len(buf)
            if smallest <= max_bytes:
                h, w = current.shape[:2]
                return EncodedJpeg(buf.tobytes(), quality, w, h)
        h, w = current.shape[:2]
        long_side = max(h, w)
        if min_long_side is None or long_side <= min_long_side:
            raise JpegTooLargeError(
                f"a {w}x{h} photo needs {smallest} bytes at JPEG quality {min_quality}, over the "
                f"profile's camera.jpeg_max_bytes={max_bytes}; raise the cap"
            )
        factor = max(0.9, min_long_side / long_side)
        current = as_image(
            cv2.resize(
                current, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA
            )
        )
