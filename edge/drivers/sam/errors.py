"""Errors of the SAM ID-card reader stack, all under :class:`muster.errors.MusterError`::

    MusterError
    ├── SamError                     anything the SAM protocol or a card's content got wrong
    │   ├── FrameError               bytes on the line are not a well-formed frame
    │   │   ├── ChecksumError        CHK does not match the frame (resend the command)
    │   │   └── LengthError          LEN is impossible, or a body is too short for its command
    │   ├── StatusError              the SAM answered with a failure status (``status`` says which)
    │   │   ├── NoCardError          0x80: no card in the field / find failed
    │   │   ├── SelectError          0x81: the card could not be selected
    │   │   ├── CardReadError        0x41: the card could not be read
    │   │   ├── CardAuthError        0x31–0x33, 0x40: the card is not genuine or not known
    │   │   └── SamFaultError        every other failure: the SAM itself or the command
    │   └── CardDataError            a reply was well formed but its card content is not
    │       └── UnsupportedCardError the card-type flag names a layout this reader cannot decode
    └── TransportError
        ├── ReaderTimeoutError       the reader did not answer within the profile's timeout
        └── BrokenError
            └── ReaderBrokenError    the serial line went away (unplugged, closed peer); cause set

The protocol core raises only the ``SamError`` branch; the serial driver adds the transport ones
and translates ``serial.SerialException`` into :class:`ReaderBrokenError` at its edge.
"""

from __future__ import annotations

from muster.errors import BrokenError, MusterError, TransportError


class SamError(MusterError):
    """Something in the SAM protocol or in the card's content was wrong."""


class FrameError(SamError):
    """Bytes received are not a well-formed frame."""


class ChecksumError(FrameError):
    """The XOR check byte does not match the frame."""


class LengthError(FrameError):
    """The LEN field is impossible, or a body is too short for what it claims to carry."""


class StatusError(SamError):
    """The SAM answered with a status other than the one the command expects."""

    def __init__(self, sw3: int, message: str) -> None:
        super().__init__(message)
        self.sw3 = sw3


class NoCardError(StatusError):
    """No card in the field (status 0x80)."""


class SelectError(StatusError):
    """The card was found but could not be selected (status 0x81)."""


class CardReadError(StatusError):
    """The card was selected but could not be read (status 0x41)."""


class CardAuthError(StatusError):
    """The card failed authentication or is unknown (0x31–0x33, 0x40)."""


class SamFaultError(StatusError):
    """The SAM refused the command or failed itself (checksum, length, permission, self-test)."""


class CardDataError(SamError):
    """A reply was well formed but the card content in it cannot be decoded."""


class UnsupportedCardError(CardDataError):
    """The card-type flag names a layout that is not decoded; ``flag`` holds it."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(message)
        self.flag = flag


class ReaderTimeoutError(TransportError):
    """The reader did not answer a command within the timeout."""


class ReaderBrokenError(BrokenError):
    """The serial line went away: the reader was unplugged or the peer closed."""
