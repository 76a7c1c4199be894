"""Enrolment (S-06): an enrolment code plus a device-generated key becomes a certificate, a licence
and a profile. A bad code changes nothing; a good one is spent in the same transaction that
creates the device."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Device, EnrollmentCode, UploadKey
from controller.devices.licences import features_for, fee_for, new_licence, record_grant
from controller.devices.pki_store import ControllerPki
from controller.releases.keys import load_release_keys
from muster.clock import Clock
from muster.crypto import licence_public_bytes, upload_public_bytes
from muster.crypto.pki import certificate_der, certificate_pem, issue_device_certificate
from muster.enrolment_codes import (
    ALPHABET,
    EnrolmentTicket,
    ca_fingerprint,
    hash_code,
    new_code,
)
from muster.errors import CertificateError, EnrollmentError, MusterError
from muster.licence import FINGERPRINT_COMPONENTS, sign_licence
from muster.profiles import PROFILE_DIR, load_profile
from muster.v1 import enrollment_pb2


@dataclass(frozen=True)
class EnrollmentRefusal:
    code: str
    message: str


REFUSALS = {
    "unknown_code": "注册码无效：请核对后重新输入，或向上级管理员申请新的注册码。",
    "used_code": "注册码已被使用：每个注册码只能注册一台设备，请申请新的注册码。",
    "expired_code": "注册码已过期：请向上级管理员申请新的注册码。",
    "bad_csr": "设备证书请求无效：请重新运行注册命令。",
    "no_fingerprint": "无法读取设备硬件信息：请在设备本机上运行注册命令。",
    "wrong_township": (
        "注册码属于另一个乡镇（{code_township}），与您要注册的乡镇（{expected}）不符；"
        "注册码未被使用。请核对乡镇代码，或向上级管理员申请本乡镇的注册码。"
    ),
    "wrong_profile": (
        "注册码是给{code_kind}设备（型号 {code_profile}）的，而本机是{expected_kind}设备；"
        "注册码未被使用。请使用{expected_kind}设备的注册码，或向上级管理员申请。"
    ),
}

# How the technician's kinds of device are named to them.
KIND_NAMES = {"fixed": "固定式", "portable": "便携式", "generic": "通用", "simulator": "模拟"}


def new_device_id(township_code: str) -> str:
    return f"{township_code}-" + "".join(secrets.choice(ALPHABET) for _ in range(6))


def upload_key_messages(session: Session, now: datetime) -> list[enrollment_pb2.UploadKey]:
    keys = session.scalars(select(UploadKey).where(UploadKey.not_after > now)).all()
    out = []
    for key in sorted(keys, key=lambda k: k.version):
        msg = enrollment_pb2.UploadKey(version=key.version, x25519_public_key=key.public_key)
        msg.not_after.FromDatetime(key.not_after)
        out.append(msg)
    return out


def publish_upload_keys(session: Session, pki: ControllerPki, now: datetime) -> None:
    """Make sure every upload key on disk has its public half in the database."""
    known = set(session.scalars(select(UploadKey.version)).all())
    for version, key in pki.upload_keys.items():
        if version not in known:
            session.add(
                UploadKey(
                    version=version,
                    public_key=upload_public_bytes(key),
                    created_at=now,
                    not_after=now + timedelta(days=3650),
                )
            )


class Enroller:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        pki: ControllerPki,
        *,
        licence_days: int,
        mqtt_url: str = "",
        mqtt_urls: Sequence[str] = (),
        data_endpoint: str,
        clock: Clock,
    ) -> None:
        """``mqtt_urls``: the broker cluster's nodes in the order devices try them; or
        ``mqtt_url``, one broker."""
        self._sessions = sessions
        self._pki = pki
        self._licence_days = licence_days
        self._mqtt_urls = list(mqtt_urls) or [mqtt_url]
        if not self._mqtt_urls[0]:
            raise ValueError("Enroller needs the broker address devices are told (mqtt_url)")
        self._data_endpoint = data_endpoint
        self._clock = clock

    def enroll(self, request: enrollment_pb2.EnrollRequest) -> enrollment_pb2.EnrollResponse:
        now = self._clock.now()
        fingerprint = {c: getattr(request.fingerprint, c) for c in FINGERPRINT_COMPONENTS}
        if sum(1 for v in fingerprint.values() if v) < 2:
            raise EnrollmentError(REFUSALS["no_fingerprint"])
        with self._sessions.begin() as session:
            code = session.get(
                EnrollmentCode, hash_code(request.enrollment_code), with_for_update=True
            )
            if code is None:
                raise EnrollmentError(REFUSALS["unknown_code"])
            if code.used_at is not None:
                raise EnrollmentError(REFUSALS["used_code"])
            if code.expires_at <= now:
                raise EnrollmentError(REFUSALS["expired_code"])
            expected = request.expected_township.strip()
            if expected and expected != code.township_code:
                raise EnrollmentError(
                    REFUSALS["wrong_township"].format(
                        code_township=code.township_code, expected=expected
                    )
                )
            wanted_kind = request.expected_profile_kind.strip()
            code_kind = _profile_kind(code.profile)
            if wanted_kind and code_kind is not None and wanted_kind != code_kind:
                raise EnrollmentError(
                    REFUSALS["wrong_profile"].format(
                        code_kind=KIND_NAMES.get(code_kind, code_kind),
                        code_profile=code.profile,
                        expected_kind=KIND_NAMES.get(wanted_kind, wanted_kind[:20]),
                    )
                )
            device_id = new_device_id(code.township_code)
            try:
                cert = issue_device_certificate(
                    self._pki.ca_key, self._pki.ca_cert, request.csr_der, device_id, now=now
                )
            except CertificateError as exc:
                raise EnrollmentError(f"{REFUSALS['bad_csr']}（{exc}）") from exc
            licence = new_licence(
                device_id=device_id,
                township_code=code.township_code,
                profile=code.profile,
                fingerprint=fingerprint,
                features=features_for(code.profile),
                days=self._licence_days,
                now=now,
            )
            session.add(
                Device(
                    id=device_id,
                    township_code=code.township_code,
                    profile=code.profile,
                    device_model=request.device_model,
                    certificate_pem=certificate_pem(cert).decode(),
                    certificate_serial=format(cert.serial_number, "x"),
                    fingerprint={**fingerprint, "salt": request.fingerprint.salt.hex()},
                    software_version=request.software_version,
                    enrolled_at=now,
                    last_heartbeat={},
                )
            )
            session.flush()  # the device row first: the grant refers to it
            record_grant(session, licence, kind="enrolment", fee=fee_for(licence.features))
            code.used_at = now
            code.used_by_device = device_id
            response = enrollment_pb2.EnrollResponse(
                device_id=device_id,
                certificate_der=certificate_der(cert),
                ca_certificate_der=certificate_der(self._pki.ca_cert),
                licence=sign_licence(licence, self._pki.licence_key),
                profile=code.profile,
                township_code=code.township_code,
                upload_keys=upload_key_messages(session, now),
                mqtt_url=self._mqtt_urls[0],
                mqtt_urls=self._mqtt_urls,
                data_endpoint=self._data_endpoint,
                licence_authority_key=licence_public_bytes(self._pki.licence_key),
                release_keys=[
                    enrollment_pb2.ReleaseKeyEntry(key_id=e.key_id, public_key=e.public)
                    for e in load_release_keys(self._pki.directory).entries
                ],
            )
            response.server_time.FromDatetime(now)
        return response


def _profile_kind(profile: str) -> str | None:
    """The kind (fixed, portable, ...) of a code's profile; None if it cannot be loaded."""
    # Parsing the YAML was an eighth of an enrolment's time at the centre; the verdict is kept
    # while the file is unchanged (its size and modification time, or its absence).
    path = Path(profile)
    if not path.exists() and not path.suffix:
        path = PROFILE_DIR / f"{profile}.yaml"
    try:
        stat = path.stat()
        seen: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        seen = None
    return _profile_kind_of(profile, seen)


@functools.lru_cache(maxsize=256)
def _profile_kind_of(profile: str, _seen: tuple[int, int] | None) -> str | None:
    try:
        return load_profile(profile).kind
    except MusterError:
        return None


def enrolment_ticket(code: str, *, host: str, port: int, ca_cert_pem: bytes) -> EnrolmentTicket:
    """The QR payload for ``code``: this controller's public address and enrolment port, and
    the fingerprint of the CA its enrolment port's certificate comes from."""
    return EnrolmentTicket.make(code, host, port, ca_fingerprint(ca_cert_pem))


def enrolment_payload(code: str, *, host: str, port: int, ca_cert_pem: bytes) -> str:
    """The text the QR code of ``code`` holds (see :func:`enrolment_ticket`)."""
    return enrolment_ticket(code, host=host, port=port, ca_cert_pem=ca_cert_pem).payload()


def create_enrollment_code(
    sessions: sessionmaker[Session],
    *,
    township_code: str,
    profile: str,
    valid_for: timedelta,
    created_by: str,
    now: datetime,
) -> str:
    return create_enrollment_codes(
        sessions, [(township_code, profile)], valid_for=valid_for, created_by=created_by, now=now
    )[0]


def create_enrollment_codes(
    sessions: sessionmaker[Session],
    wanted: list[tuple[str, str]],
    *,
    valid_for: timedelta,
    created_by: str,
    now: datetime,
) -> list[str]:
    """One code per (township, profile), all in one transaction: all of them or none."""
    codes = [new_code() for _ in wanted]
    with sessions.begin() as session:
        for code, (township_code, profile) in zip(codes, wanted, strict=True):
            session.add(
                EnrollmentCode(
                    code_hash=hash_code(code),
                    township_code=township_code,
                    profile=profile,
                    created_at=now,
                    expires_at=now + valid_for,
                    created_by=created_by,
                )
            )
    return codes
