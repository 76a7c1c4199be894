"""The PC/SC adapter: pyscard's ``smartcard.scard`` around the sans-I/O :mod:`apdu` module.

Blocking calls (:class:`PcscContext`, :class:`CardChannel`) run on worker threads; :func:`watch`
turns what they see into events for the daemon: readers attached and detached, cards inserted
and removed, and the social security and bank applications read from each inserted card.

PC/SC result codes are translated here and nowhere else::

    MusterError
    ├── ApduError (see apdu)
    └── TransportError
        └── BrokenError
            └── PcscBrokenError      pcscd is gone, or a reader or card left mid-exchange
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import structlog
from smartcard import scard

from edge.drivers.pcsc import apdu
from edge.drivers.pcsc.apdu import ApduError, BankCard, SocialSecurityCard, StatusWordError
from edge.drivers.pcsc.events import (
    BankCardRead,
    CardInserted,
    CardRemoved,
    PcscEvent,
    PcscFault,
    ReaderAttached,
    ReaderDetached,
    SocialSecurityCardRead,
)
from muster.errors import BrokenError
from muster.profiles import PcscProfile

log = structlog.get_logger(__name__)

_NO_READERS: Final = scard.SCARD_E_NO_READERS_AVAILABLE
# A card is seen as present while its contacts are still settling; a failed exchange right
# after insertion is tried again before it is reported.
_READ_ATTEMPTS: Final = 3


class PcscBrokenError(BrokenError):
    """pcscd went away, or a reader or a card left in the middle of an exchange."""

    def __init__(self, hresult: int, what: str) -> None:
        detail = scard.SCardGetErrorMessage(hresult)
        super().__init__(f"{what}: {detail} (0x{hresult & 0xFFFFFFFF:08X})")
        self.hresult = hresult


def _check(hresult: int, what: str) -> None:
    if hresult != scard.SCARD_S_SUCCESS:
        raise PcscBrokenError(hresult, what)


class CardChannel:
    """A connection to the card in one reader."""

    def __init__(self, handle: Any, protocol: int, reader: str) -> None:
        self._handle = handle
        self._pci = (
            scard.SCARD_PCI_T1 if protocol == scard.SCARD_PROTOCOL_T1 else scard.SCARD_PCI_T0
        )
        self.reader = reader

    def transmit(self, command: bytes) -> bytes:
        """Send one APDU; follow 61xx with GET RESPONSE and 6Cxx with the right Le."""
        response = self._raw(command)
        for _ in range(16):
            sw1, sw2 = response[-2], response[-1]
            if sw1 == 0x61:
                response = response[:-2] + self._raw(apdu.get_response(sw2))
            elif sw1 == 0x6C:
                # Wrong Le: the card names the right one; resend with it in place of ours.
                response = self._raw(command[:-1] + bytes((sw2,)))
            else:
                return response
        return response

    def _raw(self, command: bytes) -> bytes:
        hresult, response = scard.SCardTransmit(self._handle, self._pci, list(command))
        _check(hresult, f"{self.reader}: transmit")
        if len(response) < 2:
            raise ApduError(f"card answered {len(response)} bytes, fewer than a status word")
        return bytes(response)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            scard.SCardDisconnect(self._handle, scard.SCARD_LEAVE_CARD)


class PcscContext:
    """A PC/SC context: lists readers, sees cards, opens channels."""

    def __init__(self) -> None:
        hresult, self._context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        _check(hresult, "pcscd 不可用 / cannot reach pcscd")

    def readers(self) -> list[str]:
        hresult, readers = scard.SCardListReaders(self._context, [])
        if hresult == _NO_READERS:
            return []
        _check(hresult, "list readers")
        return list(readers)

    def cards(self, readers: list[str]) -> dict[str, bytes | None]:
        """Reader -> ATR of the card in it, or None when it is empty."""
        if not readers:
            return {}
        states = [(reader, scard.SCARD_STATE_UNAWARE) for reader in readers]
        hresult, seen = scard.SCardGetStatusChange(self._context, 0, states)
        if hresult == scard.SCARD_E_TIMEOUT:
            return {}
        _check(hresult, "reader status")
        return {
            reader: bytes(atr) if state & scard.SCARD_STATE_PRESENT else None
            for reader, state, atr in seen
        }

    def connect(self, reader: str) -> CardChannel:
        hresult, handle, protocol = scard.SCardConnect(
            self._context,
            reader,
            scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        _check(hresult, f"{reader}: connect")
        return CardChannel(handle, protocol, reader)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            scard.SCardReleaseContext(self._context)


# ---- the card applications ------------------------------------------------------------------


def read_social_security(channel: CardChannel) -> SocialSecurityCard | None:
    """The basic information of the social security application, or None if the card has none."""
    try:
        apdu.expect_ok(channel.transmit(apdu.SELECT_SSC), "select social security")
    except StatusWordError:
        return None
    values: dict[int, bytes] = {}
    for record, command in apdu.ssc_read_commands():
        data, sw = apdu.split_response(channel.transmit(command))
        if sw == apdu.SW_RECORD_NOT_FOUND:
            continue  # optional records (birthplace, issuer) may be absent
        if sw != apdu.SW_OK:
            raise StatusWordError(sw, f"read record {record:02X}: card answered {sw:04X}")
        values[record] = apdu.parse_ssc_record(record, data)
    return apdu.decode_ssc(values)


def read_bank_card(channel: CardChannel) -> BankCard | None:
    """The EMV data of the card's first payment application, or None if it has no PPSE."""
    try:
        ppse = apdu.expect_ok(channel.transmit(apdu.select_by_name(apdu.PPSE, le=True)), "PPSE")
    except StatusWordError:
        return None
    for aid in apdu.parse_ppse(ppse):
        try:
            fci = apdu.expect_ok(channel.transmit(apdu.select_by_name(aid, le=True)), "select")
        except StatusWordError:
            continue
        gpo = apdu.get_processing_options(apdu.pdol_data(fci))
        afl = apdu.parse_gpo(apdu.expect_ok(channel.transmit(gpo), "GPO"))
        records = [
            apdu.expect_ok(channel.transmit(apdu.read_record(record, sfi)), "read record")
            for sfi, record in apdu.parse_afl(afl)
        ]
        return apdu.decode_bank_card(aid, records)
    return None


def read_card(context: PcscContext, reader: str) -> list[PcscEvent]:
    """Connect to the card in ``reader`` and read every application it carries."""
    channel = context.connect(reader)
    try:
        events: list[PcscEvent] = []
        ssc = read_social_security(channel)
        if ssc is not None:
            events.append(SocialSecurityCardRead(reader, ssc))
        bank = read_bank_card(channel)
        if bank is not None:
            events.append(BankCardRead(reader, bank))
        if not events:
            events.append(PcscFault(reader, "不支持的卡片 / card carries no known application"))
        return events
    finally:
        channel.close()


# ---- the watcher ----------------------------------------------------------------------------

Sleep = Callable[[float], Awaitable[None]]


def _diff(
    before: dict[str, bytes | None], after: dict[str, bytes | None]
) -> tuple[list[PcscEvent], list[str]]:
    """Events between two snapshots, and the readers whose card is new and must be read."""
    events: list[PcscEvent] = []
    to_read: list[str] = []
    for reader in sorted(before.keys() - after.keys()):
        if before[reader] is not None:
            events.append(CardRemoved(reader))
        events.append(ReaderDetached(reader))
    for reader in sorted(after.keys() - before.keys()):
        events.append(ReaderAttached(reader))
    for reader in sorted(after):
        old, new = before.get(reader), after[reader]
        if old is not None and new is None:
            events.append(CardRemoved(reader))
        elif old is None and new is not None:
            events.append(CardInserted(reader, new))
            to_read.append(reader)
    return events, to_read


async def watch(
    profile: PcscProfile,
    *,
    poll_s: float = 0.2,
    reconnect_s: float = 1.0,
    sleep: Sleep = asyncio.sleep,
) -> AsyncIterator[PcscEvent]:
    """Watch every reader matching ``profile.reader_filter`` for ever; PC/SC calls run on worker
    threads. When pcscd goes away one :class:`PcscFault` is yielded and the context is
    re-established every ``reconnect_s`` until it is back."""
    context: PcscContext | None = None
    known: dict[str, bytes | None] = {}
    faulted = False
    try:
        while True:
            try:
                if context is None:
                    context = await asyncio.to_thread(PcscContext)
                snapshot = await asyncio.to_thread(_snapshot, context, profile.reader_filter)
            except PcscBrokenError as exc:
                if context is not None:
                    context.close()
                    context = None
                if not faulted:
                    faulted = True
                    yield PcscFault(None, f"PC/SC 服务不可用 / PC/SC unavailable: {exc}")
                    for event in _diff(known, {})[0]:
                        yield event
                    known = {}
                await sleep(reconnect_s)
                continue
            faulted = False
            events, to_read = _diff(known, snapshot)
            known = snapshot
            for event in events:
                yield event
            for reader in to_read:
                for attempt in range(_READ_ATTEMPTS):
                    try:
                        read = await asyncio.to_thread(read_card, context, reader)
                    except (PcscBrokenError, ApduError) as exc:
                        log.info("pcsc_read_failed", reader=reader, error=str(exc))
                        if attempt + 1 < _READ_ATTEMPTS and isinstance(exc, PcscBrokenError):
                            await sleep(poll_s)
                            continue
                        yield PcscFault(reader, f"读卡失败 / card read failed: {exc}")
                        break
                    for event in read:
                        yield event
                    break
            await sleep(poll_s)
    finally:
        if context is not None:
            context.close()


def _snapshot(context: PcscContext, reader_filter: str) -> dict[str, bytes | None]:
    readers = [r for r in context.readers() if reader_filter in r]
    return context.cards(readers)
