"""The exception tree of muster. Every error a user can meet is one of these::

    MusterError
    ├── ConfigError            a setting, profile or argument is wrong; the message says which
    ├── CryptoError
    │   ├── SealError          a record could not be opened: tampered, foreign, wrong key (opaque)
    │   ├── SignatureError     a signature does not verify
    │   └── CertificateError   a certificate is not ours, expired, revoked or malformed
    ├── EnrollmentError        the controller refused an enrolment (code used, expired, unknown ...)
    ├── LicenceError           the device may not collect; ``reason`` names why
    ├── TransportError
    │   ├── BrokenError        the other side or the line went away (cause attached)
    │   └── ClosedError        we closed it ourselves
    └── StorageError           a durable write failed (disk full, database locked, corrupt)

Third-party exceptions are translated into these at the adapter that met them.
"""

from __future__ import annotations


class MusterError(Exception):
    """Root of every error raised by muster code."""


class ConfigError(MusterError):
    """A setting, profile or argument is wrong."""


class CryptoError(MusterError):
    """A cryptographic operation failed."""


class SealError(CryptoError):
    """A sealed record could not be opened. Deliberately says nothing about why."""


class SignatureError(CryptoError):
    """A signature did not verify."""


class CertificateError(CryptoError):
    """A certificate is malformed, not issued by our CA, expired or revoked."""


class EnrollmentError(MusterError):
    """The controller refused an enrolment."""


class LicenceError(MusterError):
    """The device holds no valid licence."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class TransportError(MusterError):
    """A link to a peer failed."""


class BrokenError(TransportError):
    """The other side or the line went away."""


class ClosedError(TransportError):
    """We closed the resource ourselves and then used it."""


class StorageError(MusterError):
    """A durable write failed."""
