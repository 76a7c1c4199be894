"""Contact and contactless cards through PC/SC: the social security card and bank cards (EMV).

``apdu`` is sans-I/O (commands, responses, TLV); ``driver`` is the pyscard adapter and the
watcher that yields ``events`` to the daemon.
"""

from edge.drivers.pcsc.apdu import (
    ApduError,
    BankCard,
    SocialSecurityCard,
    StatusWordError,
    TlvError,
)
from edge.drivers.pcsc.driver import PcscBrokenError, PcscContext, watch
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

__all__ = [
    "ApduError",
    "BankCard",
    "BankCardRead",
    "CardInserted",
    "CardRemoved",
    "PcscBrokenError",
    "PcscContext",
    "PcscEvent",
    "PcscFault",
    "ReaderAttached",
    "ReaderDetached",
    "SocialSecurityCard",
    "SocialSecurityCardRead",
    "StatusWordError",
    "TlvError",
    "watch",
]
