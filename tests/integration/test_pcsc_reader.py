"""The PC/SC driver against a virtual card through a real pcscd and vsmartcard-vpcd."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator

from edge.drivers.pcsc.driver import PcscContext, read_card, watch
from edge.drivers.pcsc.events import (
    BankCardRead,
    CardInserted,
    CardRemoved,
    PcscEvent,
    ReaderAttached,
    SocialSecurityCardRead,
)
from edge.simulators.vcard import VirtualCard
from muster.profiles import PcscProfile
from tests.fixtures.pcscd import VIRTUAL_READER


def _wait_for_card(context: PcscContext, present: bool) -> None:
    deadline = time.monotonic() + 10
    while (context.cards([VIRTUAL_READER]).get(VIRTUAL_READER) is not None) != present:
        assert time.monotonic() < deadline, f"card presence never became {present}"
        time.sleep(0.02)


def test_reads_social_security_and_bank_applications(virtual_card: VirtualCard) -> None:
    """Through pcscd, the card's social security basic information (EF05/EF06) and its EMV
    data (PAN, holder name, expiry, holder ID number) are read and decoded."""
    context = PcscContext()
    try:
        virtual_card.insert()
        _wait_for_card(context, present=True)
        events = read_card(context, VIRTUAL_READER)
    finally:
        context.close()
    ssc_event, bank_event = events
    assert isinstance(ssc_event, SocialSecurityCardRead)
    ssc = ssc_event.card
    assert (ssc.name, ssc.social_security_number) == ("王秀英", "11010519491231002X")
    assert (ssc.sex, ssc.ethnicity, ssc.birth_date) == ("2", "01", dt.date(1949, 12, 31))
    assert ssc.card_number == "A12345678" and ssc.expiry_date == dt.date(2031, 7, 1)
    assert isinstance(bank_event, BankCardRead)
    bank = bank_event.card
    assert bank.pan == "6217000010001234567"
    assert bank.holder_name == "WANG/XIUYING"
    assert bank.expiry == dt.date(2031, 7, 31)
    assert bank.holder_id_number == "11010519491231002X"
    assert virtual_card.apdus_seen >= 13 + 6  # every record was really exchanged


async def _next(events: AsyncIterator[PcscEvent], kind: type) -> PcscEvent:
    for _ in range(50):
        event = await asyncio.wait_for(anext(events), timeout=10)
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__}")


async def test_watch_sees_cards_come_and_go(virtual_card: VirtualCard) -> None:
    """The watcher reports the reader, then insertion with both applications read, then
    removal, and reads a card put back again."""
    events = watch(PcscProfile(enabled=True, reader_filter=VIRTUAL_READER), poll_s=0.05)
    try:
        attached = await _next(events, ReaderAttached)
        assert isinstance(attached, ReaderAttached) and attached.reader == VIRTUAL_READER
        await asyncio.to_thread(virtual_card.insert)
        inserted = await _next(events, CardInserted)
        assert isinstance(inserted, CardInserted) and inserted.atr == bytes.fromhex("3B80800101")
        assert isinstance(await anext(events), SocialSecurityCardRead)
        assert isinstance(await anext(events), BankCardRead)
        await asyncio.to_thread(virtual_card.remove)
        removed = await _next(events, CardRemoved)
        assert isinstance(removed, CardRemoved) and removed.reader == VIRTUAL_READER
        await asyncio.to_thread(virtual_card.insert)
        await _next(events, SocialSecurityCardRead)
    finally:
        await events.aclose()
