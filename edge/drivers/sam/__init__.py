"""The serial second-generation ID-card reader (SAM module, GA 467 family).

``protocol`` and ``textblock`` are sans-I/O (frames, statuses, card text); ``driver`` is the
pyserial pump and the polling watcher that yields ``events`` to the daemon, the card as read.
``idnumber`` adapts a card to :mod:`muster.idnumbers`' checker for the consumer, which judges
the number with its own clock's today.
"""

from edge.drivers.sam.driver import SamReader, watch
from edge.drivers.sam.errors import (
    CardAuthError,
    CardDataError,
    CardReadError,
    ChecksumError,
    FrameError,
    LengthError,
    NoCardError,
    ReaderBrokenError,
    ReaderTimeoutError,
    SamError,
    SamFaultError,
    SelectError,
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
from edge.drivers.sam.idnumber import check_card
from edge.drivers.sam.protocol import Command, Reply, ReplyDecoder, SamId, Status
from edge.drivers.sam.textblock import CardText, CardType, Ethnicity, Sex, decode_text_block

__all__ = [
    "CardAuthError",
    "CardDataError",
    "CardRead",
    "CardReadError",
    "CardRemoved",
    "CardText",
    "CardType",
    "ChecksumError",
    "Command",
    "Ethnicity",
    "FaultKind",
    "FrameError",
    "LengthError",
    "NoCardError",
    "ReaderBrokenError",
    "ReaderEvent",
    "ReaderFault",
    "ReaderReady",
    "ReaderTimeoutError",
    "Reply",
    "ReplyDecoder",
    "SamError",
    "SamFaultError",
    "SamId",
    "SamReader",
    "SelectError",
    "Sex",
    "Status",
    "StatusError",
    "UnsupportedCardError",
    "check_card",
    "decode_text_block",
    "watch",
]
