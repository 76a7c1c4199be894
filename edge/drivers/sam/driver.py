"""The serial SAM reader: a thin pyserial pump around :mod:`edge.drivers.sam.protocol`, and the
polling watcher the daemon consumes.

:class:`SamReader` is blocking and owns one serial line (anything ``serial.serial_for_url``
opens: a device path, a pty, ``socket://HOST:PORT``). It writes a command, reads until the
decoder has a reply, resends on a garbled reply or silence, and translates
``serial.SerialException`` into :class:`ReaderBrokenError` here and nowhere else.

:func:`watch` runs the reader on worker threads and yields :mod:`events` to the event loop:
it polls for a card, reads each newly presented card once, notices its removal, and reopens a
reader that was unplugged, without the daemon restarting.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import termios
from collections.abc import AsyncIterator
from typing import Final, Protocol, cast

import serial
import structlog

from edge.drivers.sam import protocol
from edge.drivers.sam.errors import (
    CardDataError,
    FrameError,
    NoCardError,
    ReaderBrokenError,
    ReaderTimeoutError,
    SamError,
    StatusError,
    UnsupportedCardError,
)
from edge.drivers.sam.events import (
    CardRead,
    CardRemoved,
    FaultKind,
    ReaderEvent,
    ReaderFault,
    ReaderReady,
)
from edge.drivers.sam.protocol import CardBlocks, Command, Reply, SamId
from edge.drivers.sam.textblock import decode_address, decode_text_block
from muster.backoff import Backoff
from muster.clock import Clock
from muster.errors import ClosedError, TransportError
from muster.profiles import ReaderProfile

log = structlog.get_logger(__name__)

# What a line that went away raises: pyserial wraps most of it, but a pty whose other end
# vanished fails in termios calls (flush, attributes) that pyserial lets through.
_LINE_ERRORS: Final = (serial.SerialException, OSError, termios.error)

# How long one blocking read may wait before the pump checks its deadline again. Reads return
# as soon as the decoder's bytes are in, so this bounds only how late a timeout is noticed.
_READ_SLICE_S: Final = 0.05


class _Line(Protocol):
    """What the pump needs of a pyserial port; every URL handler's class provides it."""

    def read(self, size: int = 1) -> bytes: ...
    def write(self, data: bytes, /) -> int | None: ...
    def reset_input_buffer(self) -> None: ...
    def close(self) -> None: ...


class SamReader:
    """One SAM reader on one serial line. Blocking; use it from one thread at a time."""

    def __init__(
        self,
        port: str,
        *,
        clock: Clock,
        baud: int = 115200,
        timeout_s: float = 2.0,
        retries: int = 2,
    ) -> None:
        self.port = port
        self._clock = clock
        self.baud = baud
        self.timeout_s = timeout_s
        self.retries = retries
        self._serial: _Line | None = None
        self._decoder = protocol.ReplyDecoder()

    @classmethod
    def from_profile(cls, profile: ReaderProfile, *, clock: Clock, retries: int = 2) -> SamReader:
        return cls(
            profile.port,
            clock=clock,
            baud=profile.baud,
            timeout_s=profile.timeout_s,
            retries=retries,
        )

    def __enter__(self) -> SamReader:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def open(self) -> None:
        self.close()
        try:
            line = serial.serial_for_url(
                self.port,
                baudrate=self.baud,
                timeout=min(self.timeout_s, _READ_SLICE_S),
                write_timeout=self.timeout_s,
            )
            self._serial = cast(_Line, line)
        except (*_LINE_ERRORS, ValueError) as exc:
            raise ReaderBrokenError(f"无法打开读卡器 {self.port} / cannot open reader") from exc

    def close(self) -> None:
        line, self._serial = self._serial, None
        if line is not None:
            # A line that is already gone has nothing left to release.
            with contextlib.suppress(*_LINE_ERRORS):
                line.close()

    # ---- one exchange ------------------------------------------------------------------

    def transact(self, frame: bytes) -> Reply:
        """Send ``frame`` and return the reply, resending on a garbled reply or on silence."""
        failure: SamError | ReaderTimeoutError | None = None
        for _attempt in range(self.retries + 1):
            try:
                return self._exchange(frame)
            except (FrameError, ReaderTimeoutError) as exc:
                failure = exc
        assert failure is not None
        raise failure

    def _exchange(self, frame: bytes) -> Reply:
        line = self._serial
        if line is None:
            raise ClosedError(f"读卡器 {self.port} 未打开 / reader is not open")
        self._decoder.clear()
        deadline = self._clock.monotonic() + self.timeout_s
        try:
            # Bytes left over from an earlier garbled or late reply must not pass for this one.
            line.reset_input_buffer()
            line.write(frame)
            while True:
                reply = self._decoder.next_reply()
                if reply is not None:
                    return reply
                if self._clock.monotonic() >= deadline:
                    raise ReaderTimeoutError(
                        f"读卡器 {self.timeout_s:g} 秒内无应答 / no reply within {self.timeout_s:g} s"
                    )
                chunk = line.read(self._decoder.bytes_needed())
                if chunk:
                    self._decoder.feed(chunk)
        except _LINE_ERRORS as exc:
            self.close()
            raise ReaderBrokenError(f"读卡器 {self.port} 连接中断 / reader line broken") from exc

    def command(self, command: Command) -> Reply:
        return self.transact(protocol.encode_command(command))

    # ---- the operations ----------------------------------------------------------------

    def reset_sam(self) -> None:
        protocol.parse_status(self.command(Command.RESET_SAM))

    def sam_status(self) -> None:
        protocol.parse_status(self.command(Command.SAM_STATUS))

    def sam_id(self) -> SamId:
        return protocol.parse_sam_id(self.command(Command.READ_SAM_ID))

    def find_card(self) -> bool:
        return protocol.parse_find(self.command(Command.FIND_CARD))

    def select_card(self) -> bytes:
        return protocol.parse_select(self.command(Command.SELECT_CARD))

    def read_blocks(self, *, fingerprint: bool = False) -> CardBlocks:
        command = Command.READ_TEXT_PHOTO_FINGERPRINT if fingerprint else Command.READ_TEXT_PHOTO
        return protocol.parse_read(self.command(command), with_fingerprint=fingerprint)

    def read_new_address(self) -> str:
        return decode_address(protocol.parse_new_address(self.command(Command.READ_NEW_ADDRESS)))

    def read_card(self, *, fingerprint: bool = False) -> CardRead:
        """Find, select and read the card in the field; :class:`NoCardError` if there is none."""
        started = self._clock.monotonic()
        if not self.find_card():
            status = protocol.Status.NO_CARD
            raise NoCardError(status, f"{status.description} (SW3={status:#04x})")
        return self._select_and_read(started, fingerprint=fingerprint)

    def _select_and_read(self, started: float, *, fingerprint: bool) -> CardRead:
        self.select_card()
        blocks = self.read_blocks(fingerprint=fingerprint)
        read_ms = (self._clock.monotonic() - started) * 1000
        card = decode_text_block(blocks.text)
        return CardRead(
            port=self.port,
            card=card,
            photo=blocks.photo,
            fingerprint=blocks.fingerprint,
            read_ms=read_ms,
        )

    def poll(self) -> bool:
        """One find, as the watcher's poll: True while a card is in the field."""
        return self.find_card()

    def read_found_card(self, *, started: float | None = None) -> CardRead:
        """Select and read a card a :meth:`poll` has just found. ``started`` is the
        reader clock's ``monotonic()`` at that poll, so ``read_ms`` covers find + select + read."""
        begun = self._clock.monotonic() if started is None else started
        return self._select_and_read(begun, fingerprint=False)


def fault_from(port: str, exc: SamError | TransportError) -> ReaderFault:
    """The event for an error met while polling or reading."""
    if isinstance(exc, ReaderBrokenError):
        kind = FaultKind.BROKEN
    elif isinstance(exc, ReaderTimeoutError):
        kind = FaultKind.TIMEOUT
    elif isinstance(exc, StatusError):
        return ReaderFault(port, FaultKind.STATUS, str(exc), exc.sw3)
    elif isinstance(exc, UnsupportedCardError):
        kind = FaultKind.UNSUPPORTED_CARD
    elif isinstance(exc, CardDataError):
        kind = FaultKind.CARD_DATA
    else:
        kind = FaultKind.FRAME
    return ReaderFault(port, kind, str(exc))


# ---- the polling watcher ---------------------------------------------------------------


class State(enum.Enum):
    CLOSED = "closed"  # no line open: waiting to (re)open it
    ABSENT = "absent"  # open, no card in the field (or the last read failed)
    PRESENT = "present"  # a card is in the field and has been read


class Seen(enum.Enum):
    OPENED = "opened"
    FOUND = "found"
    NOT_FOUND = "not_found"
    BROKEN = "broken"


class Action(enum.Enum):
    NONE = "none"
    READY = "ready"  # announce the reader
    READ = "read"  # select and read the card just found
    REMOVED = "removed"  # announce the card's removal
    FAULT = "fault"  # announce the broken line and start reopening


# (state, what a poll saw) -> (next state, what to do). Pairs not listed cannot occur.
TRANSITIONS: Final[dict[tuple[State, Seen], tuple[State, Action]]] = {
    (State.CLOSED, Seen.OPENED): (State.ABSENT, Action.READY),
    (State.CLOSED, Seen.BROKEN): (State.CLOSED, Action.NONE),
    (State.ABSENT, Seen.FOUND): (State.PRESENT, Action.READ),
    (State.ABSENT, Seen.NOT_FOUND): (State.ABSENT, Action.NONE),
    (State.ABSENT, Seen.BROKEN): (State.CLOSED, Action.FAULT),
    (State.PRESENT, Seen.FOUND): (State.PRESENT, Action.NONE),
    (State.PRESENT, Seen.NOT_FOUND): (State.ABSENT, Action.REMOVED),
    (State.PRESENT, Seen.BROKEN): (State.CLOSED, Action.FAULT),
}


async def watch(
    profile: ReaderProfile,
    *,
    clock: Clock,
    retries: int = 2,
    reopen_after_s: tuple[float, float] = (0.5, 5.0),
) -> AsyncIterator[ReaderEvent]:
    """Poll the reader of ``profile`` for ever, yielding what happens to it.

    Serial I/O runs on worker threads, so the event loop never waits on the line. A broken line
    yields one :class:`ReaderFault` (kind ``BROKEN``) and is then reopened with a backoff from
    ``reopen_after_s[0]`` doubling up to ``reopen_after_s[1]`` (jittered, :mod:`muster.backoff`);
    a :class:`ReaderReady` says it is back. Polls and reopens wait on ``clock``. Closing the
    generator closes the line.
    """
    reader = SamReader.from_profile(profile, clock=clock, retries=retries)
    state = State.CLOSED
    # Seeded by the port: one reader replays its reopen delays.
    backoff = Backoff(*reopen_after_s, rng=random.Random(profile.port))
    # One fault per outage: a reader missing at start, or pulled out, is reported once, not at
    # every reopen attempt.
    outage_reported = False
    try:
        while True:
            if state is State.CLOSED:
                try:
                    sam_id = await asyncio.to_thread(_open_and_identify, reader)
                except (ReaderBrokenError, ReaderTimeoutError, SamError) as exc:
                    delay = backoff.next_delay()
                    log.info(
                        "sam_reopen_failed",
                        port=profile.port,
                        error=str(exc),
                        retry_s=round(delay, 2),
                    )
                    if not outage_reported:
                        outage_reported = True
                        yield fault_from(profile.port, exc)
                    await clock.sleep(delay)
                    continue
                backoff.reset()
                outage_reported = False
                state, _ = TRANSITIONS[(state, Seen.OPENED)]
                yield ReaderReady(profile.port, str(sam_id))
                continue

            broken: ReaderBrokenError | None = None
            try:
                seen = Seen.FOUND if await asyncio.to_thread(reader.poll) else Seen.NOT_FOUND
            except ReaderBrokenError as exc:
                seen, broken = Seen.BROKEN, exc
            except (ReaderTimeoutError, SamError) as exc:
                # A reader that answers badly is reported but not torn down; the next poll retries.
                yield fault_from(profile.port, exc)
                await clock.sleep(profile.poll_interval_s)
                continue

            state, action = TRANSITIONS[(state, seen)]
            if action is Action.FAULT:
                assert broken is not None
                outage_reported = True
                reader.close()
                yield fault_from(profile.port, broken)
                continue
            if action is Action.REMOVED:
                yield CardRemoved(profile.port)
            elif action is Action.READ:
                try:
                    yield await asyncio.to_thread(reader.read_found_card)
                except ReaderBrokenError as exc:
                    state = State.CLOSED
                    outage_reported = True
                    reader.close()
                    yield fault_from(profile.port, exc)
                    continue
                except (ReaderTimeoutError, SamError) as exc:
                    # Not read: forget the card so the next poll that finds it tries again.
                    state = State.ABSENT
                    yield fault_from(profile.port, exc)
            await clock.sleep(profile.poll_interval_s)
    finally:
        reader.close()


def _open_and_identify(reader: SamReader) -> SamId:
    reader.open()
    try:
        return reader.sam_id()
    except BaseException:
        reader.close()
        raise
