"""One path for a card read (issue 14): the handoff between the readers and their one consumer
holds at most the latest read, forgets it once taken or after its expiry on the daemon's clock,
and the daemon routes reads to the console when it runs, to the simulated collector only when
that is configured, and to no one otherwise."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from edge.card_reads import (
    HANDOFF_EXPIRY_S,
    CardHandoff,
    IdentityRead,
    from_sam,
    from_social_security,
)
from edge.daemon import card_consumer
from edge.drivers.pcsc.apdu import SocialSecurityCard
from edge.drivers.pcsc.events import SocialSecurityCardRead
from edge.drivers.sam.events import CardRead
from edge.hardware import Hardware
from edge.simulators.idcard import synthetic_cards
from muster.clock import VirtualClock
from muster.idnumbers import CardType
from muster.profiles import load_profile

NOW = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)


def reads(count: int) -> list[IdentityRead]:
    return [
        from_sam(CardRead("/dev/pts/9", card.text, b"\0" * 1024, None, 12.0))
        for card in synthetic_cards("370902", count, seed=7)
    ]


def test_the_handoff_holds_only_the_latest_read() -> None:
    """Forty reads nobody takes leave one read held, the latest; taking it leaves none."""
    clock = VirtualClock(NOW)
    handoff = CardHandoff(clock)
    every = reads(40)
    for read in every:
        handoff.offer(read)
        assert handoff.held is read
    assert handoff.take_now() is every[-1]
    assert handoff.held is None
    assert handoff.take_now() is None


def test_an_untaken_read_expires_on_the_clock() -> None:
    """A read not taken within the expiry is forgotten; one offered later is held again."""
    clock = VirtualClock(NOW)
    handoff = CardHandoff(clock)
    first, second = reads(2)
    handoff.offer(first)
    clock.advance_now(HANDOFF_EXPIRY_S - 0.5)
    held_before = handoff.held
    clock.advance_now(0.5)
    assert held_before is first
    assert handoff.held is None
    assert handoff.take_now() is None
    handoff.offer(second)
    assert handoff.take_now() is second


async def test_take_waits_for_the_next_read_or_times_out() -> None:
    """take() returns a read offered while it waits; with none, it gives up after its timeout
    on the clock and leaves nothing behind."""
    clock = VirtualClock(NOW)
    handoff = CardHandoff(clock)
    (read,) = reads(1)
    waiting = asyncio.create_task(handoff.take(10.0))
    await clock.wait_for_sleepers(1)
    handoff.offer(read)
    assert await waiting is read
    assert handoff.held is None
    waiting = asyncio.create_task(handoff.take(10.0))
    await clock.wait_for_sleepers(1)
    await clock.advance(10.0)
    assert await waiting is None
    assert clock.sleepers == 0 and handoff.held is None


def test_a_social_security_card_names_its_holder_as_a_resident() -> None:
    """The social security number is the holder's citizen ID number, judged as a resident's;
    an unset birth date comes from the number; a malformed number is not valid."""
    card = SocialSecurityCard(
        card_number="A12345678",
        card_type="01",
        version="2.00",
        issuer="110000",
        issue_date=None,
        expiry_date=None,
        social_security_number="11010519491231002x",
        name="王秀英",
        sex="2",
        ethnicity="01",
        birth_date=None,
    )
    read = from_social_security(SocialSecurityCardRead("Virtual PCD 00 00", card))
    assert (read.document, read.card_type) == ("social_security_card", CardType.RESIDENT)
    assert (read.id_number, read.birth_date) == ("11010519491231002X", dt.date(1949, 12, 31))
    assert read.is_valid_resident(NOW.date())
    bad = card.__class__(**{**card.__dict__, "social_security_number": "1101"})
    broken = from_social_security(SocialSecurityCardRead("r", bad))
    assert broken.birth_date is None and not broken.is_valid_resident(NOW.date())


@pytest.mark.parametrize(
    "number",
    [
        "",
        "1101",
        "<script>alert(1)</script>",
        "11010519491231002Y",
        "110105194912310021",  # wrong check digit
        "11010599991231002X",  # no such birth date
        "11010519491231002X" + "0" * 40,
        "１１０１０５１９４９１２３１００２Ｘ",  # full-width digits
    ],
)
def test_hostile_social_security_numbers_are_refused(number: str) -> None:
    """Whatever a card carries where the number should be, only a valid one passes."""
    card = SocialSecurityCard(
        "A1", "01", "2", "11", None, None, number, "名", "2", "01", dt.date(1949, 12, 31)
    )
    read = from_social_security(SocialSecurityCardRead("r", card))
    assert not read.is_valid_resident(NOW.date())


@pytest.mark.parametrize(
    ("name", "changes", "reads_cards", "expected"),
    [
        ("fixed-kiosk", {}, True, "console"),
        ("portable-tablet", {}, True, "console"),
        ("simulator", {}, True, "collector"),
        ("simulator", {}, False, None),
        ("simulator", {"simulation": None}, True, None),
        ("simulator", {"console": {"enabled": True}}, True, "console"),
        ("fixed-kiosk", {"console": {"enabled": False}}, True, None),
    ],
)
def test_each_read_has_exactly_one_consumer(
    name: str, changes: dict[str, object], reads_cards: bool, expected: str | None
) -> None:
    """The console takes the reads when it runs; the simulated collector only when it is
    configured and no console runs; a kiosk without its console gives reads to no one."""
    base = load_profile(name)
    profile = base.model_validate(base.model_dump() | changes)
    assert card_consumer(profile, reads_cards=reads_cards) == expected


def test_without_a_consumer_hardware_keeps_no_read() -> None:
    """With no handoff, a read only updates when the last card was read; with one, the handoff
    holds just the latest of many reads."""
    clock = VirtualClock(NOW)
    hardware = Hardware(
        load_profile("fixed-kiosk"), lambda kind, message, details: None, clock=clock
    )
    assert hardware.reads_cards and hardware.handoff is None
    for read in reads(3):
        hardware._hand_on(read)
    assert hardware.last_card_read == NOW
    hardware.handoff = CardHandoff(clock)
    every = reads(33)
    for read in every:
        hardware._hand_on(read)
    assert hardware.handoff.take_now() is every[-1]
    assert hardware.handoff.held is None
