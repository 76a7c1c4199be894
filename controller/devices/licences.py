"""Licences on the centre's side (S-06): every grant is recorded with the fee it carries, a
device renews before expiry with the same binding, and hardware changes that devices report
are kept as history.

A generic device bought on the open market (profile ``generic-pc``) collects only under the
paid ``generic-device`` feature; each licence granted to it records the authorisation fee, so
the centre can bill the township. Renewal never rebinds: the new licence carries the
fingerprint the device enrolled with, otherwise hardware could be swapped out one component per
renewal until none of the original machine is left.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Device, DeviceEvent, FingerprintChange, LicenceGrant
from muster.clock import Clock
from muster.crypto import LicenceAuthorityKey, licence_public_bytes
from muster.errors import LicenceError
from muster.licence import (
    ALLOWED_CHANGED_COMPONENTS,
    FINGERPRINT_COMPONENTS,
    Licence,
    changed_components,
    sign_licence,
)
from muster.v1 import data_pb2

__all__ = [
    "GENERIC_DEVICE_FEE",
    "GENERIC_FEATURE",
    "GENERIC_PROFILE",
    "NO_FEE",
    "RENEWAL_REFUSALS",
    "Fee",
    "LicenceDesk",
    "enrolled_fingerprint",
    "features_for",
    "fee_for",
    "new_licence",
    "note_fingerprint",
    "record_grant",
    "reported_fingerprint",
]

GENERIC_PROFILE = "generic-pc"
GENERIC_FEATURE = "generic-device"


@dataclass(frozen=True, slots=True)
class Fee:
    amount_fen: int  # 1/100 yuan, so no float ever touches money
    currency: str

    def __str__(self) -> str:
        return f"{self.amount_fen / 100:.2f} {self.currency}" if self.amount_fen else "—"


NO_FEE = Fee(0, "")
# The authorisation fee per licence year for a generic market device.
GENERIC_DEVICE_FEE = Fee(30_000, "CNY")

RENEWAL_REFUSALS = {
    "unknown_device": "中心没有本机的登记，不能续期。请重新注册。",
    "revoked": "本机授权已被中心吊销，不能续期。",
    "fingerprint_mismatch": (
        "本机硬件与注册时相比变更了两项以上，中心拒绝续期。请联系技术支持重新注册本机。"
    ),
}


def features_for(profile: str) -> tuple[str, ...]:
    return ("collect", GENERIC_FEATURE) if profile == GENERIC_PROFILE else ("collect",)


def fee_for(features: tuple[str, ...], generic_fee: Fee = GENERIC_DEVICE_FEE) -> Fee:
    return generic_fee if GENERIC_FEATURE in features else NO_FEE


def new_licence(
    *,
    device_id: str,
    township_code: str,
    profile: str,
    fingerprint: dict[str, str],
    features: tuple[str, ...],
    days: int,
    now: datetime,
) -> Licence:
    return Licence(
        device_id=device_id,
        township_code=township_code,
        profile=profile,
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(days=days),
        fingerprint={c: fingerprint.get(c, "") for c in FINGERPRINT_COMPONENTS},
        features=features,
        serial=secrets.token_hex(8),
        issued_at=now,
    )


def record_grant(session: Session, licence: Licence, *, kind: str, fee: Fee) -> None:
    session.add(
        LicenceGrant(
            serial=licence.serial,
            device_id=licence.device_id,
            kind=kind,
            issued_at=licence.issued_at,
            not_before=licence.not_before,
            not_after=licence.not_after,
            features=list(licence.features),
            fee_amount_fen=fee.amount_fen,
            fee_currency=fee.currency,
        )
    )


def reported_fingerprint(
    request: data_pb2.HealthRequest | data_pb2.RenewLicenceRequest,
) -> dict[str, str]:
    return {c: getattr(request.fingerprint, c) for c in FINGERPRINT_COMPONENTS}


def enrolled_fingerprint(device: Device) -> dict[str, str]:
    return {c: str(device.fingerprint.get(c, "")) for c in FINGERPRINT_COMPONENTS}


def note_fingerprint(
    session: Session, device: Device, reported: dict[str, str], now: datetime
) -> FingerprintChange | None:
    """Record the hardware a device reports when it differs from what was last recorded."""
    changed = changed_components(enrolled_fingerprint(device), reported)
    last = session.scalars(
        select(FingerprintChange)
        .where(FingerprintChange.device_id == device.id)
        .order_by(FingerprintChange.id.desc())
        .limit(1)
    ).first()
    previous = last.fingerprint if last is not None else enrolled_fingerprint(device)
    if {c: reported.get(c, "") for c in FINGERPRINT_COMPONENTS} == {
        c: previous.get(c, "") for c in FINGERPRINT_COMPONENTS
    }:
        return None
    within = len(changed) <= ALLOWED_CHANGED_COMPONENTS
    change = FingerprintChange(
        device_id=device.id,
        at=now,
        changed=changed,
        fingerprint={c: reported.get(c, "") for c in FINGERPRINT_COMPONENTS},
        within_tolerance=within,
    )
    session.add(change)
    session.add(
        DeviceEvent(
            device_id=device.id,
            at=now,
            kind="FINGERPRINT_CHANGED",
            message=(
                f"硬件变更：{', '.join(changed) or '已恢复为注册时的硬件'}"
                + ("" if within else "（超过允许的一项，授权失效）")
            ),
            details={"changed": ",".join(changed)},
        )
    )
    return change


class LicenceDesk:
    """What the Device service does about licences: note hardware, renew."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        licence_key: LicenceAuthorityKey,
        *,
        licence_days: int,
        generic_fee: Fee = GENERIC_DEVICE_FEE,
        clock: Clock,
    ) -> None:
        self._sessions = sessions
        self._key = licence_key
        self._days = licence_days
        self._fee = generic_fee
        self._clock = clock

    @property
    def authority_public_key(self) -> bytes:
        return licence_public_bytes(self._key)

    def note_fingerprint(self, device_id: str, reported: dict[str, str]) -> bool:
        """True when a change was recorded."""
        with self._sessions.begin() as session:
            device = session.get(Device, device_id)
            if device is None:
                return False
            return note_fingerprint(session, device, reported, self._clock.now()) is not None

    def renew(self, device_id: str, reported: dict[str, str]) -> bytes:
        """A freshly signed licence with the same binding, or ``LicenceError`` saying why not."""
        now = self._clock.now()
        with self._sessions.begin() as session:
            device = session.get(Device, device_id)
            if device is None:
                raise LicenceError("unknown_device", RENEWAL_REFUSALS["unknown_device"])
            if device.revoked_at is not None:
                raise LicenceError("revoked", RENEWAL_REFUSALS["revoked"])
            # The change is committed even when renewal is refused: support needs the history.
            note_fingerprint(session, device, reported, now)
            enrolled = enrolled_fingerprint(device)
            too_many = len(changed_components(enrolled, reported)) > ALLOWED_CHANGED_COMPONENTS
            blob = b"" if too_many else self._grant(session, device, enrolled, now)
        if too_many:
            raise LicenceError("fingerprint_mismatch", RENEWAL_REFUSALS["fingerprint_mismatch"])
        return blob

    def _grant(
        self, session: Session, device: Device, enrolled: dict[str, str], now: datetime
    ) -> bytes:
        latest = session.scalars(
            select(LicenceGrant)
            .where(LicenceGrant.device_id == device.id)
            .order_by(LicenceGrant.issued_at.desc())
            .limit(1)
        ).first()
        features = tuple(latest.features) if latest is not None else features_for(device.profile)
        licence = new_licence(
            device_id=device.id,
            township_code=device.township_code,
            profile=device.profile,
            fingerprint=enrolled,
            features=features,
            days=self._days,
            now=now,
        )
        record_grant(session, licence, kind="renewal", fee=fee_for(features, self._fee))
        return sign_licence(licence, self._key)
