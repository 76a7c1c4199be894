"""The serial second-generation ID-card reader (SAM module, GA 467 family).

``protocol`` and ``textblock`` are sans-I/O (frames, statuses, card text); ``idnumber`` checks
the number on a card; ``driver`` is the pyserial pump and the polling watcher that yields
``events`` to the daemon.
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
from edge.drivers.sam.idnumber import IdNumberCheck, IdProblem, check_card, check_number
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
    "IdNumberCheck",
    "IdProblem",
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
    "check_number",
    "decode_text_block",
    "watch",
]
