"""The wire between the centre and the departments for S-30: signed JSON both ways, in the
Standard Webhooks scheme, and the rules both ends share. Sans-I/O: bytes and headers in, bytes
and headers out; the time is a parameter.

Signing uses the ``standardwebhooks`` package (HMAC-SHA256 over ``id.timestamp.body``, the
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers, a ``whsec_`` base64
secret per department). Verification computes the expected signature with the same package but
checks the timestamp against the caller's clock: the package's own ``verify`` reads the wall clock
and raises a bare ``ValueError`` on a malformed signature header, and both ends here run on an
injected clock and must answer every bad header with a reason.

A department's status callback moves an item through :data:`TRANSITIONS`:
``delivered → received → accepted | more_materials | rejected``, ``accepted → done``, and
``more_materials → delivered`` once the applicant has uploaded what was asked (a new delivery).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import random
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from standardwebhooks.webhooks import Webhook

from muster.backoff import Backoff
from muster.errors import ConfigError

__all__ = [
    "CALLBACK_STATUSES",
    "CALLBACK_TOLERANCE_S",
    "MAX_CALLBACK_BYTES",
    "TRANSITIONS",
    "Callback",
    "CallbackRefused",
    "delivery_delay",
    "new_secret",
    "parse_callback",
    "retryable_status",
    "sign",
    "verify",
]

CALLBACK_TOLERANCE_S: Final = 300  # what Standard Webhooks recommends
CALLBACK_STATUSES: Final = ("received", "accepted", "more_materials", "rejected", "done")
# item state -> statuses a callback may move it to
TRANSITIONS: Final[dict[str, tuple[str, ...]]] = {
    "queued": (),
    "delivered": ("received", "accepted", "more_materials", "rejected"),
    "received": ("accepted", "more_materials", "rejected"),
    "accepted": ("done",),
    "more_materials": (),
    "rejected": (),
    "done": (),
    "failed": (),
}
MAX_CALLBACK_BYTES: Final = 64 * 1024


class CallbackRefused(ConfigError):
    """A signed message was refused; ``reason`` is a stable code, the message says what to do."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def new_secret() -> str:
    """A fresh per-department secret in the Standard Webhooks form (``whsec_`` + base64)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _webhook(secret: str) -> Webhook:
    try:
        return Webhook(secret)
    except (binascii.Error, ValueError, RuntimeError) as exc:
        raise ConfigError(
            "the webhook secret is not a whsec_ base64 secret; make one with "
            "`muster controller department add` or new_secret()"
        ) from exc
    except Exception as exc:  # EmptyWebhookSecretError
        raise ConfigError("the webhook secret is empty") from exc


def sign(secret: str, msg_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The three headers that sign ``body`` as message ``msg_id`` sent ``at``."""
    signature = _webhook(secret).sign(msg_id, at.astimezone(UTC), body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime,
    tolerance_s: int = CALLBACK_TOLERANCE_S,
) -> str:
    """The message id of a correctly signed, timely ``body``; raises :class:`CallbackRefused`."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signatures = (
        lower.get("webhook-id", ""),
        lower.get("webhook-timestamp", ""),
        lower.get("webhook-signature", ""),
    )
    if not (msg_id and stamp and signatures):
        raise CallbackRefused(
            "missing_headers", "webhook-id, webhook-timestamp and webhook-signature are required"
        )
    if len(msg_id) > 100 or not stamp.isdigit() or len(stamp) > 12:
        raise CallbackRefused("bad_headers", "webhook-id or webhook-timestamp is malformed")
    sent = int(stamp)
    drift = now.timestamp() - sent
    if abs(drift) > tolerance_s:
        raise CallbackRefused(
            "stale_timestamp",
            f"webhook-timestamp is {int(drift)} s from our clock (more than {tolerance_s} s): "
            "a replay, or the sender's clock is wrong",
        )
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise CallbackRefused("bad_body", "the body is not UTF-8") from exc
    expected = _webhook(secret).sign(msg_id, datetime.fromtimestamp(sent, UTC), text)
    expected_raw = base64.b64decode(expected.split(",", 1)[1])
    for versioned in signatures.split(" "):
        version, _, value = versioned.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except binascii.Error:
            continue
        if hmac.compare_digest(expected_raw, given):
            return msg_id
    raise CallbackRefused("bad_signature", "the signature does not match this department's secret")


@dataclass(frozen=True, slots=True)
class Callback:
    """A department's status report on one delivery."""

    delivery_id: str
    status: str
    message: str = ""
    materials: tuple[str, ...] = ()  # what is missing, for more_materials
    appointment_at: str = ""  # ISO datetime, for accepted
    place: str = ""
    bring: tuple[str, ...] = ()

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "delivery_id": self.delivery_id,
                "status": self.status,
                "message": self.message,
                "materials": list(self.materials),
                "appointment_at": self.appointment_at,
                "place": self.place,
                "bring": list(self.bring),
            },
            ensure_ascii=False,
        ).encode()


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and len(v) < 200 for v in value):
        raise CallbackRefused("bad_body", f"{name} must be a list of short strings")
    return tuple(value)


def parse_callback(body: bytes) -> Callback:
    """A callback body read strictly; raises :class:`CallbackRefused` naming the bad part."""
    if len(body) > MAX_CALLBACK_BYTES:
        raise CallbackRefused("too_large", f"a callback is at most {MAX_CALLBACK_BYTES} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CallbackRefused("bad_body", "the body is not JSON") from exc
    if not isinstance(data, dict):
        raise CallbackRefused("bad_body", "the body must be a JSON object")
    delivery_id, status = data.get("delivery_id"), data.get("status")
    if not isinstance(delivery_id, str) or not delivery_id or len(delivery_id) > 100:
        raise CallbackRefused("bad_body", "delivery_id must be the webhook-id of our delivery")
    if status not in CALLBACK_STATUSES:
        raise CallbackRefused("bad_status", f"status must be one of {', '.join(CALLBACK_STATUSES)}")
    text = {k: data.get(k, "") for k in ("message", "appointment_at", "place")}
    for key, value in text.items():
        if not isinstance(value, str) or len(value) > 500:
            raise CallbackRefused("bad_body", f"{key} must be a string of at most 500 characters")
    if text["appointment_at"]:
        try:
            when = datetime.fromisoformat(text["appointment_at"])
        except ValueError as exc:
            raise CallbackRefused("bad_body", "appointment_at must be an ISO date-time") from exc
        if when.tzinfo is None:
            raise CallbackRefused(
                "bad_body", "appointment_at needs its UTC offset, e.g. 2027-06-12T09:00:00+08:00"
            )
    materials = _strings(data.get("materials", []), "materials")
    if status == "more_materials" and not materials:
        raise CallbackRefused("bad_body", "more_materials must name the materials wanted")
    return Callback(
        delivery_id,
        str(status),
        text["message"],
        materials,
        text["appointment_at"],
        text["place"],
        _strings(data.get("bring", []), "bring"),
    )


def retryable_status(status: int) -> bool:
    """Whether a department's HTTP answer means "try again later": 5xx, 408 and 429 only."""
    return status >= 500 or status in (408, 429)


def delivery_delay(
    attempt: int, seed: str, *, initial_s: float = 2.0, maximum_s: float = 3600.0
) -> float:
    """Seconds to wait before attempt ``attempt + 1`` of one delivery: the project's backoff
    rule with jitter from a generator seeded by the delivery (its webhook-id), so a replayed
    fault run, or a restarted sender, computes the same schedule."""
    backoff = Backoff(initial_s, maximum_s, random.Random(seed))
    delay = 0.0
    for _ in range(max(1, attempt)):
        delay = backoff.next_delay()
    return delay
