"""What the PC/SC driver tells the daemon: one frozen dataclass per kind of event."""

from __future__ import annotations

from dataclasses import dataclass

from edge.drivers.pcsc.apdu import BankCard, SocialSecurityCard


@dataclass(frozen=True)
class ReaderAttached:
    reader: str


@dataclass(frozen=True)
class ReaderDetached:
    reader: str


@dataclass(frozen=True)
class CardInserted:
    reader: str
    atr: bytes


@dataclass(frozen=True)
class CardRemoved:
    reader: str


@dataclass(frozen=True)
class SocialSecurityCardRead:
    reader: str
    card: SocialSecurityCard


@dataclass(frozen=True)
class BankCardRead:
    reader: str
    card: BankCard


@dataclass(frozen=True)
class PcscFault:
    """Something went wrong; ``reader`` is None when PC/SC itself is unavailable."""

    reader: str | None
    message: str


PcscEvent = (
    ReaderAttached
    | ReaderDetached
    | CardInserted
    | CardRemoved
    | SocialSecurityCardRead
    | BankCardRead
    | PcscFault
)
