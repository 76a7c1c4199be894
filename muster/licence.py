"""Licences (S-06): a document signed by the licence authority that lets one device collect.

Sans-I/O: bytes in, a verdict out; the caller supplies the time and the current fingerprint.
A licence binds the device id, township, profile, validity window, purchased features and the
hardware fingerprint; one fingerprint component may change (a replaced NIC, a new disk), two
may not.

Wire form: ``MUSTER-LICENCE-1`` newline, canonical JSON (sorted keys, no spaces, UTF-8) newline,
base64 Ed25519 signature over the JSON bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from muster.crypto import (
    LicenceAuthorityKey,
    LicenceAuthorityPublicKey,
    sign_ed25519,
    verify_ed25519,
)
from muster.errors import LicenceError, SignatureError

__all__ = [
    "ALLOWED_CHANGED_COMPONENTS",
    "FINGERPRINT_COMPONENTS",
    "MAGIC",
    "REASONS",
    "Licence",
    "changed_components",
    "check_licence",
    "decode_licence",
    "sign_licence",
]

MAGIC = b"MUSTER-LICENCE-1"
FINGERPRINT_COMPONENTS = (
    "machine_id",
    "product_uuid",
    "primary_mac",
    "root_disk_serial",
    "cpu_model",
)
ALLOWED_CHANGED_COMPONENTS = 1


@dataclass(frozen=True, slots=True)
class Licence:
    device_id: str
    township_code: str
    profile: str
    not_before: datetime
    not_after: datetime
    fingerprint: dict[str, str]  # component -> salted hash, as enrolled
    features: tuple[str, ...] = ()
    serial: str = ""
    issued_at: datetime = field(default_factory=lambda: datetime(1970, 1, 1, tzinfo=UTC))

    def days_left(self, now: datetime) -> int:
        return (self.not_after - now).days


# Reasons a device refuses to collect, with the operator's message (zh) — stable codes for telemetry.
REASONS: dict[str, str] = {
    "missing": "本机没有授权许可，不能采集。请联系技术支持申请授权。",
    "tampered": "授权许可文件已损坏或被篡改，不能采集。请重新申请授权。",
    "wrong_device": "授权许可不属于本机，不能采集。请使用本机申请的授权。",
    "fingerprint_mismatch": "本机硬件与授权绑定的硬件不符（两项以上变更），不能采集。请联系技术支持重新授权。",
    "not_yet_valid": "授权许可尚未生效，请检查系统时间或等待生效日期。",
    "expired": "授权许可已过期，不能采集。请联系技术支持续期。",
    "revoked": "本机授权已被中心吊销，不能采集。",
    "clock_rollback": "检测到系统时间被回拨，已停止采集。请校正系统时间。",
    "feature_missing": "本机为市场采购的通用设备，授权中没有已付费的通用设备许可，不能采集。请联系技术支持办理授权。",
}


def _canonical(licence: Licence) -> bytes:
    doc = asdict(licence)
    for key in ("not_before", "not_after", "issued_at"):
        doc[key] = doc[key].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc["features"] = sorted(doc["features"])
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_licence(licence: Licence, key: LicenceAuthorityKey) -> bytes:
    body = _canonical(licence)
    return MAGIC + b"\n" + body + b"\n" + base64.b64encode(sign_ed25519(key, body)) + b"\n"


def _refuse(reason: str) -> LicenceError:
    return LicenceError(reason, REASONS[reason])


def decode_licence(blob: bytes, authority: LicenceAuthorityPublicKey) -> Licence:
    """Verify the signature and parse; any defect is ``LicenceError('tampered')``."""
    try:
        magic, body, signature_b64 = blob.rstrip(b"\n").split(b"\n")
        if magic != MAGIC:
            raise ValueError("magic")
        verify_ed25519(authority, body, base64.b64decode(signature_b64, validate=True))
        doc = json.loads(body)
        licence = Licence(
            device_id=doc["device_id"],
            township_code=doc["township_code"],
            profile=doc["profile"],
            not_before=_parse_time(doc["not_before"]),
            not_after=_parse_time(doc["not_after"]),
            fingerprint=dict(doc["fingerprint"]),
            features=tuple(doc["features"]),
            serial=doc["serial"],
            issued_at=_parse_time(doc["issued_at"]),
        )
    except (ValueError, KeyError, TypeError, SignatureError, binascii.Error):
        raise _refuse("tampered") from None
    if _canonical(licence) != body:
        raise _refuse("tampered")
    return licence


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def changed_components(enrolled: dict[str, str], current: dict[str, str]) -> list[str]:
    """Components present at enrolment whose hash differs now (absent now counts as changed)."""
    return [
        c for c in FINGERPRINT_COMPONENTS if enrolled.get(c) and enrolled.get(c) != current.get(c)
    ]


def check_licence(
    blob: bytes | None,
    *,
    authority: LicenceAuthorityPublicKey,
    device_id: str,
    fingerprint: dict[str, str],
    now: datetime,
    revoked: bool = False,
    required_features: tuple[str, ...] = (),
) -> Licence:
    """Return the licence if this device may collect now, else raise ``LicenceError`` naming why."""
    if blob is None:
        raise _refuse("missing")
    licence = decode_licence(blob, authority)
    if licence.device_id != device_id:
        raise _refuse("wrong_device")
    if revoked:
        raise _refuse("revoked")
    if len(changed_components(licence.fingerprint, fingerprint)) > ALLOWED_CHANGED_COMPONENTS:
        raise _refuse("fingerprint_mismatch")
    if now < licence.not_before:
        raise _refuse("not_yet_valid")
    if now >= licence.not_after:
        raise _refuse("expired")
    if not set(required_features) <= set(licence.features):
        raise _refuse("feature_missing")
    return licence
