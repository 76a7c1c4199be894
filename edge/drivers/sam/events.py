"""What the SAM reader driver tells the daemon: one frozen dataclass per kind of event."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from edge.drivers.sam.textblock import CardText


@dataclass(frozen=True)
class ReaderReady:
    """The reader was opened (first time or after it came back) and its SAM answered."""

    port: str
    sam_id: str


@dataclass(frozen=True)
class CardRead:
    """A card was presented and read in full. The card is handed on as read: whether its
    number is valid is the consumer's judgement (``edge.drivers.sam.idnumber.check_card``)."""

    port: str
    card: CardText
    photo: bytes  # 1024 bytes of WLT, kept raw: no open decoder exists
    fingerprint: bytes | None
    read_ms: float  # find + select + read, as the host saw it

    @property
    def photo_sha256(self) -> str:
        return hashlib.sha256(self.photo).hexdigest()


@dataclass(frozen=True)
class CardRemoved:
    """The card that was read has left the field."""

    port: str


class FaultKind(enum.Enum):
    BROKEN = "broken"  # the line went away; the watcher reopens it
    TIMEOUT = "timeout"  # the reader did not answer in time
    STATUS = "status"  # the SAM answered with a failure status
    FRAME = "frame"  # the reply was garbled even after retries
    CARD_DATA = "card_data"  # the card's content could not be decoded
    UNSUPPORTED_CARD = "unsupported_card"  # a card type whose layout is not decoded


@dataclass(frozen=True)
class ReaderFault:
    """Something went wrong; ``message`` is for the operator, ``status`` is SW3 if there was one."""

    port: str
    kind: FaultKind
    message: str
    status: int | None = None


ReaderEvent = ReaderReady | CardRead | CardRemoved | ReaderFault
