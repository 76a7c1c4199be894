"""Ingest: verify, open, validate, store once, then acknowledge (S-08). Every rejection says why
in words a clerk can act on; resends are acknowledged without being stored again."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Device, Record
from controller.devices.pki_store import ControllerPki
from controller.records.ingest import Ingestor
from edge.simulators.collector import simulated_record
from muster.clock import VirtualClock
from muster.crypto import (
    DeviceKey,
    generate_device_key,
    generate_upload_key,
    seal_record,
    upload_public_bytes,
    upload_public_from_bytes,
)
from muster.v1 import data_pb2
from tests.unit.conftest import NOW
from tests.unit.test_enrollment import enrol_directly

Ack = data_pb2.RecordAck


@dataclass
class Dev:
    device_id: str
    key: DeviceKey
    upload_public: bytes


@pytest.fixture
def device(sessions: sessionmaker[Session], pki: ControllerPki) -> Dev:
    key = generate_device_key()
    response = enrol_directly(sessions, pki, key)
    return Dev(response.device_id, key, response.upload_keys[0].x25519_public_key)


@pytest.fixture
def ingestor(sessions: sessionmaker[Session], pki: ControllerPki) -> Ingestor:
    return Ingestor(sessions, pki.upload_keys, VirtualClock(NOW))


def seal(
    dev: Dev, seed: int = 1, township: str = "370902001000", **changes: object
) -> data_pb2.SealedRecord:
    payload = simulated_record(random.Random(seed), township, NOW)
    if changes:
        payload = payload.model_copy(update=changes)
    return seal_record(
        payload.to_bytes(),
        record_id=payload.record_id,
        device_id=dev.device_id,
        schema_version=f"{payload.category.value}/{payload.form_version}",
        upload_key=upload_public_from_bytes(dev.upload_public),
        key_version=1,
        signing_key=dev.key,
        now=NOW,
    )


def stored(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Record)) or 0


def test_store_then_resend_is_a_duplicate(
    ingestor: Ingestor, device: Dev, sessions: sessionmaker[Session]
) -> None:
    """The first send is stored; the same sealed bytes again (after a lost ack) are acked as a
    duplicate, and the controller still holds one copy."""
    records = [seal(device, seed) for seed in range(5)]
    assert [a.status for a in ingestor.ingest_batch(device.device_id, records)] == [
        Ack.STATUS_STORED
    ] * 5
    again = ingestor.ingest_batch(device.device_id, [*records, records[0]])
    assert [a.status for a in again] == [Ack.STATUS_DUPLICATE] * 6
    assert stored(sessions) == 5
    with sessions() as session:
        assert session.get(Device, device.device_id).records_received == 5  # type: ignore[union-attr]


def test_same_record_twice_in_one_batch_is_stored_once(
    ingestor: Ingestor, device: Dev, sessions: sessionmaker[Session]
) -> None:
    """A batch that repeats a record (a resend racing the original) stores it once."""
    record = seal(device)
    acks = ingestor.ingest_batch(device.device_id, [record, record])
    assert [a.status for a in acks] == [Ack.STATUS_STORED, Ack.STATUS_DUPLICATE]
    assert stored(sessions) == 1


def test_same_id_with_other_content_is_rejected(
    ingestor: Ingestor, device: Dev, sessions: sessionmaker[Session]
) -> None:
    """A different sealing under a used record id is refused, not silently overwritten."""
    ingestor.ingest_batch(device.device_id, [seal(device)])
    (ack,) = ingestor.ingest_batch(device.device_id, [seal(device)])  # same id, new ephemeral key
    assert (ack.status, ack.reason_code) == (Ack.STATUS_REJECTED, "record_id_conflict")
    assert stored(sessions) == 1


def test_tampered_record_is_rejected(
    ingestor: Ingestor, device: Dev, sessions: sessionmaker[Session]
) -> None:
    """One flipped ciphertext bit: rejected for its signature, nothing stored."""
    record = seal(device)
    record.ciphertext = record.ciphertext[:-1] + bytes([record.ciphertext[-1] ^ 1])
    (ack,) = ingestor.ingest_batch(device.device_id, [record])
    assert (ack.status, ack.reason_code) == (Ack.STATUS_REJECTED, "signature")
    assert "签名" in ack.reason
    assert stored(sessions) == 0


def test_record_signed_by_another_key_is_rejected(ingestor: Ingestor, device: Dev) -> None:
    """A record presented under this device's id but signed by another key is refused."""
    impostor = Dev(device.device_id, generate_device_key(), device.upload_public)
    (ack,) = ingestor.ingest_batch(device.device_id, [seal(impostor)])
    assert ack.reason_code == "signature"


def test_record_claiming_another_device_is_rejected(ingestor: Ingestor, device: Dev) -> None:
    """The device id inside a record must be the one of the certificate it came over."""
    (ack,) = ingestor.ingest_batch("370902001000-OTHER9", [seal(device)])
    assert ack.reason_code == "device_mismatch"


def test_record_for_another_township_is_rejected(ingestor: Ingestor, device: Dev) -> None:
    """A device uploads only records of its own township."""
    (ack,) = ingestor.ingest_batch(device.device_id, [seal(device, township="370902002000")])
    assert ack.reason_code == "wrong_township"


def test_record_sealed_to_an_unknown_key_is_unreadable(ingestor: Ingestor, device: Dev) -> None:
    """A record sealed to a key the centre does not hold is refused as unreadable."""
    foreign = Dev(device.device_id, device.key, upload_public_bytes(generate_upload_key()))
    (ack,) = ingestor.ingest_batch(device.device_id, [seal(foreign)])
    assert ack.reason_code == "unreadable"


def test_revoked_device_is_refused(
    ingestor: Ingestor, device: Dev, sessions: sessionmaker[Session]
) -> None:
    """After revocation nothing from the device is stored."""
    with sessions.begin() as session:
        session.get(Device, device.device_id).revoked_at = NOW  # type: ignore[union-attr]
    (ack,) = ingestor.ingest_batch(device.device_id, [seal(device)])
    assert ack.status == Ack.STATUS_REJECTED
    assert stored(sessions) == 0


def test_same_clerk_entering_and_reviewing_is_rejected(ingestor: Ingestor, device: Dev) -> None:
    """S-07: one enters, another reviews; the controller checks it again."""
    (ack,) = ingestor.ingest_batch(device.device_id, [seal(device, reviewed_by="clerk-a")])
    assert (ack.reason_code, ack.reason) == ("review", "录入人和审核人不能是同一人")
