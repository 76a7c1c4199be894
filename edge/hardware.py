"""The device's collection hardware under the daemon: the SAM ID-card reader and the camera.

Each runs through its own driver; this module only follows their events, keeps the state the
heartbeat reports, hands card reads to the collection workflow, and turns faults into telemetry
events. A missing or failing device is reported, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

import structlog

from edge.drivers.camera import CameraDriver, CameraLost, CameraRestored, CapturedPhoto
from edge.drivers.sam import driver as sam_driver
from edge.drivers.sam.events import CardRead, CardRemoved, ReaderFault, ReaderReady
from muster.clock import Clock
from muster.errors import ConfigError
from muster.profiles import FirmwareProfile
from muster.v1 import device_pb2

log = structlog.get_logger(__name__)

Component = device_pb2.ComponentState
Emit = Callable[[device_pb2.Event.Kind.ValueType, str, dict[str, str]], None]


class Hardware:
    def __init__(
        self,
        profile: FirmwareProfile,
        emit: Emit,
        *,
        clock: Clock,
        card_queue: int = 32,
    ) -> None:
        self._profile = profile
        self._emit = emit
        self._clock = clock
        self.cards: asyncio.Queue[CardRead] = asyncio.Queue(card_queue)
        self.reader_state: Component.ValueType = (
            Component.COMPONENT_STATE_DISABLED
            if profile.reader.kind == "none"
            else Component.COMPONENT_STATE_ABSENT
        )
        self.last_card_read: datetime | None = None
        self.camera: CameraDriver | None = None
        # The card lying on the reader now (None once removed), for the console's "read card".
        self.card_on_reader: CardRead | None = None
        self._card_arrived = asyncio.Event()

    @property
    def camera_state(self) -> Component.ValueType:
        if self._profile.camera.kind == "none":
            return Component.COMPONENT_STATE_DISABLED
        if self.camera is None:
            return Component.COMPONENT_STATE_ABSENT
        return {
            "online": Component.COMPONENT_STATE_OK,
            "lost": Component.COMPONENT_STATE_FAULT,
        }.get(self.camera.status, Component.COMPONENT_STATE_ABSENT)

    @property
    def has_reader(self) -> bool:
        return self._profile.reader.kind == "sam"

    async def run_reader(self) -> None:
        if not self.has_reader:
            return
        async for event in sam_driver.watch(self._profile.reader, clock=self._clock):
            match event:
                case ReaderReady():
                    self.reader_state = Component.COMPONENT_STATE_OK
                    log.info("reader ready", port=event.port, sam_id=event.sam_id)
                case CardRead():
                    self.reader_state = Component.COMPONENT_STATE_OK
                    self.last_card_read = self._clock.now()
                    self.card_on_reader = event
                    self._card_arrived.set()
                    self._card_arrived = asyncio.Event()
                    if self.cards.full():
                        log.warning("card reads are not being consumed; dropping the oldest")
                        self.cards.get_nowait()
                    self.cards.put_nowait(event)
                case CardRemoved():
                    self.card_on_reader = None
                case ReaderFault():
                    self.reader_state = Component.COMPONENT_STATE_FAULT
                    self._emit(
                        device_pb2.Event.KIND_READER_FAULT,
                        event.message,
                        {
                            "port": event.port,
                            "fault": event.kind.value,
                            "status": str(event.status or ""),
                        },
                    )

    async def run_camera(self) -> None:
        if self._profile.camera.kind != "opencv":
            return
        self.camera = CameraDriver(self._profile.camera, clock=self._clock)
        try:
            await self.camera.start()
            async for event in self.camera.events():
                match event:
                    case CameraLost():
                        self._emit(
                            device_pb2.Event.KIND_CAMERA_LOST,
                            f"摄像头不可用：{event.reason}",
                            {"source": event.source},
                        )
                    case CameraRestored():
                        log.info(
                            "camera restored",
                            source=event.source,
                            down_for_s=round(event.down_for_s, 1),
                        )
                    case _:
                        pass
        finally:
            with contextlib.suppress(Exception):
                await self.camera.aclose()

    async def capture_photo(self, *, document: bool = False) -> CapturedPhoto:
        """A photo and its quality report for the collection workflow."""
        if self.camera is None:
            raise ConfigError("本机未配置摄像头 (this device's profile has no camera)")
        return await self.camera.capture_photo(document=document)

    async def read_card(self, timeout_s: float) -> CardRead | None:
        """The card on the reader now, or the next one presented within ``timeout_s``."""
        if self.card_on_reader is not None:
            return self.card_on_reader
        arrived = self._card_arrived
        try:
            async with asyncio.timeout(timeout_s):
                await arrived.wait()
        except TimeoutError:
            return None
        return self.card_on_reader
