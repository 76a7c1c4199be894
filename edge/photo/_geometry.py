"""Shapes shared by the photo checks and the ID-photo crop, and the standard's layout.

The layout is that of the resident identity card photo (GA 461): 358 x 441 px at 350 dpi, the
face 207 +/- 14 px wide and horizontally centred, the top of the head 7-21 px below the upper
edge, the eyes at least 207 px above the lower edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]

# Where the Haar cascades ship inside the OpenCV wheel (``cv2.data.haarcascades``, which the
# type stubs do not declare).
HAAR_DIR: Final = Path(cv2.__file__).resolve().parent / "data"

ID_PHOTO_WIDTH: Final = 358
ID_PHOTO_HEIGHT: Final = 441
FACE_WIDTH_PX: Final = 207
FACE_WIDTH_TOLERANCE_PX: Final = 14
HEAD_TOP_MIN_PX: Final = 7
HEAD_TOP_MAX_PX: Final = 21
EYES_MIN_FROM_BOTTOM_PX: Final = 207

# A Haar frontal-face box runs from about the hairline to just above the chin and is about as
# wide as the face at the cheeks. Hair adds roughly a third of a box height above it.
HEAD_ABOVE_FACE_BOX: Final = 0.35
HEAD_TOP_TARGET_PX: Final = (HEAD_TOP_MIN_PX + HEAD_TOP_MAX_PX) / 2


def as_image(array: NDArray[Any]) -> Image:
    """An OpenCV result typed as the 8-bit image it is (no copy when it already is one)."""
    return np.asarray(array, dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned rectangle in pixel coordinates of the image it was found in."""

    x: int
    y: int
    w: int
    h: int

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float


def id_photo_window(face: Box) -> tuple[float, float, float, float]:
    """The region ``(x, y, w, h)`` of the frame that becomes the standard ID photo.

    Scaled so the face is ``FACE_WIDTH_PX`` wide, centred on it, and placed so the estimated top
    of the head lands midway in the standard's 7-21 px band. It may reach outside the frame.
    """
    scale = FACE_WIDTH_PX / face.w
    w = ID_PHOTO_WIDTH / scale
    h = ID_PHOTO_HEIGHT / scale
    face_top_in_photo = HEAD_TOP_TARGET_PX + HEAD_ABOVE_FACE_BOX * face.h * scale
    return face.cx - w / 2, face.y - face_top_in_photo / scale, w, h
