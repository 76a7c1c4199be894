"""Comparing two face templates: the same person or not, with the score and the reasons.

The score is dlib's: the Euclidean distance between the two descriptors, lower is more alike.
The default threshold, 0.6, is the one the model was published with (99.38 % on the LFW
benchmark, dlib's release notes); a deployment may tighten it (fewer false accepts, more false
rejects), never loosen it without measuring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from muster.face.template import Template

__all__ = ["DEFAULT_THRESHOLD", "REASONS", "Verdict", "compare", "distance"]

DEFAULT_THRESHOLD: Final = 0.6

# Stable codes (for code and logs) and the text shown to a clerk (Chinese / English).
REASONS: Final[dict[str, str]] = {
    "same_person": "是同一人 / the faces are the same person",
    "different_person": "不是同一人 / the faces are not the same person",
    "near_threshold": "相似度接近阈值，建议人工核对 / the score is close to the threshold: a manual check is advised",
    "model_mismatch": "两个模板来自不同模型，无法比较 / the templates come from different models and cannot be compared",
    "no_face_reference": "参考照片中未找到人脸 / no usable face in the reference photo",
    "no_face_live": "现场照片中未找到人脸 / no usable face in the live photo",
    "face_too_small_reference": "参考照片中人脸太小 / the face in the reference photo is too small",
    "face_too_small_live": "现场照片中人脸太小 / the face in the live photo is too small",
    "several_faces_live": "现场照片中有多张人脸，使用了最大的 / several faces in the live photo: the largest was used",
    "not_live": "活体检测未通过 / the liveness challenge was not passed",
}
_NEAR: Final = 0.05


@dataclass(frozen=True)
class Verdict:
    """The outcome of one comparison; ``score`` is the distance, ``match`` is score <= threshold."""

    match: bool
    score: float
    threshold: float
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """The JSON form: the fields, the reasons' texts, and how to read the score."""
        return {
            "match": self.match,
            "score": round(self.score, 4),
            "threshold": self.threshold,
            "metric": "euclidean-distance (match when score <= threshold)",
            "reasons": list(self.reasons),
            "messages": [REASONS.get(r, r) for r in self.reasons],
        }


def distance(reference: Template, live: Template) -> float:
    """The Euclidean distance between two descriptors of the same model."""
    return float(np.linalg.norm(reference.vector - live.vector))


def compare(reference: Template, live: Template, threshold: float = DEFAULT_THRESHOLD) -> Verdict:
    """Whether ``live`` shows the person of ``reference``."""
    if reference.model != live.model:
        return Verdict(False, float("inf"), threshold, ("model_mismatch",))
    score = distance(reference, live)
    match = score <= threshold
    reasons = ["same_person" if match else "different_person"]
    if abs(score - threshold) < _NEAR:
        reasons.append("near_threshold")
    return Verdict(match, score, threshold, tuple(reasons))
