"""Reading the enrolment QR code on the device: from a photo of the code sheet, or from the
device's own camera through the daemon's camera driver. The payload's rules are
:mod:`muster.enrolment_codes`' (:func:`parse_ticket`); this module only finds the symbol.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np
import zxingcpp
from numpy.typing import NDArray

from edge.drivers.camera import CameraDriver, CameraLostError
from muster.clock import Clock
from muster.enrolment_codes import EnrolmentTicket, parse_ticket
from muster.errors import ConfigError
from muster.profiles import CameraProfile

__all__ = ["MAX_IMAGE_BYTES", "read_qr_camera", "read_qr_image", "ticket_in_image"]

# A phone photo is a few MB; a bigger file is not a photo of a code sheet.
MAX_IMAGE_BYTES = 30 * 2**20
# Decoding a frame takes a few ms; more than this many pixels is not a camera frame.
_MAX_PIXELS = 40_000_000

# In zxing-cpp 3 the QR family includes Micro QR (which segno picks for short payloads).
_FORMATS = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


def ticket_in_image(image: NDArray[np.uint8]) -> EnrolmentTicket | None:
    """The muster ticket in an image, None when it shows no QR code; :class:`ConfigError` when
    it shows only codes that are not muster tickets (the first one's fault is told)."""
    found = zxingcpp.read_barcodes(image, formats=_FORMATS)
    if not found:
        return None
    failure: ConfigError | None = None
    for symbol in found:
        try:
            return parse_ticket(bytes(symbol.bytes))
        except ConfigError as exc:
            failure = failure or exc
    assert failure is not None
    raise failure


def read_qr_image(path: Path) -> EnrolmentTicket:
    """The ticket in a photo or scan of the enrolment QR code (PNG, JPEG, ...)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigError(f"无法读取二维码图片 {path}：{exc.strerror or exc}") from None
    if size > MAX_IMAGE_BYTES:
        raise ConfigError(
            f"二维码图片 {path} 太大（{size // 2**20} MB）：请用不超过 "
            f"{MAX_IMAGE_BYTES // 2**20} MB 的照片或截图"
        )
    data = np.frombuffer(path.read_bytes(), np.uint8)
    decoded = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if decoded is None:
        raise ConfigError(f"{path} 不是可识别的图片（PNG、JPEG 等）：请重新拍照或截图")
    image: NDArray[np.uint8] = np.asarray(decoded, dtype=np.uint8)
    if image.shape[0] * image.shape[1] > _MAX_PIXELS:
        raise ConfigError(f"二维码图片 {path} 像素过多：请缩小后重试")
    ticket = ticket_in_image(image)
    if ticket is None:
        raise ConfigError(f"图片 {path} 中没有找到二维码：请让二维码完整、清晰、正对镜头后重新拍照")
    return ticket


def read_qr_camera(profile: CameraProfile, *, clock: Clock, timeout_s: float) -> EnrolmentTicket:
    """The ticket held in front of the device's camera, read through the daemon's camera
    driver frame by frame for up to ``timeout_s`` seconds."""
    return asyncio.run(_scan(profile, clock, timeout_s))


async def _scan(profile: CameraProfile, clock: Clock, timeout_s: float) -> EnrolmentTicket:
    deadline = clock.monotonic() + timeout_s
    failure: ConfigError | None = None
    try:
        async with CameraDriver(profile, clock=clock) as camera:
            await camera.wait_online(timeout_s)
            while clock.monotonic() < deadline:
                frame = await camera.next_frame()
                try:
                    ticket = await asyncio.to_thread(ticket_in_image, frame.image)
                except ConfigError as exc:
                    failure = exc  # someone else's QR code may be in view; keep looking
                    continue
                if ticket is not None:
                    return ticket
    except CameraLostError as exc:
        raise ConfigError(
            f"摄像头 {profile.source} 没有画面：{exc}；检查摄像头连接，或改用 --qr-image 照片"
        ) from None
    if failure is not None:
        raise failure
    raise ConfigError(
        f"{timeout_s:g} 秒内摄像头没有看到注册二维码：把二维码正对摄像头、距离 20–40 厘米后重试"
    )
