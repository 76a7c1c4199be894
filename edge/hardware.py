"""The device's collection hardware under the daemon: the SAM ID-card reader, the PC/SC
readers (social security cards) and the camera.

Each runs through its own driver; this module only follows their events, keeps the state the
heartbeat reports, hands each identity read to the one :class:`~edge.card_reads.CardHandoff`
the daemon gives it (none: the read is dropped at once), and turns faults into telemetry
events. A missing or failing device is reported, never fatal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime

import structlog

from edge.card_reads import CardHandoff, IdentityRead, from_sam, from_social_security
from edge.drivers import pcsc
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
    ) -> None:
        self._profile = profile
        self._emit = emit
        self._clock = clock
        # Where identity reads go: set by the daemon to its one consumer's handoff, or left None.
        self.handoff: CardHandoff | None = None
        self.reader_state: Component.ValueType = (
            Component.COMPONENT_STATE_DISABLED
            if profile.reader.kind == "none"
            else Component.COMPONENT_STATE_ABSENT
        )
        self.last_card_read: datetime | None = None
        self.camera: CameraDriver | None = None

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
        """The serial SAM ID-card reader."""
        return self._profile.reader.kind == "sam"

    @property
    def has_pcsc(self) -> bool:
        return self._profile.pcsc.enabled

    @property
    def reads_cards(self) -> bool:
        """Whether any reader here yields identity reads."""
        return self.has_reader or self.has_pcsc

    def _hand_on(self, read: IdentityRead) -> None:
        self.last_card_read = self._clock.now()
        if self.handoff is None:
            log.debug("card read with no one to take it: dropped", source=read.source)
            return
        self.handoff.offer(read)

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
                    self._hand_on(from_sam(event))
                case CardRemoved():
                    pass
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

    async def run_pcsc(self) -> None:
        """Follow the PC/SC readers: a social security card inserted is an identity read. Bank
        cards are read by the driver but carry nothing the forms take; they are not handed on."""
        if not self.has_pcsc:
            return
        async for event in pcsc.watch(self._profile.pcsc, sleep=self._clock.sleep):
            match event:
                case pcsc.ReaderAttached():
                    log.info("pcsc reader attached", reader=event.reader)
                case pcsc.ReaderDetached():
                    log.info("pcsc reader detached", reader=event.reader)
                case pcsc.SocialSecurityCardRead():
                    self._hand_on(from_social_security(event))
                case pcsc.PcscFault():
                    self._emit(
                        device_pb2.Event.KIND_READER_FAULT,
                        event.message,
                        {"pcsc_reader": event.reader or "", "fault": "pcsc"},
                    )
                case _:
                    pass

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
