"""From a photo to a face template: detect the largest face, align it, describe it.

A template is what travels (in the slice, to the device) instead of a picture: 128 numbers
describing one face, tagged with the model that made them, 517 bytes serialised. Two templates
are compared with ``muster.face.compare``; a template from another model is never compared.

The descriptor is dlib's (ResNet, 128 dimensions) and is kept as the model gives it, not
L2-normalised: the model's published threshold (0.6) is on the Euclidean distance between raw
descriptors, and normalising would move every distance away from it.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any, Final

import cv2
import dlib  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt

from muster.errors import ConfigError
from muster.face.images import Image
from muster.face.models import MODEL_ID, face_models

__all__ = [
    "DIMENSIONS",
    "MIN_DETECTION_SCORE",
    "MIN_FACE_SIDE",
    "TEMPLATE_BYTES",
    "TEMPLATE_MAGIC",
    "FoundFace",
    "NoFace",
    "Template",
    "aligned_chip",
    "face_template",
    "find_face",
    "template_of",
]

DIMENSIONS: Final = 128
TEMPLATE_MAGIC: Final = b"MFT"
TEMPLATE_VERSION: Final = 1
_HEADER: Final = struct.Struct("<3sBB")
TEMPLATE_BYTES: Final = _HEADER.size + 4 * DIMENSIONS

# The picture is scaled so its longer side is at most this before detection: HOG's cost grows
# with the pixel count, and a face filling an ID-style photo is still ~200 px across at 640.
_DETECT_SIDE: Final = 640
# HOG scores below this are, on our photos, badges and patterns rather than faces.
MIN_DETECTION_SCORE: Final = 0.3
# A face smaller than this (in the scaled picture) is too coarse to describe reliably.
MIN_FACE_SIDE: Final = 40

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class Template:
    """One face's descriptor, the model that made it, and (not serialised) where it was."""

    vector: Vector
    model: int = MODEL_ID
    box: tuple[int, int, int, int] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.vector.shape != (DIMENSIONS,) or self.vector.dtype != np.float32:
            raise ConfigError(f"a face template holds {DIMENSIONS} float32 values")
        if not bool(np.all(np.isfinite(self.vector))):
            raise ConfigError("a face template holds a value that is not a finite number")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Template):
            return NotImplemented
        return self.model == other.model and bool(np.array_equal(self.vector, other.vector))

    def __hash__(self) -> int:
        return hash((self.model, self.vector.tobytes()))

    def to_bytes(self) -> bytes:
        """``MFT`` + format version + model id + 128 little-endian float32."""
        header = _HEADER.pack(TEMPLATE_MAGIC, TEMPLATE_VERSION, self.model)
        return header + self.vector.astype("<f4").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Template:
        """Read a template back, refusing anything that is not exactly one of ours."""
        if len(data) != TEMPLATE_BYTES:
            raise ConfigError(
                f"人脸模板长度错误 / a face template is {TEMPLATE_BYTES} bytes, not {len(data)}"
            )
        magic, version, model = _HEADER.unpack_from(data)
        if magic != TEMPLATE_MAGIC or version != TEMPLATE_VERSION:
            raise ConfigError(
                "不是人脸模板或版本不支持 / not a face template, or a version this code does not read"
            )
        vector = np.frombuffer(data, dtype="<f4", offset=_HEADER.size).astype(np.float32)
        return cls(vector=vector, model=int(model))


@dataclass(frozen=True)
class NoFace:
    """No usable face: ``reason`` is a stable code (``no_face``, ``face_too_small``)."""

    reason: str


@dataclass(frozen=True)
class FoundFace:
    """The largest face of a picture, in the picture's own pixel coordinates."""

    box: tuple[int, int, int, int]  # left, top, width, height
    score: float
    landmarks: npt.NDArray[np.float64]  # 5×2: one eye's outer, inner corner; the other's; nose
    faces: int
    shape: Any  # dlib's full_object_detection, in the scaled picture
    rgb: npt.NDArray[np.uint8]  # the scaled picture the shape refers to


def _scaled_rgb(image: Image) -> tuple[npt.NDArray[np.uint8], float]:
    bgr = np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image)
    height, width = bgr.shape[:2]
    scale = min(1.0, _DETECT_SIDE / max(height, width))
    if scale < 1.0:
        bgr = np.asarray(cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8), scale


def find_face(image: Image) -> FoundFace | NoFace:
    """Detect the faces of a BGR picture and return the largest, with its five landmarks."""
    models = face_models()
    rgb, scale = _scaled_rgb(image)
    # Upsampling doubles the detector's reach to small faces at four times the cost: tried
    # only when the picture at its own size shows none.
    for upsample in (0, 1):
        boxes, scores, _kinds = models.detector.run(rgb, upsample, 0.0)
        candidates = [
            (b, s) for b, s in zip(boxes, scores, strict=True) if s >= MIN_DETECTION_SCORE
        ]
        if candidates:
            break
    else:
        return NoFace("no_face")
    box, score = max(candidates, key=lambda c: c[0].area())
    if min(box.width(), box.height()) < MIN_FACE_SIDE / (2 if upsample else 1):
        return NoFace("face_too_small")
    shape = models.landmarks(rgb, box)
    points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64) / scale
    return FoundFace(
        box=(
            round(box.left() / scale),
            round(box.top() / scale),
            round(box.width() / scale),
            round(box.height() / scale),
        ),
        score=float(score),
        landmarks=points,
        faces=len(candidates),
        shape=shape,
        rgb=rgb,
    )


def template_of(found: FoundFace) -> Template:
    """Align the found face (dlib's 150×150 chip, eyes level) and describe it."""
    models = face_models()
    chip = aligned_chip(found)
    vector = np.asarray(models.recogniser.compute_face_descriptor(chip), dtype=np.float32)
    if vector.shape != (DIMENSIONS,) or not math.isfinite(float(np.linalg.norm(vector))):
        raise ConfigError("the face recogniser returned a malformed descriptor")
    return Template(vector=vector, box=found.box)


def aligned_chip(found: FoundFace) -> npt.NDArray[np.uint8]:
    """The aligned face chip the recogniser reads: 150×150 RGB, rotated upright."""
    return np.asarray(dlib.get_face_chip(found.rgb, found.shape, size=150, padding=0.25))


def face_template(image: Image) -> Template | NoFace:
    """The template of the largest face of a BGR picture, or why there is none."""
    found = find_face(image)
    if isinstance(found, NoFace):
        return found
    return template_of(found)
