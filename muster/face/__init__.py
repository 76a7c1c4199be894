"""Face verification, offline, shared by the device and the centre.

From a photo to a template (``face_template``), two templates to a verdict (``compare``), a few
live frames to a liveness verdict (``liveness``); photos are read by ``read_image`` /
``decode_image``, which refuse hostile files before decoding. The models ship inside the
``face_recognition_models`` package (dlib); nothing is downloaded at run time.
"""

from __future__ import annotations

from muster.face.compare import DEFAULT_THRESHOLD, REASONS, Verdict, compare, distance
from muster.face.images import FaceImageError, decode_image, read_image
from muster.face.liveness import LivenessVerdict, liveness
from muster.face.models import MODEL_ID, MODEL_NAME
from muster.face.template import NoFace, Template, face_template

__all__ = [
    "DEFAULT_THRESHOLD",
    "MODEL_ID",
    "MODEL_NAME",
    "REASONS",
    "FaceImageError",
    "LivenessVerdict",
    "NoFace",
    "Template",
    "Verdict",
    "compare",
    "decode_image",
    "distance",
    "face_template",
    "liveness",
    "read_image",
]
