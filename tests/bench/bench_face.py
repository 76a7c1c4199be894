"""Benchmark: face verification on one core, and its accuracy on the photos the project ships.

Figures:

1. **Time per verification**: decoding the live JPEG + ``face_template`` (detect, align,
   describe) + ``compare`` against a reference template made beforehand, as the device does it,
   per shipped face photo, on one core (the process is pinned to one CPU and OpenCV's thread pool is
   limited to one thread). Against a baseline measured in the same run on
   the same photos: decoding the JPEG and a plain ``cv2.resize`` to the 150×150 face-chip size.
2. **Accuracy on the shipped photos** (``tests/fixtures/faces``): every genuine pair (photos of the
   same person) and impostor pair (different people) at the default threshold: false rejects and
   false accepts, and the distances, so the margin to the threshold shows.

Run it as ``python tests/bench/bench_face.py [REPEAT]`` (each photo is verified REPEAT times;
default 5). It prints figures and asserts nothing about time.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from itertools import combinations
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import cv2
from rich.progress import track

from muster.face import (
    DEFAULT_THRESHOLD,
    MODEL_NAME,
    Template,
    compare,
    decode_image,
    face_template,
)

FACES = Path(__file__).resolve().parents[1] / "fixtures" / "faces"


def _person(path: Path) -> str:
    return path.name.split("_", 1)[0]


def _template(data: bytes) -> Template:
    template = face_template(decode_image(data))
    assert isinstance(template, Template)
    return template


def main(repeat: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cv2.setNumThreads(1)
    photos = sorted(p for p in FACES.glob("*.jpg") if not p.name.startswith("no_face"))
    blobs = {p: p.read_bytes() for p in photos}
    templates = {p: _template(blobs[p]) for p in photos}  # also loads the models once
    reference = templates[photos[0]]

    verify_s: list[float] = []
    baseline_s: list[float] = []
    for _ in track(range(repeat), description="verifying", transient=True):
        for path in photos:
            start = time.perf_counter()
            image = decode_image(blobs[path])
            cv2.resize(image, (150, 150), interpolation=cv2.INTER_AREA)
            baseline_s.append(time.perf_counter() - start)

            start = time.perf_counter()
            compare(reference, _template(blobs[path]))
            verify_s.append(time.perf_counter() - start)

    verify_ms = statistics.median(verify_s) * 1000
    baseline_ms = statistics.median(baseline_s) * 1000
    print(f"model: {MODEL_NAME}; one core; {len(photos)} photos × {repeat}")
    print(
        f"time per verification (decode + template + compare): median {verify_ms:.1f} ms, "
        f"max {max(verify_s) * 1000:.1f} ms"
    )
    print(f"baseline (decode + cv2.resize to 150x150): median {baseline_ms:.2f} ms")
    print(f"ratio verification / baseline: {verify_ms / baseline_ms:.0f}x")

    genuine: list[float] = []
    impostor: list[float] = []
    for a, b in combinations(photos, 2):
        score = compare(templates[a], templates[b]).score
        (genuine if _person(a) == _person(b) else impostor).append(score)
    false_rejects = sum(score > DEFAULT_THRESHOLD for score in genuine)
    false_accepts = sum(score <= DEFAULT_THRESHOLD for score in impostor)
    print(f"threshold {DEFAULT_THRESHOLD} (Euclidean distance; match when at or below)")
    print(
        f"genuine pairs: {len(genuine)}, false rejects: {false_rejects}; "
        f"distances {min(genuine):.3f}..{max(genuine):.3f}"
    )
    print(
        f"impostor pairs: {len(impostor)}, false accepts: {false_accepts}; "
        f"distances {min(impostor):.3f}..{max(impostor):.3f}"
    )
    margin = min(min(impostor) - DEFAULT_THRESHOLD, DEFAULT_THRESHOLD - max(genuine))
    print(f"smallest margin to the threshold: {margin:.3f}")
    print(f"template size: {len(reference.to_bytes())} bytes")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
