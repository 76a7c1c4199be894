"""A simulated camera: generated frames of a person or a document, written as a video file.

The camera driver opens the file exactly as it opens a real camera (``cv2.VideoCapture``), so a
simulated camera exercises the same code path. The person is scikit-image's ``astronaut`` photo
(shipped with the package, no download) composed into a head-and-shoulders frame with a little
sway and sensor noise. Faults are scripted by time:

==============  ==============================================================================
``no-face``     the person has stepped away
``blur``        the lens is out of focus
``dark``        the lights are off
``bright``      a lamp shines straight into the lens
``far``         the person stands too far back
``near``        the person leans into the lens
``off-centre``  the person stands to one side
``tilt``        the person's head is tilted
``two-faces``   a second person is in view
``unplug``      the camera disappears: the file is moved away, then put back
==============  ==============================================================================

:class:`MjpegServer` serves the same scene as an HTTP MJPEG stream, a network camera whose
stream can be cut and restored.

A fault is written ``KIND``, ``KIND@START`` or ``KIND@START+DURATION`` (seconds). Frame faults
count time within the video; ``unplug`` counts time after the video is written, because a file
cannot hold an unplugged cable: :func:`play_unplugs` performs it on the written file.

Over 400 lines because it simulates one device end to end (V4L2-like controls, frames, faults);
splitting it would scatter one camera's behaviour across files.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from muster.errors import ConfigError

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "MjpegServer",
    "Scene",
    "document_card",
    "frames",
    "place_document",
    "play_unplugs",
    "replug",
    "unplug",
    "write_video",
]

Image = NDArray[np.uint8]

FAULT_KINDS: Final = (
    "no-face",
    "blur",
    "dark",
    "bright",
    "far",
    "near",
    "off-centre",
    "tilt",
    "two-faces",
    "unplug",
)
UNPLUGGED_SUFFIX: Final = ".unplugged"

# Where the face is in ``skimage.data.astronaut()`` (512 x 512): the box a frontal-face
# detector draws around it, measured once by eye on the image.
_ASTRONAUT_FACE_CX: Final = 224.5
_ASTRONAUT_FACE_CY: Final = 113.5
_ASTRONAUT_FACE_W: Final = 95.0
_WALL_BGR: Final = (228, 232, 236)


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    start: float = 0.0
    duration: float | None = None  # None: until the end

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """``KIND``, ``KIND@START`` or ``KIND@START+DURATION``."""
        kind, _, timing = spec.strip().partition("@")
        if kind not in FAULT_KINDS:
            raise ConfigError(f"unknown camera fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        start_text, plus, duration_text = timing.partition("+")
        try:
            start = float(start_text) if start_text else 0.0
            duration = float(duration_text) if plus else None
        except ValueError:
            raise ConfigError(
                f"camera fault {spec!r}: write KIND, KIND@START or KIND@START+DURATION"
            ) from None
        if start < 0 or (duration is not None and duration <= 0):
            raise ConfigError(f"camera fault {spec!r}: START must be >= 0 and DURATION > 0")
        return cls(kind, start, duration)

    def active(self, t: float) -> bool:
        return t >= self.start and (self.duration is None or t < self.start + self.duration)


@dataclass(frozen=True, slots=True)
class Scene:
    """What the simulated camera looks at."""

    width: int = 640
    height: int = 480
    fps: float = 15.0
    subject: Literal["portrait", "document"] = "portrait"
    faults: tuple[Fault, ...] = ()
    seed: int = 0

    def active_faults(self, t: float) -> frozenset[str]:
        return frozenset(f.kind for f in self.faults if f.kind != "unplug" and f.active(t))

    def frame(self, index: int) -> Image:
        """Frame ``index`` of the scene, deterministic for a given seed."""
        t = index / self.fps
        faults = self.active_faults(t)
        rng = np.random.default_rng((self.seed, index))
        if self.subject == "document":
            image = _document_scene(self.width, self.height, t)
        else:
            image = _portrait_scene(self.width, self.height, t, faults)
        return _apply_optics(image, faults, rng)


@cache
def _astronaut() -> Image:
    from skimage import data  # scikit-image is only needed when simulating

    load: Callable[[], NDArray[np.uint8]] = data.astronaut
    rgb = np.asarray(load(), dtype=np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _person(
    width: int, height: int, *, face_w: float, cx: float, face_top: float, angle: float
) -> Image:
    """The astronaut placed so her face box is ``face_w`` wide at ``(cx, face_top)``."""
    src = _astronaut()
    scale = face_w / _ASTRONAUT_FACE_W
    matrix = cv2.getRotationMatrix2D((_ASTRONAUT_FACE_CX, _ASTRONAUT_FACE_CY), angle, scale)
    matrix[0, 2] += cx - _ASTRONAUT_FACE_CX
    matrix[1, 2] += face_top + face_w / 2 - _ASTRONAUT_FACE_CY
    return np.asarray(
        cv2.warpAffine(
            src,
            matrix,
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=_WALL_BGR,
        ),
        dtype=np.uint8,
    )


def _wall(width: int, height: int) -> Image:
    shade = np.linspace(0.92, 1.0, height, dtype=np.float32)[:, None, None]
    wall = np.asarray(_WALL_BGR, dtype=np.float32)[None, None, :] * shade
    return np.ascontiguousarray(np.broadcast_to(wall, (height, width, 3)).astype(np.uint8))


def _portrait_scene(width: int, height: int, t: float, faults: frozenset[str]) -> Image:
    if "no-face" in faults:
        return _wall(width, height)
    sway = 4.0 * math.sin(2 * math.pi * t / 3.0) * width / 640
    face_w = height * (0.16 if "far" in faults else 0.6 if "near" in faults else 0.375)
    cx = width / 2 + sway + (0.3 * width if "off-centre" in faults else 0.0)
    face_top = height * 0.21
    angle = 18.0 if "tilt" in faults else 0.0
    if "two-faces" in faults:
        face_w = height * 0.3
        left = _person(width, height, face_w=face_w, cx=width / 4, face_top=face_top, angle=0)
        right = _person(width, height, face_w=face_w, cx=3 * width / 4, face_top=face_top, angle=0)
        half = width // 2
        return np.ascontiguousarray(np.hstack([left[:, :half], right[:, half:]]))
    return _person(width, height, face_w=face_w, cx=cx, face_top=face_top, angle=angle)


def _apply_optics(image: Image, faults: frozenset[str], rng: np.random.Generator) -> Image:
    # Optics first, then the sensor: blur and light change the scene, noise is added after.
    out = image.astype(np.float32)
    if "blur" in faults:
        out = np.asarray(cv2.GaussianBlur(out, (0, 0), 3.0), dtype=np.float32)
    if "dark" in faults:
        out *= 0.12
    if "bright" in faults:
        out = out * 1.8 + 90.0
    out += rng.normal(0.0, 2.0, out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def document_card(width: int = 856, height: int = 540, *, seed: int = 0) -> Image:
    """A synthetic ID-1 card: an off-white face with a frame, ruled lines, text and a photo box."""
    rng = np.random.default_rng(seed)
    card = np.full((height, width, 3), (222, 232, 238), dtype=np.uint8)
    s = width / 856
    cv2.rectangle(
        card,
        (round(20 * s), round(20 * s)),
        (width - round(20 * s), height - round(20 * s)),
        (90, 70, 40),
        max(1, round(3 * s)),
    )
    cv2.rectangle(
        card,
        (round(600 * s), round(90 * s)),
        (round(800 * s), round(350 * s)),
        (120, 110, 100),
        max(1, round(2 * s)),
    )
    font = cv2.FONT_HERSHEY_SIMPLEX
    labels = ["NAME", "SEX", "BORN", "ADDRESS", "", "NUMBER"]
    for row, label in enumerate(labels):
        y = round((110 + row * 62) * s)
        if label:
            cv2.putText(
                card,
                label,
                (round(50 * s), y),
                font,
                0.9 * s,
                (40, 40, 40),
                max(1, round(2 * s)),
                cv2.LINE_AA,
            )
        digits = "".join(str(d) for d in rng.integers(0, 10, size=10 if label != "NUMBER" else 18))
        x = round((230 if label != "NUMBER" else 250) * s)
        cv2.putText(
            card, digits, (x, y), font, 0.9 * s, (20, 20, 20), max(1, round(2 * s)), cv2.LINE_AA
        )
        cv2.line(
            card,
            (round(50 * s), y + round(14 * s)),
            (round(570 * s), y + round(14 * s)),
            (160, 150, 140),
            1,
        )
    return card


def place_document(
    card: Image,
    corners: Sequence[tuple[float, float]],
    size: tuple[int, int] = (640, 480),
    background: tuple[int, int, int] = (70, 60, 55),
) -> Image:
    """``card`` warped so its corners (tl, tr, br, bl) land at ``corners`` on a dark desk."""
    h, w = card.shape[:2]
    src = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)
    dst = np.array(corners, dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    desk = np.full((size[1], size[0], 3), background, dtype=np.uint8)
    return np.asarray(
        cv2.warpPerspective(
            card, matrix, size, dst=desk, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_TRANSPARENT
        ),
        dtype=np.uint8,
    )


def _document_scene(width: int, height: int, t: float) -> Image:
    # A card lying on a desk, seen from a camera a little off the vertical; it drifts slightly.
    drift = 3.0 * math.sin(2 * math.pi * t / 4.0)
    sx, sy = width / 640, height / 480
    corners = [
        (150 * sx + drift, 105 * sy),
        (505 * sx + drift, 125 * sy),
        (530 * sx + drift, 365 * sy),
        (118 * sx + drift, 350 * sy),
    ]
    return place_document(document_card(seed=1), corners, (width, height))


def frames(scene: Scene, seconds: float) -> Iterator[Image]:
    """The scene's frames for ``seconds`` of video."""
    for index in range(max(1, round(seconds * scene.fps))):
        yield scene.frame(index)


def write_video(path: Path, scene: Scene, seconds: float) -> int:
    """Write ``seconds`` of the scene to ``path`` as an MJPG ``.avi``; returns the frame count.

    The file appears whole or not at all, so a driver watching the path never opens half of it.
    """
    if path.suffix.lower() != ".avi":
        raise ConfigError(f"{path}: the simulated camera writes MJPG .avi files")
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.avi")
    writer = cv2.VideoWriter(
        str(tmp), cv2.VideoWriter.fourcc(*"MJPG"), scene.fps, (scene.width, scene.height)
    )
    if not writer.isOpened():
        raise ConfigError(f"cannot write a video to {path}: OpenCV could not open the writer")
    count = 0
    try:
        for image in frames(scene, seconds):
            writer.write(image)
            count += 1
    finally:
        writer.release()
    tmp.replace(path)
    return count


def unplug(path: Path) -> Path:
    """Make the camera at ``path`` disappear, as a device node does when its cable is pulled."""
    aside = path.with_name(path.name + UNPLUGGED_SUFFIX)
    path.replace(aside)
    return aside


def replug(path: Path) -> None:
    """Put back a camera that :func:`unplug` took away."""
    path.with_name(path.name + UNPLUGGED_SUFFIX).replace(path)


def play_unplugs(
    path: Path,
    faults: Sequence[Fault],
    *,
    sleep: Callable[[float], None] = time.sleep,
    say: Callable[[str], None] = print,
    default_duration: float = 3.0,
) -> None:
    """Perform the scripted ``unplug`` faults on the written file, in time order."""
    now = 0.0
    for fault in sorted((f for f in faults if f.kind == "unplug"), key=lambda f: f.start):
        duration = default_duration if fault.duration is None else fault.duration
        if fault.start < now:
            raise ConfigError(f"unplug at {fault.start}s overlaps the previous one")
        sleep(fault.start - now)
        unplug(path)
        say(f"camera {path} unplugged for {duration:g}s")
        sleep(duration)
        replug(path)
        say(f"camera {path} plugged back in")
        now = fault.start + duration


class MjpegServer:
    """A network camera: the scene as an HTTP MJPEG stream (``multipart/x-mixed-replace``).

    ``http://127.0.0.1:PORT/video.mjpg`` opens with ``cv2.VideoCapture`` like an IP camera.
    :meth:`close` drops the connections and stops listening, as a camera losing power does;
    a new server on the same port brings it back.
    """

    BOUNDARY: Final = b"frame"

    def __init__(self, scene: Scene, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.scene = scene
        self._stop = threading.Event()
        self._listener = socket.create_server((host, port), reuse_port=False)
        self._listener.settimeout(0.1)
        self.host, self.port = self._listener.getsockname()[:2]
        # Encoded once: a second of frames is enough to loop, and serving costs no CPU.
        count = max(1, round(scene.fps))
        self._jpegs = [_jpeg(scene.frame(i)) for i in range(count)]
        self._threads: list[threading.Thread] = []
        accept = threading.Thread(target=self._accept, name="mjpeg-accept", daemon=True)
        self._threads.append(accept)
        accept.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/video.mjpg"

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self._listener.close()

    def __enter__(self) -> MjpegServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        period = 1.0 / self.scene.fps
        with conn:
            try:
                conn.settimeout(2.0)
                conn.recv(4096)  # the request; every path serves the stream
                conn.sendall(
                    b"HTTP/1.0 200 OK\r\nCache-Control: no-cache\r\n"
                    b"Content-Type: multipart/x-mixed-replace; boundary="
                    + self.BOUNDARY
                    + b"\r\n\r\n"
                )
                index = 0
                while not self._stop.wait(period):
                    jpeg = self._jpegs[index % len(self._jpegs)]
                    index += 1
                    conn.sendall(
                        b"--" + self.BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n"
                        b"Content-Length: " + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n"
                    )
            except OSError:
                return  # the client went away


def _jpeg(image: Image) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ConfigError("OpenCV could not encode a simulated frame")
    return buf.tobytes()
