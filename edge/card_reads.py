"""One path for an identity card read: whichever reader read it (the serial SAM reader, or a
social security card through PC/SC), the read becomes one :class:`IdentityRead` and is handed
to exactly one consumer through a :class:`CardHandoff`.

The handoff holds at most the latest read, in plaintext, only until it is taken or, untaken,
until ``expiry_s`` has passed on the daemon's clock: nothing piles up when no one takes reads,
and a card read long ago is never put into a record that is opened later.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Final, Literal

from edge.drivers.pcsc.events import SocialSecurityCardRead
from edge.drivers.sam.events import CardRead
from muster.clock import Clock
from muster.idnumbers import CardType, birth_date_of, check_id_number

__all__ = [
    "HANDOFF_EXPIRY_S",
    "CardHandoff",
    "IdentityRead",
    "from_sam",
    "from_social_security",
]

# Long enough for a clerk to put the card down and then press "read card", not much more.
HANDOFF_EXPIRY_S: Final = 30.0


@dataclass(frozen=True)
class IdentityRead:
    """The identity a card states, as the console and the simulated collector take it."""

    source: str  # "sam:<port>" or "pcsc:<reader>", for the logs (never the card's content)
    document: Literal["id_card", "social_security_card"]
    card_type: CardType  # the layout the number is judged by; a social security card: resident
    name: str
    id_number: str
    sex: str  # GB/T 2261.1 code
    birth_date: dt.date | None
    ethnicity: str = ""  # GB/T 3304 code
    address: str = ""

    def is_valid_resident(self, today: dt.date) -> bool:
        """Whether this names a resident with a valid citizen ID number (what the forms ask)."""
        if self.card_type is not CardType.RESIDENT or self.birth_date is None:
            return False
        checked = check_id_number(
            self.id_number,
            today=today,
            card_type=self.card_type,
            birth_date=self.birth_date,
            sex=self.sex,
        )
        return checked.valid is True


def from_sam(read: CardRead) -> IdentityRead:
    card = read.card
    return IdentityRead(
        source=f"sam:{read.port}",
        document="id_card",
        card_type=card.card_type,
        name=card.name,
        id_number=card.id_number,
        sex=card.sex.value,
        birth_date=card.birth_date,
        ethnicity=card.ethnicity.code if card.ethnicity else "",
        address=card.address or "",
    )


def from_social_security(read: SocialSecurityCardRead) -> IdentityRead:
    """A social security card's holder: its social security number is the citizen ID number.
    Cards that leave the birth date unset are given the number's own (digits 7-14)."""
    card = read.card
    number = card.social_security_number.strip().upper()
    birth = card.birth_date
    if birth is None:
        try:
            birth = birth_date_of(number)
        except (ValueError, IndexError):
            birth = None  # judged invalid by is_valid_resident
    return IdentityRead(
        source=f"pcsc:{read.reader}",
        document="social_security_card",
        card_type=CardType.RESIDENT,
        name=card.name,
        id_number=number,
        sex=card.sex,
        birth_date=birth,
        ethnicity=card.ethnicity,
    )


class CardHandoff:
    """The latest read waiting for its one consumer. :meth:`offer` replaces what is held;
    :meth:`take` hands it over once and forgets it; an untaken read is forgotten once
    ``expiry_s`` has passed on ``clock``."""

    def __init__(self, clock: Clock, *, expiry_s: float = HANDOFF_EXPIRY_S) -> None:
        self._clock = clock
        self._expiry_s = expiry_s
        self._read: IdentityRead | None = None
        self._offered_at = 0.0
        self._arrived = asyncio.Event()

    def offer(self, read: IdentityRead) -> None:
        self._read = read
        self._offered_at = self._clock.monotonic()
        self._arrived.set()

    def clear(self) -> None:
        self._read = None
        self._arrived.clear()

    @property
    def held(self) -> IdentityRead | None:
        """The read waiting now, if any and not expired (an expired one is dropped here)."""
        if self._read is not None and self._clock.monotonic() - self._offered_at >= self._expiry_s:
            self.clear()
        return self._read

    def take_now(self) -> IdentityRead | None:
        read = self.held
        self.clear()
        return read

    async def take(self, timeout_s: float | None = None) -> IdentityRead | None:
        """The waiting read, or the next one offered within ``timeout_s`` (on the clock; None
        waits for ever); None when none came."""
        read = self.take_now()
        if read is not None:
            return read
        waiter = asyncio.ensure_future(self._arrived.wait())
        timer = (
            asyncio.ensure_future(self._clock.sleep(timeout_s)) if timeout_s is not None else None
        )
        try:
            await asyncio.wait(
                [t for t in (waiter, timer) if t is not None], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (waiter, timer):
                if task is not None and not task.done():
                    task.cancel()
        return self.take_now()
