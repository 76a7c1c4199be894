"""The face models, loaded from the installed ``face_recognition_models`` package.

The models ship inside a registry package, so nothing is downloaded at run time: dlib's 5-point
landmark predictor (for alignment) and its ResNet face recogniser, both by Davis King, released
into the public domain / CC0 (the package's LICENSE). Detection is dlib's own HOG frontal-face
detector, which is built into dlib and needs no file. dlib comes from the ``dlib-bin`` wheel.

The files are found through the distribution's file list (``importlib.metadata``) rather than
by importing ``face_recognition_models``: its ``__init__`` imports ``pkg_resources``, which
current setuptools no longer provides, and the files are all we need.

Why not OpenCV's YuNet + SFace: no package on the registry ships their ``.onnx`` files (the
wrappers that name them download them on first use), and a run-time download is not allowed.
"""

from __future__ import annotations

import functools
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import dlib  # type: ignore[import-untyped]

from muster.errors import ConfigError

__all__ = ["MODEL_ID", "MODEL_NAME", "FaceModels", "face_models", "model_file"]

MODEL_ID: Final = 1
MODEL_NAME: Final = "dlib-resnet-v1+shape5+hog"

_DISTRIBUTION: Final = "face_recognition_models"
_LANDMARKS: Final = "shape_predictor_5_face_landmarks.dat"
_RECOGNISER: Final = "dlib_face_recognition_resnet_model_v1.dat"


def model_file(name: str) -> Path:
    """The path of one model file inside the installed ``face_recognition_models``."""
    try:
        dist = importlib.metadata.distribution(_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            "人脸模型未安装 / the face models are not installed: "
            "pip install face_recognition_models (the project's dependencies list it)"
        ) from None
    path = Path(str(dist.locate_file(f"face_recognition_models/models/{name}")))
    if not path.is_file():
        raise ConfigError(f"人脸模型文件缺失 / face model file missing: {path}; reinstall it")
    return path


@dataclass(frozen=True)
class FaceModels:
    """The three dlib objects every face check uses (loaded once per process)."""

    detector: Any
    landmarks: Any
    recogniser: Any


@functools.cache
def face_models() -> FaceModels:
    """Load the models once; about 0.3 s and 30 MB, so callers share one copy."""
    return FaceModels(
        detector=dlib.get_frontal_face_detector(),
        landmarks=dlib.shape_predictor(str(model_file(_LANDMARKS))),
        recogniser=dlib.face_recognition_model_v1(str(model_file(_RECOGNISER))),
    )
