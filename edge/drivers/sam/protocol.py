"""The SAM ID-card reader protocol (GA 467 family), sans-I/O.

This module has no serial, socket or clock code at all: it turns commands into bytes and bytes
into replies, and nothing else. The serial driver and the simulator pump bytes through it; the
tests feed it scripted chunks. The byte layouts follow ``protocols/idcard-sam.md``::

    command: AA AA AA 96 69 | LEN(2, BE) | CMD PARA | [data] | CHK
    reply:   AA AA AA 96 69 | LEN(2, BE) | SW1 SW2 SW3 | [data] | CHK

``LEN`` counts every byte after itself including ``CHK``; ``CHK`` is the XOR of the bytes from
the first ``LEN`` byte up to the byte before it. Both directions share the framing, so one
:class:`FrameDecoder` reassembles either; :class:`ReplyDecoder` (host side) and
:class:`CommandDecoder` (simulator side) give the frames their meaning.

Over 400 lines because it is the whole SAM frame protocol of ``protocols/``, sans-I/O: framing,
checksums, commands and the card text/photo layout read best as one module beside that text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from edge.drivers.sam.errors import (
    CardAuthError,
    CardReadError,
    ChecksumError,
    LengthError,
    NoCardError,
    SamFaultError,
    SelectError,
    StatusError,
)

PREAMBLE: Final = b"\xaa\xaa\xaa\x96\x69"
_HEADER_LEN: Final = len(PREAMBLE) + 2

# The longest frame the protocol defines is the read with a full fingerprint block:
# SW(3) + three lengths(6) + text(256) + photo(1024) + fingerprint(1024) + CHK(1).
MAX_LEN: Final = 0x090A
MIN_REPLY_LEN: Final = 4  # SW1 SW2 SW3 CHK
MIN_COMMAND_LEN: Final = 3  # CMD PARA CHK

TEXT_LEN: Final = 256
PHOTO_LEN: Final = 1024
FINGERPRINT_LENS: Final = (1024, 512, 0)
SAM_ID_LEN: Final = 16
SELECT_DATA_LEN: Final = 8


class Status(enum.IntEnum):
    """The ``SW3`` status byte of a reply."""

    SUCCESS = 0x90
    CARD_FOUND = 0x9F
    NO_CARD = 0x80
    SELECT_FAILED = 0x81
    READ_FAILED = 0x41
    CHECKSUM_ERROR = 0x10
    LENGTH_ERROR = 0x11
    UNKNOWN_COMMAND = 0x21
    NOT_PERMITTED = 0x23
    PARAMETER_ERROR = 0x24
    CARD_AUTH_FAILED_1 = 0x31
    CARD_AUTH_FAILED_2 = 0x32
    CARD_AUTH_FAILED_3 = 0x33
    UNKNOWN_CARD = 0x40
    SAM_OPERATION_ERROR = 0x47
    SAM_SELF_TEST_FAILED = 0x60
    SAM_NOT_AUTHORISED = 0x66
    NO_CONTENT = 0x91

    @property
    def description(self) -> str:
        """What the status means, in Chinese then English, for operators and technicians."""
        return STATUS_DESCRIPTIONS[self]


STATUS_DESCRIPTIONS: Final[dict[Status, str]] = {
    Status.SUCCESS: "操作成功 / success",
    Status.CARD_FOUND: "找到卡 / card found",
    Status.NO_CARD: "未找到卡 / no card",
    Status.SELECT_FAILED: "选卡失败 / select failed",
    Status.READ_FAILED: "读卡失败 / read failed",
    Status.CHECKSUM_ERROR: "命令校验和错误 / command checksum error",
    Status.LENGTH_ERROR: "命令长度错误 / command length error",
    Status.UNKNOWN_COMMAND: "无法识别的命令 / unknown command",
    Status.NOT_PERMITTED: "越权操作 / command not permitted",
    Status.PARAMETER_ERROR: "命令参数错误 / parameter error",
    Status.CARD_AUTH_FAILED_1: "证/卡认证失败 / card authentication failed",
    Status.CARD_AUTH_FAILED_2: "证/卡认证失败 / card authentication failed",
    Status.CARD_AUTH_FAILED_3: "证/卡认证失败 / card authentication failed",
    Status.UNKNOWN_CARD: "无法识别的卡类型 / unknown card",
    Status.SAM_OPERATION_ERROR: "SAM 操作错误 / SAM operation error",
    Status.SAM_SELF_TEST_FAILED: "SAM 自检失败 / SAM self-test failed",
    Status.SAM_NOT_AUTHORISED: "SAM 未经授权 / SAM not authorised",
    Status.NO_CONTENT: "无此内容 / no content",
}

# Which error each failure status becomes. Success statuses are absent: they are results.
STATUS_ERRORS: Final[dict[Status, type[StatusError]]] = {
    Status.NO_CARD: NoCardError,
    Status.SELECT_FAILED: SelectError,
    Status.READ_FAILED: CardReadError,
    Status.CARD_AUTH_FAILED_1: CardAuthError,
    Status.CARD_AUTH_FAILED_2: CardAuthError,
    Status.CARD_AUTH_FAILED_3: CardAuthError,
    Status.UNKNOWN_CARD: CardAuthError,
    Status.CHECKSUM_ERROR: SamFaultError,
    Status.LENGTH_ERROR: SamFaultError,
    Status.UNKNOWN_COMMAND: SamFaultError,
    Status.NOT_PERMITTED: SamFaultError,
    Status.PARAMETER_ERROR: SamFaultError,
    Status.SAM_OPERATION_ERROR: SamFaultError,
    Status.SAM_SELF_TEST_FAILED: SamFaultError,
    Status.SAM_NOT_AUTHORISED: SamFaultError,
    Status.NO_CONTENT: SamFaultError,
}


class Command(enum.Enum):
    """Every command of the protocol, as its (CMD, PARA) pair."""

    RESET_SAM = (0x10, 0xFF)
    SAM_STATUS = (0x11, 0xFF)
    READ_SAM_ID = (0x12, 0xFF)
    FIND_CARD = (0x20, 0x01)
    SELECT_CARD = (0x20, 0x02)
    READ_TEXT_PHOTO = (0x30, 0x01)
    READ_TEXT_PHOTO_FINGERPRINT = (0x30, 0x10)
    READ_NEW_ADDRESS = (0x30, 0x03)

    @property
    def cmd(self) -> int:
        return self.value[0]

    @property
    def para(self) -> int:
        return self.value[1]


SET_BAUD_CMD: Final = 0x60

# The set-baud data byte n for each rate the SAM supports.
BAUD_CODES: Final[dict[int, int]] = {115200: 0, 57600: 1, 38400: 2, 19200: 3, 9600: 4}


def checksum(data: bytes | bytearray) -> int:
    """XOR of ``data``: the frame's LEN bytes and body, without the preamble."""
    value = 0
    for byte in data:
        value ^= byte
    return value


def _frame(body: bytes) -> bytes:
    length = len(body) + 1
    head = length.to_bytes(2, "big") + body
    return PREAMBLE + head + bytes((checksum(head),))


def encode_command(command: Command, data: bytes = b"") -> bytes:
    """The full frame of ``command``; the protocol's own commands carry no data."""
    return _frame(bytes((command.cmd, command.para)) + data)


def encode_set_baud(baud: int, para: int) -> bytes:
    """The set-baud-rate frame ``AA AA AA 96 69 00 04 60 PARA n CHK``.

    The protocol document leaves ``PARA`` to the module vendor, so the caller states it.
    """
    try:
        code = BAUD_CODES[baud]
    except KeyError:
        rates = ", ".join(str(b) for b in BAUD_CODES)
        raise ValueError(f"the SAM cannot run at {baud} baud; it supports {rates}") from None
    if not 0 <= para <= 0xFF:
        raise ValueError(f"PARA must be one byte, not {para}")
    return _frame(bytes((SET_BAUD_CMD, para, code)))


def encode_reply(sw3: int, data: bytes = b"", sw1: int = 0, sw2: int = 0) -> bytes:
    """The full frame of a reply; what a SAM (or the simulator) sends."""
    return _frame(bytes((sw1, sw2, sw3)) + data)


@dataclass(frozen=True)
class Reply:
    """One reply frame from the SAM."""

    sw1: int
    sw2: int
    sw3: int
    data: bytes

    @property
    def status(self) -> Status | None:
        """The status as a known :class:`Status`, or None for a code the protocol does not name."""
        try:
            return Status(self.sw3)
        except ValueError:
            return None


@dataclass(frozen=True)
class CommandFrame:
    """One command frame as a SAM receives it. ``command`` is None for a pair it does not know."""

    cmd: int
    para: int
    data: bytes

    @property
    def command(self) -> Command | None:
        try:
            return Command((self.cmd, self.para))
        except ValueError:
            return None


class FrameDecoder:
    """Reassembles frames from bytes fed in chunks of any size.

    Bytes before a preamble are skipped and counted in ``discarded``. A frame with an impossible
    LEN or a wrong CHK raises :class:`LengthError` or :class:`ChecksumError`; the decoder then
    drops only the first byte of that preamble, so a good frame hidden behind noise is still
    found, and can be called again.
    """

    def __init__(self, min_len: int) -> None:
        self._buffer = bytearray()
        self._min_len = min_len
        self.discarded = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def clear(self) -> None:
        """Forget buffered bytes, e.g. before resending a command after an error."""
        self.discarded += len(self._buffer)
        self._buffer.clear()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def bytes_needed(self) -> int:
        """How many more bytes must arrive before :meth:`next_body` can return a frame."""
        self._sync()
        if len(self._buffer) < _HEADER_LEN:
            return _HEADER_LEN - len(self._buffer) + self._min_len
        length = int.from_bytes(self._buffer[5:7], "big")
        if not self._min_len <= length <= MAX_LEN:
            return 1
        return max(1, _HEADER_LEN + length - len(self._buffer))

    def _sync(self) -> None:
        start = self._buffer.find(PREAMBLE)
        if start < 0:
            # Keep a tail that could be the start of a preamble split across chunks.
            keep = 0
            for n in range(len(PREAMBLE) - 1, 0, -1):
                if self._buffer.endswith(PREAMBLE[:n]):
                    keep = n
                    break
            drop = len(self._buffer) - keep
        else:
            drop = start
        if drop:
            del self._buffer[:drop]
            self.discarded += drop

    def next_body(self) -> bytes | None:
        """The body (between LEN and CHK) of the next complete frame, or None for more bytes."""
        self._sync()
        if len(self._buffer) < _HEADER_LEN:
            return None
        length = int.from_bytes(self._buffer[5:7], "big")
        if not self._min_len <= length <= MAX_LEN:
            self._skip_preamble()
            raise LengthError(f"frame LEN {length} is outside {self._min_len}..{MAX_LEN}")
        end = _HEADER_LEN + length
        if len(self._buffer) < end:
            return None
        expected = self._buffer[end - 1]
        actual = checksum(self._buffer[5 : end - 1])
        if actual != expected:
            self._skip_preamble()
            raise ChecksumError(f"frame CHK is {expected:#04x}, its bytes give {actual:#04x}")
        body = bytes(self._buffer[_HEADER_LEN : end - 1])
        del self._buffer[:end]
        return body

    def _skip_preamble(self) -> None:
        del self._buffer[:1]
        self.discarded += 1


class ReplyDecoder:
    """Host side: bytes from the SAM in, :class:`Reply` objects out."""

    def __init__(self) -> None:
        self._frames = FrameDecoder(MIN_REPLY_LEN)

    def feed(self, data: bytes) -> None:
        self._frames.feed(data)

    def clear(self) -> None:
        self._frames.clear()

    def bytes_needed(self) -> int:
        return self._frames.bytes_needed()

    @property
    def discarded(self) -> int:
        return self._frames.discarded

    def next_reply(self) -> Reply | None:
        body = self._frames.next_body()
        if body is None:
            return None
        return Reply(body[0], body[1], body[2], body[3:])


class CommandDecoder:
    """SAM side: bytes from the host in, :class:`CommandFrame` objects out."""

    def __init__(self) -> None:
        self._frames = FrameDecoder(MIN_COMMAND_LEN)

    def feed(self, data: bytes) -> None:
        self._frames.feed(data)

    def next_command(self) -> CommandFrame | None:
        body = self._frames.next_body()
        if body is None:
            return None
        return CommandFrame(body[0], body[1], body[2:])


# ---- what a reply means, per command -------------------------------------------------------


def raise_for_status(reply: Reply, *expected: Status) -> Status:
    """Return the reply's status if it is one of ``expected``, else raise the error it maps to."""
    status = reply.status
    if status is not None and status in expected:
        return status
    if status is None:
        raise SamFaultError(reply.sw3, f"SAM 返回未知状态 / unknown SAM status {reply.sw3:#04x}")
    error = STATUS_ERRORS.get(status, SamFaultError)
    raise error(reply.sw3, f"{status.description} (SW3={reply.sw3:#04x})")


def parse_find(reply: Reply) -> bool:
    """True if a card is in the field, False if none is; any other status raises."""
    status = raise_for_status(reply, Status.CARD_FOUND, Status.NO_CARD)
    return status is Status.CARD_FOUND


def parse_select(reply: Reply) -> bytes:
    """The 8 bytes the SAM returns on a successful select."""
    raise_for_status(reply, Status.SUCCESS)
    if len(reply.data) != SELECT_DATA_LEN:
        raise LengthError(f"select reply carries {len(reply.data)} bytes, not {SELECT_DATA_LEN}")
    return reply.data


def parse_status(reply: Reply) -> None:
    """Succeeds for a healthy SAM (reset, status); raises the failure otherwise."""
    raise_for_status(reply, Status.SUCCESS)


@dataclass(frozen=True)
class SamId:
    """The SAM module's identity: 16 bytes of five little-endian fields."""

    raw: bytes

    def __str__(self) -> str:
        a = int.from_bytes(self.raw[0:2], "little")
        b = int.from_bytes(self.raw[2:4], "little")
        c = int.from_bytes(self.raw[4:8], "little")
        d = int.from_bytes(self.raw[8:12], "little")
        e = int.from_bytes(self.raw[12:16], "little")
        return f"{a:02d}.{b:02d}-{c:08d}-{d:010d}-{e:010d}"


def parse_sam_id(reply: Reply) -> SamId:
    raise_for_status(reply, Status.SUCCESS)
    if len(reply.data) != SAM_ID_LEN:
        raise LengthError(f"SAM id reply carries {len(reply.data)} bytes, not {SAM_ID_LEN}")
    return SamId(reply.data)


@dataclass(frozen=True)
class CardBlocks:
    """The raw blocks of a card read: text (256 bytes), WLT photo (1024), fingerprints or None."""

    text: bytes
    photo: bytes
    fingerprint: bytes | None = None


def parse_read(reply: Reply, *, with_fingerprint: bool = False) -> CardBlocks:
    """Split a read reply into its blocks, checking every declared length against the frame."""
    raise_for_status(reply, Status.SUCCESS)
    data = reply.data
    count = 3 if with_fingerprint else 2
    if len(data) < 2 * count:
        raise LengthError(f"read reply carries {len(data)} bytes, too few for its lengths")
    lengths = [int.from_bytes(data[2 * i : 2 * i + 2], "big") for i in range(count)]
    if sum(lengths) + 2 * count != len(data):
        raise LengthError(
            f"read reply declares blocks of {lengths} bytes but carries {len(data) - 2 * count}"
        )
    if lengths[0] != TEXT_LEN or lengths[1] != PHOTO_LEN:
        raise LengthError(f"read reply blocks are {lengths[:2]}, not [{TEXT_LEN}, {PHOTO_LEN}]")
    if with_fingerprint and lengths[2] not in FINGERPRINT_LENS:
        raise LengthError(f"fingerprint block of {lengths[2]} bytes is not one the SAM sends")
    offset = 2 * count
    text = data[offset : offset + TEXT_LEN]
    photo = data[offset + TEXT_LEN : offset + TEXT_LEN + PHOTO_LEN]
    fingerprint = data[offset + TEXT_LEN + PHOTO_LEN :] if with_fingerprint else None
    return CardBlocks(text, photo, fingerprint)


def build_read_data(blocks: CardBlocks) -> bytes:
    """The data part of a read reply for ``blocks``: what a SAM puts after SW1 SW2 SW3."""
    parts = [blocks.text, blocks.photo]
    if blocks.fingerprint is not None:
        parts.append(blocks.fingerprint)
    lengths = b"".join(len(p).to_bytes(2, "big") for p in parts)
    return lengths + b"".join(parts)


def parse_new_address(reply: Reply) -> bytes:
    """The appended-address block (UCS-2 LE); empty when the card carries none (0x91)."""
    status = raise_for_status(reply, Status.SUCCESS, Status.NO_CONTENT)
    return reply.data if status is Status.SUCCESS else b""
