"""The centre's side of licences and revocation (S-06, S-08, S-13): wrong-township codes, fees for
generic devices, renewal with the same binding, fingerprint-change history, revocation and the
CRL that brokers read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Command, Device, FingerprintChange, LicenceGrant
from controller.devices.enrolment import Enroller, create_enrollment_code
from controller.devices.licences import GENERIC_DEVICE_FEE, LicenceDesk
from controller.devices.pki_store import ControllerPki, begin_ca_rotation, ensure_controller_pki
from controller.devices.revocation import AlreadyRevoked, UnknownDevice, crl_pem, revoke_device
from controller.fleet.commands import PENDING
from muster.clock import VirtualClock
from muster.crypto import licence_public_from_bytes
from muster.crypto.pki import crl_serials, load_certificate
from muster.errors import EnrollmentError, LicenceError
from muster.licence import check_licence, decode_licence
from tests.unit.conftest import NOW
from tests.unit.test_enrollment import FINGERPRINT, counts, request

TOWNSHIP = "370902001000"


def enrol(
    sessions: sessionmaker[Session],
    pki: ControllerPki,
    profile: str = "fixed-kiosk",
    expected_township: str = "",
) -> str:
    text = create_enrollment_code(
        sessions,
        township_code=TOWNSHIP,
        profile=profile,
        valid_for=timedelta(days=1),
        created_by="t",
        now=NOW,
    )
    req = request(text)
    req.expected_township = expected_township
    enroller = Enroller(
        sessions,
        pki,
        licence_days=365,
        mqtt_url="mqtt://127.0.0.1:1883",
        data_endpoint="127.0.0.1:7444",
        clock=VirtualClock(NOW),
    )
    return enroller.enroll(req).device_id


def desk(
    sessions: sessionmaker[Session], pki: ControllerPki, after: timedelta = timedelta()
) -> LicenceDesk:
    clock = VirtualClock(NOW)
    clock.advance_now(after.total_seconds())
    return LicenceDesk(sessions, pki.licence_key, licence_days=365, clock=clock)


def grants(sessions: sessionmaker[Session], device_id: str) -> list[LicenceGrant]:
    with sessions() as session:
        return list(
            session.scalars(
                select(LicenceGrant)
                .where(LicenceGrant.device_id == device_id)
                .order_by(LicenceGrant.issued_at)
            )
        )


def test_code_of_another_township_is_refused_and_stays_unused(
    sessions: sessionmaker[Session], pki: ControllerPki
) -> None:
    """A technician who says which township they enrol for is refused a code of another one,
    with both townships named; the code is not spent and still works for its own township."""
    with pytest.raises(EnrollmentError, match=r"370902001000.*370902002000"):
        enrol(sessions, pki, expected_township="370902002000")
    assert counts(sessions) == (0, 0)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(LicenceGrant)) == 0
    assert enrol(sessions, pki, expected_township=TOWNSHIP)


def test_generic_device_licence_carries_the_paid_feature_and_its_fee(
    sessions: sessionmaker[Session], pki: ControllerPki
) -> None:
    """A market PC gets the generic-device feature and the fee is recorded; a kiosk pays none."""
    generic = enrol(sessions, pki, profile="generic-pc")
    kiosk = enrol(sessions, pki, profile="fixed-kiosk")
    (generic_grant,) = grants(sessions, generic)
    (kiosk_grant,) = grants(sessions, kiosk)
    assert "generic-device" in generic_grant.features and generic_grant.kind == "enrolment"
    assert (generic_grant.fee_amount_fen, generic_grant.fee_currency) == (
        GENERIC_DEVICE_FEE.amount_fen,
        "CNY",
    )
    assert "generic-device" not in kiosk_grant.features and kiosk_grant.fee_amount_fen == 0


def test_renewal_keeps_the_binding_and_moves_the_window(
    sessions: sessionmaker[Session], pki: ControllerPki
) -> None:
    """Eleven months on, a renewal is a new licence for the same device, township, profile,
    enrolled fingerprint and features, valid a year from now, and is recorded with its fee."""
    device_id = enrol(sessions, pki, profile="generic-pc")
    later = timedelta(days=335)
    blob = desk(sessions, pki, later).renew(device_id, FINGERPRINT)
    licence = check_licence(
        blob,
        authority=licence_public_from_bytes(desk(sessions, pki).authority_public_key),
        device_id=device_id,
        fingerprint=FINGERPRINT,
        now=NOW + later,
    )
    assert licence.not_after == NOW + later + timedelta(days=365)
    assert licence.fingerprint == FINGERPRINT and licence.township_code == TOWNSHIP
    assert "generic-device" in licence.features
    first, renewal = grants(sessions, device_id)
    assert renewal.kind == "renewal" and renewal.serial == licence.serial != first.serial
    assert renewal.fee_amount_fen == GENERIC_DEVICE_FEE.amount_fen


def test_one_changed_component_renews_and_is_recorded(
    sessions: sessionmaker[Session], pki: ControllerPki
) -> None:
    """A replaced network card is within tolerance: renewal succeeds, keeps the enrolled
    fingerprint, and the change is in the device's history once, however often reported."""
    device_id = enrol(sessions, pki)
    now_fp = {**FINGERPRINT, "primary_mac": "b" * 64}
    blob = desk(sessions, pki).renew(device_id, now_fp)
    assert desk(sessions, pki).note_fingerprint(device_id, now_fp) is False  # already recorded
    licence = decode_licence(
        blob, licence_public_from_bytes(desk(sessions, pki).authority_public_key)
    )
    assert licence.fingerprint == FINGERPRINT
    with sessions() as session:
        (change,) = session.scalars(select(FingerprintChange)).all()
    assert change.changed == ["primary_mac"] and change.within_tolerance


def test_two_changed_components_refuse_renewal_but_keep_the_history(
    sessions: sessionmaker[Session], pki: ControllerPki
) -> None:
    """The licence moved to another machine: renewal is refused naming why, no licence is
    granted, and the change is recorded for support to see."""
    device_id = enrol(sessions, pki)
    moved = {**FINGERPRINT, "primary_mac": "b" * 64, "root_disk_serial": "e" * 64}
    with pytest.raises(LicenceError) as refused:
        desk(sessions, pki).renew(device_id, moved)
    assert refused.value.reason == "fingerprint_mismatch" and "两项以上" in str(refused.value)
    assert len(grants(sessions, device_id)) == 1
    with sessions() as session:
        (change,) = session.scalars(select(FingerprintChange)).all()
    assert sorted(change.changed) == ["primary_mac", "root_disk_serial"]
    assert not change.within_tolerance


def test_revocation_refuses_renewal_lists_the_certificate_and_tells_the_device(
    sessions: sessionmaker[Session], pki: ControllerPki
) -> None:
    """After revocation: renewal is refused, the device's certificate serial is in the CRL signed
    by the CA, and a revoke command waits to be pushed to the device over MQTT."""
    device_id = enrol(sessions, pki)
    other = enrol(sessions, pki)
    revoke_device(sessions, device_id, reason="设备丢失", by="t", now=NOW)
    with pytest.raises(LicenceError, match="吊销"):
        desk(sessions, pki).renew(device_id, FINGERPRINT)
    with sessions() as session:
        device = session.get(Device, device_id)
        other_device = session.get(Device, other)
        assert device is not None and other_device is not None
        revoked_serial = load_certificate(device.certificate_pem.encode()).serial_number
        kept_serial = load_certificate(other_device.certificate_pem.encode()).serial_number
        command = session.scalars(select(Command).where(Command.device_id == device_id)).one()
    serials = crl_serials(crl_pem(sessions, pki, now=NOW))
    assert revoked_serial in serials and kept_serial not in serials
    assert (command.kind, command.state) == ("revoke", PENDING)


def test_revoking_unknown_or_revoked_devices_changes_nothing(
    sessions: sessionmaker[Session], pki: ControllerPki
) -> None:
    """An unknown id and a second revocation are refused; the first reason stands."""
    device_id = enrol(sessions, pki)
    with pytest.raises(UnknownDevice, match="没有编号"):
        revoke_device(sessions, "370902001000-NOSUCH", reason="x", by="t", now=NOW)
    revoke_device(sessions, device_id, reason="第一次", by="t", now=NOW)
    with pytest.raises(AlreadyRevoked, match="第一次"):
        revoke_device(sessions, device_id, reason="第二次", by="t", now=NOW + timedelta(hours=1))
    with sessions() as session:
        device = session.get(Device, device_id)
        assert device is not None and device.revoked_reason == "第一次"
        assert device.revoked_at == NOW


def test_crl_covers_every_ca_during_a_rotation(
    sessions: sessionmaker[Session], pki: ControllerPki
) -> None:
    """While a new CA is being rolled out, the CRL file holds one CRL per CA in the trust bundle
    (a broker refuses every client of a CA without a CRL), and still lists the revoked device."""
    device_id = enrol(sessions, pki)
    revoke_device(sessions, device_id, reason="x", by="t", now=NOW)
    begin_ca_rotation(pki, now=NOW)
    rotated = ensure_controller_pki(pki.directory.parent, ["127.0.0.1", "localhost"], now=NOW)
    pem = crl_pem(sessions, rotated, now=NOW)
    assert pem.count(b"BEGIN X509 CRL") == 2
    with sessions() as session:
        device = session.get(Device, device_id)
        assert device is not None
        serial = load_certificate(device.certificate_pem.encode()).serial_number
    assert serial in crl_serials(pem)
