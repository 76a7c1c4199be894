"""The camera driver on real sources: a video file and an HTTP MJPEG stream, through unplugs."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.drivers.camera import (
    CameraClosedError,
    CameraDriver,
    CameraEvent,
    CameraLost,
    CameraLostError,
    CameraRestored,
    CameraSource,
    FramePacer,
    PhotoTaken,
)
from edge.photo import ID_PHOTO_HEIGHT, ID_PHOTO_WIDTH, Reason
from edge.simulators.camera import Fault, MjpegServer, Scene, replug, unplug, write_video
from muster.clock import SystemClock
from muster.errors import BrokenError, ClosedError, ConfigError
from muster.profiles import CameraProfile

# Generous: the machine is shared, and a wait only lasts this long when something is wrong.
WAIT_S = 10.0


@pytest.fixture(scope="module")
def good_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("camera") / "good.avi"
    write_video(path, Scene(fps=15), seconds=1.0)
    return path


def status_of(camera: CameraDriver) -> str:
    return camera.status


def profile_for(source: str | Path, **overrides: object) -> CameraProfile:
    return CameraProfile(source=str(source), **overrides)  # type: ignore[arg-type]


class EventLog:
    """Collects a driver's events on a task, so a test can wait for the next one of a kind."""

    def __init__(self, camera: CameraDriver) -> None:
        self.events: list[CameraEvent] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._collect(camera.events()))

    async def _collect(self, events: AsyncIterator[CameraEvent]) -> None:
        async for event in events:
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def wait_for(self, kind: type, count: int = 1) -> list[CameraEvent]:
        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(
                    lambda: sum(isinstance(e, kind) for e in self.events) >= count
                )

        await asyncio.wait_for(enough(), WAIT_S)
        return [e for e in self.events if isinstance(e, kind)]

    async def finished(self) -> None:
        await asyncio.wait_for(self._task, WAIT_S)


def test_pacer_spaces_frames_at_the_rate_in_virtual_time() -> None:
    """Frames of a 10 fps file are due 0.1 s apart, whatever time reading them took."""
    pacer = FramePacer(10.0)
    assert pacer.delay(100.0) == 0.0  # the first frame is due at once
    assert pacer.delay(100.03) == pytest.approx(0.07)  # read took 30 ms: wait the rest
    assert pacer.delay(100.2) == pytest.approx(0.0)  # late, but within a frame: no wait
    assert pacer.delay(100.21) == pytest.approx(0.09)


def test_pacer_restarts_rather_than_bursting_after_a_stall() -> None:
    """After falling seconds behind, the pacer does not rush out the missed frames."""
    pacer = FramePacer(10.0)
    pacer.delay(0.0)
    assert pacer.delay(5.0) == 0.0
    assert pacer.delay(5.0) == pytest.approx(0.1)
    with pytest.raises(ConfigError):
        FramePacer(0.0)


@pytest.mark.parametrize(
    ("text", "kind", "location"),
    [
        ("0", "index", "0"),
        (" 2 ", "index", "2"),
        ("/dev/video0", "device", "/dev/video0"),
        ("/var/lib/muster/cam.avi", "file", "/var/lib/muster/cam.avi"),
        ("file:///tmp/cam.avi", "file", "/tmp/cam.avi"),
        ("rtsp://10.0.0.5/stream1", "stream", "rtsp://10.0.0.5/stream1"),
        ("http://127.0.0.1:8080/video.mjpg", "stream", "http://127.0.0.1:8080/video.mjpg"),
    ],
)
def test_profile_sources_are_told_apart(text: str, kind: str, location: str) -> None:
    """An index, a device path, a file and a stream URL each select their way of opening."""
    source = CameraSource.parse(text)
    assert (source.kind, source.location) == (kind, location)
    assert source.paced == (kind in ("file", "stream"))


def test_a_profile_without_a_camera_is_refused() -> None:
    """``camera.kind: none`` (the simulator profile) cannot be opened as a camera."""
    with pytest.raises(ConfigError, match="no camera"):
        CameraDriver(CameraProfile(kind="none"), clock=SystemClock())
    with pytest.raises(ConfigError, match="empty"):
        CameraSource.parse("  ")


async def test_a_video_file_works_as_a_camera(good_video: Path) -> None:
    """Frames come from the file with rising numbers, past its end (it loops), as BGR images."""
    async with CameraDriver(profile_for(good_video), clock=SystemClock()) as camera:
        await camera.wait_online(WAIT_S)
        assert camera.status == "online"
        seqs = []
        # 20 frames from a 15-frame file: the driver goes round the end without a fault.
        for _ in range(20):
            frame = await camera.next_frame(WAIT_S)
            assert frame.image.shape == (480, 640, 3)
            assert frame.image.dtype == np.uint8
            seqs.append(frame.seq)
        assert seqs == sorted(seqs) and len(set(seqs)) == 20
        assert camera.lost_reason is None


async def test_capture_photo_returns_a_passing_id_photo_and_reports_it(good_video: Path) -> None:
    """The workflow's call gives the ID photo as JPEG within the cap, its report, and an event."""
    profile = profile_for(good_video, jpeg_max_bytes=25_000)
    async with CameraDriver(profile, clock=SystemClock()) as camera:
        log = EventLog(camera)
        photo = await camera.capture_photo(timeout_s=WAIT_S)
        assert photo.passed, photo.report.reasons
        assert len(photo.jpeg) <= 25_000
        image = cv2.imdecode(np.frombuffer(photo.jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        assert image.shape == (ID_PHOTO_HEIGHT, ID_PHOTO_WIDTH, 3)
        assert (photo.width, photo.height) == (ID_PHOTO_WIDTH, ID_PHOTO_HEIGHT)
        (taken,) = await log.wait_for(PhotoTaken)
    assert isinstance(taken, PhotoTaken)
    assert taken.passed and taken.mode == "portrait" and taken.jpeg_bytes == len(photo.jpeg)
    await log.finished()


async def test_a_failing_camera_returns_the_last_try_with_its_reasons(tmp_path: Path) -> None:
    """When no frame passes within the time allowed, the photo comes back with the reasons."""
    path = tmp_path / "blur.avi"
    write_video(path, Scene(fps=15, faults=(Fault("blur"),)), seconds=0.5)
    async with CameraDriver(profile_for(path), clock=SystemClock()) as camera:
        photo = await camera.capture_photo(timeout_s=0.3)
    assert not photo.passed
    assert photo.report.reasons == (Reason.BLURRED,)
    assert len(photo.jpeg) > 0


async def test_unplugged_file_is_lost_and_comes_back(good_video: Path, tmp_path: Path) -> None:
    """Removing the file reports CameraLost and fails frame waits as broken; putting it back
    reports CameraRestored and frames flow again, all without restarting the driver."""
    path = tmp_path / "cam.avi"
    await asyncio.to_thread(shutil.copyfile, good_video, path)
    async with CameraDriver(profile_for(path), retry_initial_s=0.05, clock=SystemClock()) as camera:
        log = EventLog(camera)
        await camera.next_frame(WAIT_S)

        unplug(path)
        (lost,) = await log.wait_for(CameraLost)
        assert isinstance(lost, CameraLost)
        assert str(path) in lost.reason and lost.source == str(path)
        assert status_of(camera) == "lost"
        with pytest.raises(CameraLostError) as info:
            await camera.next_frame(0.2)
        assert isinstance(info.value, BrokenError)
        assert "disappeared" in str(info.value) or "does not exist" in str(info.value)

        replug(path)
        (restored,) = await log.wait_for(CameraRestored)
        assert isinstance(restored, CameraRestored)
        assert restored.down_for_s > 0
        frame = await camera.next_frame(WAIT_S)
        assert frame.image.shape == (480, 640, 3)
        assert status_of(camera) == "online"
        # One outage, one pair of events, however many times reopening failed meanwhile.
        kinds = [type(e) for e in log.events]
        assert kinds == [CameraLost, CameraRestored]


async def test_a_camera_missing_at_start_is_reported_then_found(
    good_video: Path, tmp_path: Path
) -> None:
    """The driver starts without its camera (the daemon keeps running), says so, and picks the
    camera up when it appears."""
    path = tmp_path / "later.avi"
    async with CameraDriver(
        profile_for(path), retry_initial_s=0.05, retry_max_s=0.2, clock=SystemClock()
    ) as camera:
        log = EventLog(camera)
        (lost,) = await log.wait_for(CameraLost)
        assert isinstance(lost, CameraLost) and "does not exist" in lost.reason
        with pytest.raises(CameraLostError):
            await camera.wait_online(0.1)
        await asyncio.to_thread(shutil.copyfile, good_video, path)
        await log.wait_for(CameraRestored)
        await camera.wait_online(WAIT_S)


async def test_closed_driver_refuses_frames_and_ends_its_events(good_video: Path) -> None:
    """After close, a frame request is a ClosedError (we closed it), and events() ends."""
    camera = CameraDriver(profile_for(good_video), clock=SystemClock())
    await camera.start()
    log = EventLog(camera)
    pending = asyncio.create_task(camera.next_frame(WAIT_S))
    await asyncio.sleep(0)
    await camera.aclose()
    await log.finished()
    # A request that was waiting either got its frame in time or failed as closed.
    with contextlib.suppress(CameraClosedError):
        await pending
    with pytest.raises(CameraClosedError) as info:
        await camera.next_frame(1.0)
    assert isinstance(info.value, ClosedError)
    await camera.aclose()  # closing twice is harmless


async def test_stream_closed_and_reopened() -> None:
    """A network camera whose stream is cut is lost; when it serves again, it is restored."""
    scene = Scene(fps=15)
    server = MjpegServer(scene)
    port = server.port
    profile = profile_for(server.url)
    try:
        async with CameraDriver(
            profile, retry_initial_s=0.05, retry_max_s=0.2, clock=SystemClock()
        ) as camera:
            log = EventLog(camera)
            first = await camera.next_frame(WAIT_S)
            assert first.image.shape == (480, 640, 3)

            server.close()
            await log.wait_for(CameraLost)
            with pytest.raises(CameraLostError):
                await camera.next_frame(0.2)

            server = MjpegServer(scene, port=port)
            await log.wait_for(CameraRestored)
            photo = await camera.capture_photo(timeout_s=WAIT_S)
            assert photo.passed, photo.report.reasons
    finally:
        server.close()
