"""Reading a photo for a face check, refusing hostile files before the decoder sees them.

Only JPEG and PNG are accepted. The size of the picture is read from its header (PNG's IHDR, a
JPEG's SOF marker) and a picture larger than ``MAX_SIDE`` on a side or ``MAX_PIXELS`` in all is
refused *before* decoding: a few hundred bytes of PNG can claim 20000×20000 pixels and make a
decoder allocate gigabytes (a decompression bomb). A JPEG without its end marker (a truncated
upload) is refused too: OpenCV would decode it and fill the missing rows with grey, and a half-grey
face is not a picture anyone should be judged on.

The ID card's photo (the SAM reader's 1024-byte block) is in the "WLT" format, for which no open
decoder exists (``edge.drivers.sam.events``); it is refused here with a message saying so, and the
reference photo on file is used instead.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from muster.errors import ConfigError

__all__ = [
    "MAX_BYTES",
    "MAX_PIXELS",
    "MAX_SIDE",
    "FaceImageError",
    "decode_image",
    "image_size",
    "read_image",
]

MAX_BYTES: Final = 20 * 1024 * 1024
MAX_SIDE: Final = 8000
MAX_PIXELS: Final = 40_000_000

_PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC: Final = b"\xff\xd8\xff"
# SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
_SOF_MARKERS: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}

Image = npt.NDArray[np.uint8]


class FaceImageError(ConfigError):
    """A photo given for a face check cannot be used; the message says why and what to do."""


def _png_size(data: bytes) -> tuple[int, int]:
    # The IHDR chunk must come first: 8 bytes magic, 4 length, 4 type, then width and height.
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise FaceImageError(
            "PNG 文件头损坏 / the PNG header is damaged: give an intact PNG or JPEG"
        )
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # stand-alone markers
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        if length < 2:
            break
        pos += 2 + length
    raise FaceImageError(
        "JPEG 文件头损坏或不完整 / the JPEG header is damaged or cut short: "
        "give an intact JPEG or PNG"
    )


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height as the file's header claims them, without decoding a pixel."""
    if data.startswith(_PNG_MAGIC):
        return _png_size(data)
    if data.startswith(_JPEG_MAGIC):
        return _jpeg_size(data)
    if len(data) == 1024:
        raise FaceImageError(
            "这像是身份证芯片照片 (WLT 格式)，无法解码 / this looks like an ID card chip photo "
            "(WLT), which has no open decoder: use the reference photo on file (JPEG or PNG)"
        )
    raise FaceImageError(
        "不是 JPEG 或 PNG 图片 / not a JPEG or PNG picture: give a JPEG or PNG photo"
    )


def decode_image(data: bytes, *, what: str = "photo") -> Image:
    """Decode JPEG or PNG bytes into a BGR picture, after checking size, header and ending."""
    if not data:
        raise FaceImageError(
            f"{what}: 文件为空 / the file is empty (0 bytes): give a JPEG or PNG photo"
        )
    if len(data) > MAX_BYTES:
        raise FaceImageError(
            f"{what}: 文件过大 / the file is {len(data)} bytes, over the {MAX_BYTES}-byte limit: "
            "give a smaller photo"
        )
    try:
        width, height = image_size(data)
    except FaceImageError as exc:
        raise FaceImageError(f"{what}: {exc}") from None
    if width <= 0 or height <= 0:
        raise FaceImageError(
            f"{what}: 图片尺寸为零 / the picture claims a zero size ({width}×{height})"
        )
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise FaceImageError(
            f"{what}: 图片尺寸过大 / the picture claims {width}×{height} pixels, over the "
            f"{MAX_SIDE}-pixel side or {MAX_PIXELS}-pixel limit: give a smaller photo"
        )
    if data.startswith(_JPEG_MAGIC) and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise FaceImageError(
            f"{what}: JPEG 文件不完整 / the JPEG is cut short (no end marker): "
            "take or copy the photo again"
        )
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    # OpenCV turns a photo upright by its EXIF orientation, so a phone's portrait shot comes
    # out with width and height swapped: either way round is the picture the header described.
    if decoded is None or decoded.shape[:2] not in ((height, width), (width, height)):
        raise FaceImageError(
            f"{what}: 图片无法解码 / the picture cannot be decoded (damaged data): "
            "take or copy the photo again"
        )
    return np.ascontiguousarray(decoded, dtype=np.uint8)


def read_image(path: Path) -> Image:
    """Read and decode a photo file, refusing a missing, huge or non-image file by name."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise FaceImageError(f"{path}: 文件不存在 / no such file: check the path") from None
    except OSError as exc:
        raise FaceImageError(f"{path}: 无法读取 / cannot be read ({exc.strerror})") from None
    if not path.is_file():
        raise FaceImageError(f"{path}: 不是文件 / not a regular file: give a JPEG or PNG photo")
    if size > MAX_BYTES:
        raise FaceImageError(
            f"{path}: 文件过大 / the file is {size} bytes, over the {MAX_BYTES}-byte limit: "
            "give a smaller photo"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FaceImageError(f"{path}: 无法读取 / cannot be read ({exc.strerror})") from None
    return decode_image(data, what=str(path))
