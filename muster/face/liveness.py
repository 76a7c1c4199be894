"""A simple liveness challenge over a few live frames: blink, or turn the head.

**This is a weak check.** It tells a still photo held in front of the camera from a person who
moves as asked, and nothing more: a video replayed on a phone, a printed photo bent or turned,
or a mask passes it. It raises the cost of the laziest attack (holding up the ID photo); it is
no presentation-attack detection in the ISO 30107 sense, and a failed or doubtful check goes to
the clerk's manual check, never to an automatic refusal alone.

Two signals, measured on frames of the same face (every frame must show a face, and the same
person as the first frame, so frames cannot be taken from different people):

* **Head turn**: dlib's 5-point landmarks give both eyes' corners and the bottom of the nose.
  ``yaw`` is how far the nose sits from the midpoint between the eyes, in inter-eye distances;
  turning the head moves the nose sideways relative to the eyes (a photo moved or tilted as a
  whole does not). A turn is seen when yaw spans at least ``TURN_MIN`` across the frames.
* **Blink**: five points are too coarse to see an eyelid, so the eye regions themselves are
  compared: each eye's patch (centred on the eye, sized by the inter-eye distance, brightness
  normalised) is compared with the first frame's, and so is a cheek patch as a control for
  lighting and motion. A blink is an eye change of at least ``BLINK_MIN`` that is at least
  ``BLINK_RATIO`` times the cheek's change, followed by a later frame where the eyes are back
  (change at most half of the peak): closing and reopening, not a change of scene.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from muster.face.compare import DEFAULT_THRESHOLD, distance
from muster.face.images import Image
from muster.face.template import FoundFace, NoFace, find_face, template_of

__all__ = [
    "BLINK_MIN",
    "BLINK_RATIO",
    "TURN_MIN",
    "LivenessVerdict",
    "liveness",
]

TURN_MIN: Final = 0.12
BLINK_MIN: Final = 0.35
BLINK_RATIO: Final = 2.0


@dataclass(frozen=True)
class LivenessVerdict:
    """``live`` when one challenge was seen; ``challenge`` names it; ``reasons`` are codes."""

    live: bool
    challenge: str | None
    turn: float
    blink: float
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """The JSON form."""
        return {
            "live": self.live,
            "challenge": self.challenge,
            "turn": round(self.turn, 4),
            "blink": round(self.blink, 4),
            "reasons": list(self.reasons),
        }


def _eyes(found: FoundFace) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    points = found.landmarks
    return points[0:2].mean(axis=0), points[2:4].mean(axis=0)


def _yaw(found: FoundFace) -> float:
    eye_a, eye_b = _eyes(found)
    span = float(np.linalg.norm(eye_a - eye_b))
    axis = (eye_b - eye_a) / span
    # The nose's offset from the eyes' midpoint, along the line through the eyes: a head tilted
    # sideways (roll) moves both together and leaves this unchanged.
    return float(np.dot(found.landmarks[4] - (eye_a + eye_b) / 2, axis)) / span


def _crop(
    gray: npt.NDArray[np.float32], centre: npt.NDArray[np.float64], half_w: float, half_h: float
) -> npt.NDArray[np.float32]:
    x, y = float(centre[0]), float(centre[1])
    x0, y0 = max(0, round(x - half_w)), max(0, round(y - half_h))
    x1, y1 = min(gray.shape[1], round(x + half_w)), min(gray.shape[0], round(y + half_h))
    return gray[y0:y1, x0:x1]


def _gray(image: Image) -> npt.NDArray[np.float32]:
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    # Blurred, so that noise and a pixel of resampling are not read as change.
    return np.asarray(cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.0), dtype=np.float32)


def _centres(found: FoundFace) -> tuple[npt.NDArray[np.float64], ...]:
    eye_a, eye_b = _eyes(found)
    # The cheek below the first eye, level with the nose: skin that does not move in a blink.
    cheek = np.array([eye_a[0], found.landmarks[4][1]], dtype=np.float64)
    return eye_a, eye_b, cheek


def _residual(
    first: npt.NDArray[np.float32],
    later: npt.NDArray[np.float32],
    at_first: npt.NDArray[np.float64],
    at_later: npt.NDArray[np.float64],
    span: float,
    contrast: float,
) -> float:
    """How much a region changed, after the best shift within a small window.

    The landmarks move by a pixel or two between frames of a still face; comparing patches at
    the landmarks would read that jitter as change. So the first frame's patch is searched for
    in the later frame around the later landmark, and what is left after the best fit counts.
    """
    half_w, half_h = 0.35 * span, 0.175 * span
    margin = 0.15 * span
    template = _crop(first, at_first, half_w, half_h)
    window = _crop(later, at_later, half_w + margin, half_h + margin)
    if (
        template.shape[0] < 4
        or template.shape[1] < 4
        or window.shape[0] < template.shape[0]
        or window.shape[1] < template.shape[1]
    ):
        return 0.0
    fit = cv2.matchTemplate(window, template, cv2.TM_SQDIFF)
    return float(np.sqrt(max(0.0, float(fit.min())) / template.size)) / contrast


def _contrast(gray: npt.NDArray[np.float32], found: FoundFace) -> float:
    left, top, width, height = found.box
    face = gray[max(0, top) : top + height, max(0, left) : left + width]
    # The whole face's contrast, not each patch's: smooth skin is not amplified into change.
    return float(face.std()) + 1.0 if face.size else 1.0


def liveness(frames: Sequence[Image], *, same_person: float = DEFAULT_THRESHOLD) -> LivenessVerdict:
    """Whether the frames show a blink or a head turn of one and the same face."""
    if len(frames) < 2:
        return LivenessVerdict(False, None, 0.0, 0.0, ("too_few_frames",))
    found: list[FoundFace] = []
    for frame in frames:
        face = find_face(frame)
        if isinstance(face, NoFace):
            return LivenessVerdict(False, None, 0.0, 0.0, ("no_face_in_frame",))
        found.append(face)
    first = template_of(found[0])
    if any(distance(first, template_of(f)) > same_person for f in found[1:]):
        return LivenessVerdict(False, None, 0.0, 0.0, ("frames_show_different_people",))

    yaws = [_yaw(f) for f in found]
    turn = max(yaws) - min(yaws)

    grays = [_gray(frame) for frame in frames]
    span = float(np.linalg.norm(np.subtract(*_eyes(found[0]))))
    contrast = _contrast(grays[0], found[0])
    base = _centres(found[0])
    eye_changes, cheek_changes = [0.0], [0.0]
    for gray, face in zip(grays[1:], found[1:], strict=True):
        here = _centres(face)
        eyes = [_residual(grays[0], gray, base[k], here[k], span, contrast) for k in (0, 1)]
        eye_changes.append(sum(eyes) / 2)
        cheek_changes.append(_residual(grays[0], gray, base[2], here[2], span, contrast))
    blink = 0.0
    for i in range(1, len(frames) - 1):
        peak = eye_changes[i]
        if peak < BLINK_MIN or peak < BLINK_RATIO * cheek_changes[i]:
            continue
        if any(eye_changes[j] <= peak / 2 for j in range(i + 1, len(frames))):
            blink = max(blink, peak)

    if turn >= TURN_MIN:
        return LivenessVerdict(True, "turn", turn, blink, ("head_turn_seen",))
    if blink > 0.0:
        return LivenessVerdict(True, "blink", turn, blink, ("blink_seen",))
    return LivenessVerdict(False, None, turn, blink, ("no_movement",))
