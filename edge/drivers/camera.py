"""The camera driver: OpenCV capture on a reader thread, photos for the collection workflow.

The source comes from the device profile (``camera.source``): a device index (``"0"``), a device
path (``/dev/video0``), a video file, or a stream URL (``rtsp://``, ``http://``). One reader
thread per camera owns the ``cv2.VideoCapture``; it grabs every frame so a live camera's buffer
never goes stale and a vanished camera is noticed even when nobody is taking a photo, but it
decodes a frame only when someone is waiting for one. A file or stream is paced at its own frame
rate, so a video file behaves like a camera and not like a fire hose.

When the camera disappears (cable pulled, file removed, stream closed) the thread reports
:class:`CameraLost`, keeps trying to reopen it with a growing delay, and reports
:class:`CameraRestored` when frames flow again. Nothing here raises into the daemon's supervisor
for that: the camera is a device that comes and goes.

The collection workflow calls :meth:`CameraDriver.capture_photo`, which returns the best frame's
JPEG and its :class:`~edge.photo.QualityReport`. The checks and the JPEG encoding run in a worker
thread, so the event loop never blocks on OpenCV.

Errors, as they sit in :mod:`muster.errors`' tree::

    TransportError
    ├── BrokenError
    │   └── CameraLostError    no frame: the camera vanished, stalled or cannot be opened
    └── ClosedError
        └── CameraClosedError  the driver was closed and then asked for a frame

Over 400 lines because the camera adapter owns one device's whole life (open, controls, frames,
reconnect, faults); its pure parts (photo quality) already live in ``edge.photo``.
"""

from __future__ import annotations

import asyncio
import enum
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import cv2
import numpy as np
import structlog
from numpy.typing import NDArray

from edge.photo import QualityReport, Thresholds, encode_jpeg_capped, portrait_photo
from edge.photo.document import MIN_LEGIBLE_LONG_SIDE, document_photo
from edge.photo.quality import DEFAULT_THRESHOLDS
from muster.clock import Clock
from muster.errors import BrokenError, ClosedError, ConfigError
from muster.profiles import CameraProfile

__all__ = [
    "CameraClosedError",
    "CameraDriver",
    "CameraEvent",
    "CameraLost",
    "CameraLostError",
    "CameraRestored",
    "CameraSource",
    "CapturedPhoto",
    "Frame",
    "FramePacer",
    "PhotoTaken",
    "capture_photo",
]

log = structlog.get_logger(__name__)

Image = NDArray[np.uint8]

# How often the reader thread checks that a file or device node still exists. An open file
# keeps reading after it is unlinked, so without this a removed file would never look unplugged.
_STAT_INTERVAL_S: Final = 0.25
# Files and streams that report no usable rate are paced at this one.
_DEFAULT_FPS: Final = 25.0
_STREAM_TIMEOUT_MS: Final = 5000


class CameraLostError(BrokenError):
    """No frame could be had: the camera vanished, stalled or cannot be opened."""


class CameraClosedError(ClosedError):
    """The camera driver was closed and then used."""


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PhotoTaken:
    """A photo was captured for the workflow; ``passed`` says whether it met the checks."""

    source: str
    mode: Literal["portrait", "document"]
    passed: bool
    reasons: tuple[str, ...]
    jpeg_bytes: int
    at: datetime


@dataclass(frozen=True, slots=True)
class CameraLost:
    """The camera stopped delivering frames, or could not be opened at start."""

    source: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CameraRestored:
    """Frames flow again after a :class:`CameraLost`."""

    source: str
    down_for_s: float
    at: datetime


CameraEvent = PhotoTaken | CameraLost | CameraRestored


# --- values -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CameraSource:
    """Where frames come from, parsed from the profile's ``camera.source``."""

    kind: Literal["index", "device", "file", "stream"]
    location: str

    @classmethod
    def parse(cls, text: str) -> CameraSource:
        location = text.strip()
        if not location:
            raise ConfigError("camera.source is empty: give a device index, path, file or URL")
        if location.isdigit():
            return cls("index", location)
        if location.startswith("file://"):
            return cls("file", location.removeprefix("file://"))
        if "://" in location:
            return cls("stream", location)
        if location.startswith("/dev/"):
            return cls("device", location)
        return cls("file", location)

    @property
    def path(self) -> Path | None:
        """The filesystem entry whose disappearance means the camera was unplugged."""
        return Path(self.location) if self.kind in ("device", "file") else None

    @property
    def paced(self) -> bool:
        """Whether frames must be held back to the source's rate (a live camera paces itself)."""
        return self.kind in ("file", "stream")

    def __str__(self) -> str:
        return self.location


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: BGR pixels, its number since the driver started, when it was read."""

    image: Image
    seq: int
    at: float  # the driver's monotonic clock


@dataclass(frozen=True, slots=True)
class CapturedPhoto:
    """What the workflow stores: the photo as JPEG and the verdict on the frame it came from.

    For a portrait the JPEG is the 358 x 441 ID photo (the centre of the frame when no face was
    found, so the operator sees what the camera saw); for a document it is the rectified page.
    """

    jpeg: bytes
    report: QualityReport
    width: int
    height: int
    jpeg_quality: int
    frame_seq: int
    taken_at: datetime

    @property
    def passed(self) -> bool:
        return self.report.passed


class FramePacer:
    """When to hand out the next frame of a file or stream read at ``fps``. Pure: time is given."""

    def __init__(self, fps: float) -> None:
        if not fps > 0:
            raise ConfigError(f"a frame rate must be positive, not {fps}")
        self.period = 1.0 / fps
        self._next: float | None = None

    def delay(self, now: float) -> float:
        """Seconds to wait before the next frame; schedules the one after it."""
        # Fallen more than a frame behind (a slow consumer, a stalled stream): start a new
        # schedule rather than rush out a burst of frames to catch up.
        if self._next is None or now - self._next > self.period:
            self._next = now
        wait = max(0.0, self._next - now)
        self._next += self.period
        return wait

    def reset(self) -> None:
        self._next = None


class _State(enum.Enum):
    STARTING = "starting"
    ONLINE = "online"
    LOST = "lost"


class _Unavailable(Exception):
    """Inside the reader thread: the camera cannot be used right now, for the reason given."""


_END_OF_FILE: Final = "end of file"


# --- the driver ---------------------------------------------------------------------------------


class CameraDriver:
    """One camera, read on its own thread, offered to asyncio code.

    Use as ``async with CameraDriver(profile, clock=clock) as camera:``; ``camera.events()`` yields
    :data:`CameraEvent` values until the driver is closed.
    """

    def __init__(
        self,
        profile: CameraProfile,
        *,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        clock: Clock,
        retry_initial_s: float = 0.25,
        retry_max_s: float = 5.0,
        frame_timeout_s: float = 3.0,
        event_queue_size: int = 64,
    ) -> None:
        if profile.kind != "opencv":
            raise ConfigError("this device's profile has camera.kind: none; it has no camera")
        self.profile = profile
        self.source = CameraSource.parse(profile.source)
        self.thresholds = thresholds
        # The reader thread asks for monotonic time (frame pacing, outages) and wall time
        # (when a photo was taken); both come from the process's one clock.
        self._clock = clock.monotonic
        self._now = clock.now
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._frame_timeout_s = frame_timeout_s
        self._event_queue_size = event_queue_size

        # Shared between the reader thread and the event loop; guarded by _lock.
        self._lock = threading.Lock()
        self._state = _State.STARTING
        self._lost_reason = "the camera has not delivered a frame yet"
        self._lost_at: float | None = None
        self._waiters: list[asyncio.Future[Frame]] = []
        self._seq = 0
        self._stop = threading.Event()
        self._want = threading.Event()  # someone awaits a decoded frame

        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: asyncio.Queue[CameraEvent | None] | None = None
        self._online: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- lifecycle --

    async def start(self) -> None:
        """Start the reader thread. Returns at once: a missing camera is reported, not raised."""
        if self._closed:
            raise CameraClosedError(f"camera {self.source} was closed")
        if self._thread is not None:
            return
        # OpenCV logs its own warning on every failed reopen, every few seconds for as long as
        # a camera is away; the driver reports the outage itself, once.
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        self._loop = asyncio.get_running_loop()
        self._events = asyncio.Queue(self._event_queue_size)
        self._online = asyncio.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"camera-reader {self.source}", daemon=True
        )
        self._thread.start()

    async def aclose(self) -> None:
        """Stop the reader thread and release the camera; pending waits fail as closed."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            # A stream read can block up to its read timeout; do not hold the loop meanwhile.
            await asyncio.to_thread(self._thread.join, _STREAM_TIMEOUT_MS / 1000 + 1)
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_exception(CameraClosedError(f"camera {self.source} was closed"))
        if self._events is not None:
            while self._events.full():
                self._events.get_nowait()
            self._events.put_nowait(None)

    async def __aenter__(self) -> CameraDriver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- what the daemon reads --

    @property
    def status(self) -> Literal["starting", "online", "lost"]:
        """For the heartbeat: frames flowing, not yet, or lost (see :attr:`lost_reason`)."""
        with self._lock:
            return self._state.value

    @property
    def lost_reason(self) -> str | None:
        with self._lock:
            return self._lost_reason if self._state is not _State.ONLINE else None

    async def events(self) -> AsyncIterator[CameraEvent]:
        """The driver's events, in order, until it is closed. Meant for one consumer: two
        would each see only part of them."""
        queue = self._require_started()[1]
        while True:
            event = await queue.get()
            if event is None:
                return
            yield event

    async def wait_online(self, timeout_s: float) -> None:
        """Return once frames flow; :class:`CameraLostError` if they do not in ``timeout_s``."""
        online = self._require_started()[2]
        try:
            await asyncio.wait_for(online.wait(), timeout_s)
        except TimeoutError:
            raise CameraLostError(self._lost_message(timeout_s)) from None

    async def next_frame(self, timeout_s: float | None = None) -> Frame:
        """The next frame read after this call.

        Waits through a short outage; raises :class:`CameraLostError` if no frame comes within
        ``timeout_s`` (the driver's ``frame_timeout_s`` by default).
        """
        loop = self._require_started()[0]
        if self._closed:
            raise CameraClosedError(f"camera {self.source} was closed")
        limit = self._frame_timeout_s if timeout_s is None else timeout_s
        fut: asyncio.Future[Frame] = loop.create_future()
        with self._lock:
            self._waiters.append(fut)
            self._want.set()
        try:
            return await asyncio.wait_for(fut, limit)
        except TimeoutError:
            raise CameraLostError(self._lost_message(limit)) from None
        finally:
            with self._lock:
                if fut in self._waiters:
                    self._waiters.remove(fut)

    async def capture_photo(
        self, *, document: bool = False, timeout_s: float = 3.0
    ) -> CapturedPhoto:
        """Take a photo for the record: the first frame that passes every check.

        Frames are tried one after another for up to ``timeout_s`` seconds; if none passes, the
        last one is returned with the reasons it failed, for the operator to act on. Raises
        :class:`CameraLostError` if the camera delivers no frame at all.
        """
        deadline = self._clock() + timeout_s
        while True:
            frame = await self.next_frame()
            photo = await asyncio.to_thread(self._develop, frame, document)
            if photo.passed or self._clock() >= deadline:
                break
        self._emit(
            PhotoTaken(
                source=str(self.source),
                mode=photo.report.mode,
                passed=photo.passed,
                reasons=tuple(r.value for r in photo.report.reasons),
                jpeg_bytes=len(photo.jpeg),
                at=photo.taken_at,
            )
        )
        return photo

    # -- helpers on the loop side --

    def _require_started(
        self,
    ) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue[CameraEvent | None], asyncio.Event]:
        if self._loop is None or self._events is None or self._online is None:
            if self._closed:
                raise CameraClosedError(f"camera {self.source} was closed")
            raise ConfigError("the camera driver is not started; use 'async with CameraDriver'")
        return self._loop, self._events, self._online

    def _lost_message(self, timeout: float) -> str:
        with self._lock:
            reason = self._lost_reason if self._state is not _State.ONLINE else "frames stalled"
        return f"no frame from camera {self.source} within {timeout:g}s: {reason}"

    def _develop(self, frame: Frame, document: bool) -> CapturedPhoto:
        if document:
            image, report = document_photo(frame.image, self.thresholds)
            encoded = encode_jpeg_capped(
                image, self.profile.jpeg_max_bytes, min_long_side=MIN_LEGIBLE_LONG_SIDE
            )
        else:
            image, report = portrait_photo(frame.image, self.thresholds)
            encoded = encode_jpeg_capped(image, self.profile.jpeg_max_bytes)
        return CapturedPhoto(
            jpeg=encoded.data,
            report=report,
            width=encoded.width,
            height=encoded.height,
            jpeg_quality=encoded.quality,
            frame_seq=frame.seq,
            taken_at=self._now(),
        )

    def _emit(self, event: CameraEvent) -> None:
        """Queue an event; called on the loop. A full queue drops the event with a warning."""
        if self._events is None:
            return
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("camera.event_dropped", source=str(self.source), event=type(event).__name__)

    def _set_online(self, online: bool) -> None:
        if self._online is not None:
            if online:
                self._online.set()
            else:
                self._online.clear()

    # -- the reader thread --

    def _call_loop(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            # The loop has been closed under us; nobody is left to tell.
            self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._read_until_stopped()
            except Exception as exc:
                # A bug or an OpenCV surprise must not leave the camera silently dead: report
                # it like an unplug and start over, as the daemon's supervisor would.
                log.exception("camera.reader_failed", source=str(self.source))
                self._went_down(f"the camera reader failed: {exc!r}")
                self._stop.wait(self._retry_max_s)

    def _read_until_stopped(self) -> None:
        delay = self._retry_initial_s
        pacer = FramePacer(_DEFAULT_FPS)
        while not self._stop.is_set():
            try:
                capture, fps = self._open()
            except _Unavailable as exc:
                self._went_down(str(exc))
                self._stop.wait(delay)
                delay = min(delay * 2, self._retry_max_s)
                continue
            if abs(pacer.period - 1.0 / fps) > 1e-9:
                pacer = FramePacer(fps)
            try:
                outcome, delivered = self._pump(capture, pacer)
            finally:
                capture.release()
            if delivered:
                delay = self._retry_initial_s
            if outcome is None or outcome == _END_OF_FILE:
                continue
            pacer.reset()
            self._went_down(outcome)
            self._stop.wait(delay)
            delay = min(delay * 2, self._retry_max_s)

    def _open(self) -> tuple[cv2.VideoCapture, float]:
        source = self.source
        path = source.path
        if path is not None and not path.exists():
            raise _Unavailable(f"{path} does not exist")
        try:
            if source.kind == "index":
                capture = cv2.VideoCapture(int(source.location))
            elif source.kind == "stream":
                capture = cv2.VideoCapture(
                    source.location,
                    cv2.CAP_FFMPEG,
                    [
                        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                        _STREAM_TIMEOUT_MS,
                        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                        _STREAM_TIMEOUT_MS,
                    ],
                )
            else:
                capture = cv2.VideoCapture(source.location)
        except cv2.error as exc:
            raise _Unavailable(f"OpenCV cannot open {source}: {exc}") from exc
        if not capture.isOpened():
            capture.release()
            raise _Unavailable(f"OpenCV cannot open {source}")
        if not source.paced:
            # A live camera is asked for the profile's format and size; what it grants is
            # logged, not refused, because the checks work on any size.
            p = self.profile
            if len(p.fourcc) == 4:
                capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*p.fourcc))
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, p.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, p.height)
            # One buffered frame: a photo shows the person now, not a second ago.
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            size = (
                int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            )
            if size != (p.width, p.height):
                log.warning(
                    "camera.size_differs",
                    source=str(source),
                    asked=f"{p.width}x{p.height}",
                    got=f"{size[0]}x{size[1]}",
                )
            return capture, _DEFAULT_FPS
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        return capture, fps if 1.0 <= fps <= 240.0 else _DEFAULT_FPS

    def _pump(self, capture: cv2.VideoCapture, pacer: FramePacer) -> tuple[str | None, int]:
        """Read until stopped (``None``), the end of a file, or a failure (its reason)."""
        source = self.source
        path = source.path
        next_stat = self._clock() + _STAT_INTERVAL_S
        delivered = 0
        while not self._stop.is_set():
            if path is not None and self._clock() >= next_stat:
                next_stat = self._clock() + _STAT_INTERVAL_S
                if not path.exists():
                    return f"{path} disappeared", delivered
            if source.paced:
                wait = pacer.delay(self._clock())
                if wait > 0 and self._stop.wait(wait):
                    return None, delivered
            try:
                grabbed = capture.grab()
            except cv2.error as exc:
                return f"reading {source} failed: {exc}", delivered
            if not grabbed:
                if source.kind == "file" and delivered:
                    return _END_OF_FILE, delivered
                return f"{source} stopped delivering frames", delivered
            delivered += 1
            self._came_up()
            if self._want.is_set():
                try:
                    ok, image = capture.retrieve()
                except cv2.error as exc:
                    return f"decoding a frame from {source} failed: {exc}", delivered
                if not ok or image is None:
                    return f"{source} delivered a frame that cannot be decoded", delivered
                self._publish(np.asarray(image, dtype=np.uint8))
        return None, delivered

    def _publish(self, image: Image) -> None:
        with self._lock:
            self._seq += 1
            frame = Frame(image, self._seq, self._clock())
            waiters, self._waiters = self._waiters, []
            self._want.clear()
        self._call_loop(_deliver, waiters, frame)

    def _came_up(self) -> None:
        with self._lock:
            if self._state is _State.ONLINE:
                return
            previous, lost_at = self._state, self._lost_at
            self._state, self._lost_at = _State.ONLINE, None
        self._call_loop(self._set_online, True)
        if previous is _State.LOST and lost_at is not None:
            down_for = self._clock() - lost_at
            log.info("camera.restored", source=str(self.source), down_for_s=round(down_for, 3))
            self._call_loop(self._emit, CameraRestored(str(self.source), down_for, self._now()))

    def _went_down(self, reason: str) -> None:
        with self._lock:
            self._lost_reason = reason
            if self._state is _State.LOST:
                return
            self._state, self._lost_at = _State.LOST, self._clock()
        log.warning("camera.lost", source=str(self.source), reason=reason)
        self._call_loop(self._set_online, False)
        self._call_loop(self._emit, CameraLost(str(self.source), reason, self._now()))


def _deliver(waiters: list[asyncio.Future[Frame]], frame: Frame) -> None:
    for fut in waiters:
        if not fut.done():
            fut.set_result(frame)


async def capture_photo(
    profile: CameraProfile,
    *,
    document: bool = False,
    timeout_s: float = 3.0,
    open_timeout_s: float = 5.0,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    clock: Clock,
) -> CapturedPhoto:
    """Open the profile's camera, take one photo and close it: for one-shot checks and tools.

    The daemon keeps a :class:`CameraDriver` open instead and calls its ``capture_photo``.
    """
    async with CameraDriver(profile, thresholds=thresholds, clock=clock) as camera:
        await camera.wait_online(open_timeout_s)
        return await camera.capture_photo(document=document, timeout_s=timeout_s)
