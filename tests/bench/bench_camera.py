"""Benchmark: the photo pipeline per 640 x 480 frame, and the capture driver's idle cost.

Figures, all on one core (OpenCV's own thread pool is limited to one thread):

1. **Pipeline per frame**: ``VideoCapture.read()`` + the quality checks (face, eyes, exposure,
   sharpness) + the ID-photo crop + the capped JPEG encode, against a bare ``read()`` + OpenCV's
   stock Haar face detection (full frame, default parameters) measured in the same run. The
   target is live preview at 10 fps: at most 100 ms of one core per frame.
2. **Live preview through the driver**: ``CameraDriver.next_frame`` + the same pipeline in a
   worker thread, with the file paced at its 15 fps: process CPU time per previewed frame.
3. **Idle**: the driver open on the camera with nobody asking for frames; process CPU time
   over a few seconds as a share of one core.

Run it as ``python tests/bench/bench_camera.py [SECONDS]`` or ``pytest tests/bench -s``.
It prints figures and asserts nothing about time.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.drivers.camera import CameraDriver
from edge.photo import encode_jpeg_capped, portrait_photo
from edge.photo._geometry import HAAR_DIR
from edge.simulators.camera import Scene, write_video
from muster.clock import SystemClock
from muster.profiles import CameraProfile

TARGET_FPS = 10.0
FRAMES = 60


def _reader(path: Path) -> Callable[[], NDArray[np.uint8]]:
    """``VideoCapture.read()`` on the file, going round its end like a camera that never stops."""
    capture = cv2.VideoCapture(str(path))

    def read() -> NDArray[np.uint8]:
        ok, image = capture.read()
        if not ok:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = capture.read()
        assert ok and image is not None
        return np.asarray(image, dtype=np.uint8)

    return read


def _per_frame_ms(step: Callable[[], object], frames: int) -> list[float]:
    step()  # warm-up: cascade loading, first decode
    timings = []
    for _ in range(frames):
        started = time.perf_counter()
        step()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def bench_pipeline(path: Path, frames: int) -> dict[str, float]:
    stock = cv2.CascadeClassifier(str(HAAR_DIR / "haarcascade_frontalface_default.xml"))
    read_baseline = _reader(path)

    def baseline() -> object:
        gray = cv2.cvtColor(read_baseline(), cv2.COLOR_BGR2GRAY)
        faces = stock.detectMultiScale(gray)
        assert len(faces) >= 1
        return faces

    read_pipeline = _reader(path)

    def pipeline() -> object:
        image, report = portrait_photo(read_pipeline())
        assert report.passed, report.reasons
        return encode_jpeg_capped(image, 60_000)

    base = _per_frame_ms(baseline, frames)
    full = _per_frame_ms(pipeline, frames)
    return {
        "baseline_ms": statistics.median(base),
        "pipeline_ms": statistics.median(full),
        "pipeline_p90_ms": statistics.quantiles(full, n=10)[-1],
    }


async def _preview(path: Path, seconds: float) -> dict[str, float]:
    async with CameraDriver(CameraProfile(source=str(path)), clock=SystemClock()) as camera:
        await camera.wait_online(10)
        await camera.next_frame()
        cpu0, wall0, shown = time.process_time(), time.perf_counter(), 0
        while time.perf_counter() - wall0 < seconds:
            frame = await camera.next_frame()
            image, _ = await asyncio.to_thread(portrait_photo, frame.image)
            await asyncio.to_thread(encode_jpeg_capped, image, 60_000)
            shown += 1
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"preview_fps": shown / wall, "preview_cpu_ms": cpu / shown * 1000}


async def _idle(path: Path, seconds: float) -> dict[str, float]:
    async with CameraDriver(CameraProfile(source=str(path)), clock=SystemClock()) as camera:
        await camera.wait_online(10)
        await camera.next_frame()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"idle_cpu_percent": cpu / wall * 100}


def bench(seconds: float = 3.0, frames: int = FRAMES) -> dict[str, float]:
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "camera.avi"
        write_video(path, Scene(width=640, height=480, fps=15), seconds=2.0)
        result = bench_pipeline(path, frames)
        result |= asyncio.run(_preview(path, seconds))
        result |= asyncio.run(_idle(path, seconds))
    result["frames"] = frames
    result["seconds"] = seconds
    return result


def report(r: dict[str, float]) -> str:
    max_fps = 1000 / r["pipeline_ms"]
    verdict = "meets" if max_fps >= TARGET_FPS else "misses"
    return (
        f"photo pipeline at 640x480 on one core, {int(r['frames'])} frames:\n"
        f"  read + checks + ID crop + JPEG: median {r['pipeline_ms']:.1f} ms "
        f"(p90 {r['pipeline_p90_ms']:.1f} ms) = {max_fps:.0f} fps max, "
        f"{verdict} the {TARGET_FPS:g} fps live-preview target\n"
        f"  bare read + stock Haar face detection: median {r['baseline_ms']:.1f} ms\n"
        f"  ratio pipeline / baseline: {r['pipeline_ms'] / r['baseline_ms']:.2f}x\n"
        f"live preview through the driver (file paced at 15 fps), {r['seconds']:g} s: "
        f"{r['preview_fps']:.1f} fps, {r['preview_cpu_ms']:.1f} ms of CPU per frame\n"
        f"driver idle with the camera open, {r['seconds']:g} s: "
        f"{r['idle_cpu_percent']:.1f} % of one core"
    )


def test_bench_camera() -> None:
    """Prints the camera figures; benchmarks report figures, they do not gate on time."""
    print(report(bench()))


if __name__ == "__main__":
    print(report(bench(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)))
