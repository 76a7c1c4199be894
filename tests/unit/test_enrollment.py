"""Enrolment (S-06): a code enrols exactly one device of its township; every bad code is refused
with its own message and changes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Device, EnrollmentCode
from controller.devices.enrolment import Enroller, create_enrollment_code
from controller.devices.pki_store import ControllerPki
from muster.clock import VirtualClock
from muster.crypto import DeviceKey, generate_device_key, licence_public_from_bytes
from muster.crypto.pki import build_csr, common_name, load_certificate, verify_issued_by
from muster.errors import EnrollmentError
from muster.licence import check_licence
from muster.v1 import enrollment_pb2
from tests.unit.conftest import NOW

FINGERPRINT = {
    "machine_id": "m" * 64,
    "product_uuid": "p" * 64,
    "primary_mac": "a" * 64,
    "root_disk_serial": "d" * 64,
    "cpu_model": "c" * 64,
}


def request(code: str) -> enrollment_pb2.EnrollRequest:
    return enrollment_pb2.EnrollRequest(
        enrollment_code=code,
        csr_der=build_csr(generate_device_key()),
        fingerprint=enrollment_pb2.HardwareFingerprint(salt=b"s" * 16, **FINGERPRINT),
        software_version="0.1.0",
    )


def enrol_directly(
    sessions: sessionmaker[Session],
    pki: ControllerPki,
    key: DeviceKey,
    *,
    township: str = "370902001000",
    now: datetime = NOW,
) -> enrollment_pb2.EnrollResponse:
    """Enrol a device holding ``key`` through the controller's Enroller, without the network:
    a fresh code for ``township``, the device's CSR, a fixed fingerprint."""
    code = create_enrollment_code(
        sessions,
        township_code=township,
        profile="simulator",
        valid_for=timedelta(days=1),
        created_by="t",
        now=now,
    )
    return Enroller(
        sessions,
        pki,
        licence_days=30,
        mqtt_url="mqtt://x:1",
        data_endpoint="x:2",
        clock=VirtualClock(now),
    ).enroll(
        enrollment_pb2.EnrollRequest(
            enrollment_code=code,
            csr_der=build_csr(key),
            fingerprint=enrollment_pb2.HardwareFingerprint(salt=b"s" * 16, **FINGERPRINT),
        )
    )


def enroller(
    sessions: sessionmaker[Session], pki: ControllerPki, after: timedelta = timedelta()
) -> Enroller:
    clock = VirtualClock(NOW)
    clock.advance_now(after.total_seconds())
    return Enroller(
        sessions,
        pki,
        licence_days=365,
        mqtt_url="mqtt://127.0.0.1:1883",
        data_endpoint="127.0.0.1:7444",
        clock=clock,
    )


def code(sessions: sessionmaker[Session], valid_for: timedelta = timedelta(days=1)) -> str:
    return create_enrollment_code(
        sessions,
        township_code="370902001000",
        profile="fixed-kiosk",
        valid_for=valid_for,
        created_by="t",
        now=NOW,
    )


def counts(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions() as session:
        devices = session.scalar(select(func.count()).select_from(Device)) or 0
        used = session.scalar(select(func.count()).where(EnrollmentCode.used_at.is_not(None))) or 0
    return devices, used


def test_code_enrols_one_device_with_certificate_and_licence(
    sessions: sessionmaker[Session], pki: ControllerPki
) -> None:
    """The response carries a CA-issued certificate whose CN is the new device id, and a licence
    bound to that id and fingerprint that the device can verify."""
    response = enroller(sessions, pki).enroll(request(code(sessions)))
    cert = load_certificate(response.certificate_der)
    assert verify_issued_by(cert, pki.ca_cert, now=NOW) == response.device_id == common_name(cert)
    assert response.device_id.startswith("370902001000-")
    assert response.township_code == "370902001000" and response.profile == "fixed-kiosk"
    licence = check_licence(
        response.licence,
        authority=licence_public_from_bytes(response.licence_authority_key),
        device_id=response.device_id,
        fingerprint=FINGERPRINT,
        now=NOW,
    )
    assert licence.township_code == "370902001000"
    assert [k.version for k in response.upload_keys] == [1]
    assert counts(sessions) == (1, 1)


def test_code_works_once(sessions: sessionmaker[Session], pki: ControllerPki) -> None:
    """A second device with the same code is refused and nothing is created."""
    text = code(sessions)
    enroller(sessions, pki).enroll(request(text))
    with pytest.raises(EnrollmentError, match="已被使用"):
        enroller(sessions, pki).enroll(request(text))
    assert counts(sessions) == (1, 1)


def test_typed_code_is_normalised(sessions: sessionmaker[Session], pki: ControllerPki) -> None:
    """Lower case, spaces and O/0, I/1 confusions are what people type; the code still works."""
    text = code(sessions)
    typed = text.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert enroller(sessions, pki).enroll(request(typed)).device_id


@pytest.mark.parametrize(
    ("make_code", "after", "message"),
    [
        (lambda s: "AAAA-BBBB-CCCC-DDDD", timedelta(), "注册码无效"),
        (lambda s: code(s, timedelta(hours=1)), timedelta(hours=2), "已过期"),
    ],
)
def test_bad_codes_change_nothing(
    sessions: sessionmaker[Session],
    pki: ControllerPki,
    make_code: object,
    after: timedelta,
    message: str,
) -> None:
    """Unknown and expired codes are refused with their own message; no device, no spent code."""
    text = make_code(sessions)  # type: ignore[operator]
    with pytest.raises(EnrollmentError, match=message):
        enroller(sessions, pki, after).enroll(request(text))
    assert counts(sessions) == (0, 0)


def test_bad_csr_changes_nothing(sessions: sessionmaker[Session], pki: ControllerPki) -> None:
    """A garbage certificate request is refused and the code stays usable."""
    text = code(sessions)
    bad = request(text)
    bad.csr_der = b"not a csr"
    with pytest.raises(EnrollmentError, match="证书请求无效"):
        enroller(sessions, pki).enroll(bad)
    assert counts(sessions) == (0, 0)
    assert enroller(sessions, pki).enroll(request(text)).device_id
