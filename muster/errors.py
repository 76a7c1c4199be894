"""The exception tree of muster. Every error a user can meet is one of these; the classes
defined beside the code that raises them are listed under their parent (a test keeps this tree
complete)::

    MusterError
    ├── ConfigError                a setting, profile, argument or input is wrong; says which
    │   ├── NotFoundError          what was named does not exist (404 / NOT_FOUND at the edges)
    │   │   └── UnknownDevice              controller.devices.revocation
    │   ├── ConflictError          contradicts the current state (409 / FAILED_PRECONDITION)
    │   │   └── AlreadyRevoked             controller.devices.revocation
    │   ├── PasswordPolicyError            muster.passwords
    │   ├── JpegTooLargeError              edge.photo.idphoto
    │   ├── FaceImageError         an image for a face check is unusable   muster.face.images
    │   ├── DatasetError                   controller.records.datasets
    │   ├── ImportFileError                controller.records.initial_import
    │   ├── ExtractHeaderError             muster.departments
    │   ├── ComparisonError                controller.comparison.errors
    │   ├── ConfirmationError          a confirmation step refused     muster.confirmation
    │   ├── ApplicationError           an S-30 application refused   muster.one_application
    │   ├── CallbackRefused            a department's message refused muster.application_wire
    │   ├── Refused                a centre command refused (exit 2, no usage text)  controller.cli.options
    │   └── ReleaseError           a release or update refused; ``reason`` names why  muster.releases
    ├── CryptoError
    │   ├── SealError              a record could not be opened: tampered, foreign, wrong key (opaque)
    │   ├── SignatureError         a signature does not verify
    │   └── CertificateError       a certificate is not ours, expired, revoked or malformed
    ├── EnrollmentError            the controller refused an enrolment (code used, expired, unknown ...)
    ├── LicenceError               the device may not collect; ``reason`` names why
    ├── TransportError
    │   ├── BrokenError            the other side or the line went away (cause attached)
    │   │   ├── CameraLostError            edge.drivers.camera
    │   │   ├── MqttIntakeError    the telemetry subscription failed or ended  controller.fleet.mqtt_intake
    │   │   ├── PcscBrokenError            edge.drivers.pcsc.driver
    │   │   └── ReaderBrokenError          edge.drivers.sam.errors
    │   ├── ClosedError            we closed it ourselves
    │   │   └── CameraClosedError          edge.drivers.camera
    │   ├── ProtocolError          a broker sent bytes that are not MQTT 3.1.1   muster.mqtt_wire
    │   └── ReaderTimeoutError             edge.drivers.sam.errors
    ├── StorageError               a durable write failed (disk full, database locked, corrupt)
    │   └── OutboxFullError                edge.outbox
    ├── RecordError                a record breaks the record rules; ``code`` is stable   muster.records
    ├── RowRejected                an import row breaks them; ``code`` is stable     muster.initial_data
    ├── StateError                 an action its state does not allow          muster.record_life
    ├── SliceProtocolError         a slice transfer is malformed                      muster.slices
    ├── ProtoGenerationError       the wire contract's generated modules drifted    muster.protogen
    ├── WorkflowError              the console refuses a step               edge.console.workflow
    ├── LoginRefused               a clerk's login is refused               edge.console.accounts
    ├── AnswerRefused              a clerk's answer to a task is refused  edge.centre_tasks
    ├── InvalidFrameError          a camera frame cannot be judged             edge.photo.quality
    ├── SamError                   the SAM reader's protocol             edge.drivers.sam.errors
    │   ├── FrameError
    │   │   ├── ChecksumError
    │   │   └── LengthError
    │   ├── StatusError            the SAM answered a status other than success
    │   │   ├── NoCardError
    │   │   ├── SelectError
    │   │   ├── CardReadError
    │   │   ├── CardAuthError
    │   │   └── SamFaultError
    │   └── CardDataError          the card's data cannot be decoded
    │       └── UnsupportedCardError
    ├── ApduError                  a PC/SC card's answer                 edge.drivers.pcsc.apdu
    │   ├── StatusWordError
    │   └── TlvError
    ├── AccessError                an admin may not do this          controller.accounts.admins
    │   ├── LoginRequired
    │   ├── AccessDenied
    │   └── UnknownPage
    ├── LoginRefused               an admin's login is refused     controller.admin.login_guard
    │   ├── LoginLocked            too many wrong passwords; says until when
    │   └── LoginBusy              the password workers are all busy; try again shortly
    └── BadRequest                 a gRPC request that is not what the method takes
                                                                     controller.rpc.decode_guard

Third-party exceptions are translated into these at the adapter that met them.
"""

from __future__ import annotations

__all__ = [
    "BrokenError",
    "CertificateError",
    "ClosedError",
    "ConfigError",
    "ConflictError",
    "CryptoError",
    "EnrollmentError",
    "LicenceError",
    "MusterError",
    "NotFoundError",
    "SealError",
    "SignatureError",
    "StorageError",
    "TransportError",
]


class MusterError(Exception):
    """Root of every error raised by muster code."""


class ConfigError(MusterError):
    """A setting, profile or argument is wrong."""


class NotFoundError(ConfigError):
    """What the caller named does not exist (a device, an admin, a record, a clerk).

    A ``ConfigError`` so that every handler of bad arguments still catches it; its own class so
    that a web or gRPC edge can answer 404 / NOT_FOUND rather than 400."""


class ConflictError(ConfigError):
    """What the caller asked for contradicts the current state (revoking a revoked device).
    Answered 409 / FAILED_PRECONDITION at the edges."""


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
