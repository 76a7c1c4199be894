"""Replacing a broken device: its unacknowledged records travel sealed to the successor, which
cannot read them; the controller takes them only from the registered successor and stores them
as the old device's records (see controller/devices/replacement.py)."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Device, Record
from controller.devices.pki_store import ControllerPki
from controller.devices.replacement import register_succession
from controller.records.ingest import Ingestor
from edge.identity import Enrolment, IdentityStore
from edge.outbox import Outbox
from edge.simulators.collector import simulated_record
from muster.clock import VirtualClock
from muster.crypto import (
    content_hash,
    generate_device_key,
    private_key_pem,
    seal_record,
    upload_public_from_bytes,
)
from muster.crypto.pki import certificate_pem, load_certificate
from muster.errors import ConfigError
from muster.v1 import data_pb2
from provisioning.outbox_transfer import MAGIC, export_outbox, import_outbox
from tests.unit.conftest import NOW
from tests.unit.test_enrollment import enrol_directly

Ack = data_pb2.RecordAck
TOWNSHIP = "370902001000"


def enrol_device(
    sessions: sessionmaker[Session], pki: ControllerPki, state_dir: Path, township: str = TOWNSHIP
) -> str:
    """Enrol through the controller's Enroller and lay the state dir out as a device would."""
    key = generate_device_key()
    response = enrol_directly(sessions, pki, key, township=township)
    IdentityStore(state_dir).save(
        key_pem=private_key_pem(key),
        cert_pem=certificate_pem(load_certificate(response.certificate_der)),
        ca_pem=certificate_pem(pki.ca_cert),
        licence=response.licence,
        enrolment=Enrolment(
            device_id=response.device_id,
            township_code=township,
            profile="simulator",
            mqtt_url="mqtt://x:1",
            data_endpoint="x:2",
            licence_authority_key=response.licence_authority_key.hex(),
            fingerprint_salt="73" * 16,
            upload_keys={"1": response.upload_keys[0].x25519_public_key.hex()},
        ),
    )
    return response.device_id


def seal_into_outbox(state_dir: Path, count: int, *, acked: int = 0) -> list[str]:
    store = IdentityStore(state_dir)
    enrolment = store.enrolment()
    outbox = Outbox(state_dir / "outbox.sqlite3", clock=VirtualClock(NOW), min_disk_free_bytes=0)
    ids = []
    try:
        for seed in range(count):
            payload = simulated_record(random.Random(seed), enrolment.township_code, NOW)
            sealed = seal_record(
                payload.to_bytes(),
                record_id=payload.record_id,
                device_id=enrolment.device_id,
                schema_version=f"{payload.category.value}/{payload.form_version}",
                upload_key=upload_public_from_bytes(bytes.fromhex(enrolment.upload_keys["1"])),
                key_version=1,
                signing_key=store.device_key(),
                now=NOW,
            )
            outbox.add(sealed, content_hash(sealed))
            ids.append(payload.record_id)
        outbox.apply_acks([Ack(record_id=r, status=Ack.STATUS_STORED) for r in ids[:acked]])
    finally:
        outbox.close()
    return ids


def pending(state_dir: Path) -> list[data_pb2.SealedRecord]:
    outbox = Outbox(state_dir / "outbox.sqlite3", clock=VirtualClock(NOW), min_disk_free_bytes=0)
    try:
        return [data_pb2.SealedRecord.FromString(p.sealed) for p in outbox.pending(0, 10_000)]
    finally:
        outbox.close()


@pytest.fixture
def pair(
    sessions: sessionmaker[Session], pki: ControllerPki, tmp_path: Path
) -> tuple[Path, str, Path, str]:
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    old_id = enrol_device(sessions, pki, old_dir)
    new_id = enrol_device(sessions, pki, new_dir)
    return old_dir, old_id, new_dir, new_id


def test_unacked_records_reach_the_centre_through_the_successor(
    sessions: sessionmaker[Session],
    pki: ControllerPki,
    pair: tuple[Path, str, Path, str],
    tmp_path: Path,
) -> None:
    """Export takes only what the old device never got acknowledged; after import the new device
    uploads them, the controller stores them once each under the old device's id, and a second
    import adds nothing."""
    old_dir, old_id, new_dir, new_id = pair
    ids = seal_into_outbox(old_dir, 6, acked=2)
    register_succession(sessions, old_id, new_id, reason="屏幕损坏", by="t", now=NOW)
    export = export_outbox(old_dir, tmp_path / "old.outbox", now=NOW)
    assert export.records == 4
    result = import_outbox(tmp_path / "old.outbox", new_dir, clock=VirtualClock(NOW))
    assert (result.added, result.already_present) == (4, 0)
    assert import_outbox(tmp_path / "old.outbox", new_dir, clock=VirtualClock(NOW)).added == 0

    carried = pending(new_dir)
    assert {s.record_id for s in carried} == set(ids[2:])
    acks = Ingestor(sessions, pki.upload_keys, VirtualClock(NOW)).ingest_batch(new_id, carried)
    assert {a.status for a in acks} == {Ack.STATUS_STORED}
    with sessions() as session:
        stored = session.execute(select(Record.record_id, Record.device_id)).all()
        old = session.get(Device, old_id)
        assert old is not None and old.revoked_at is not None
    assert sorted(stored) == sorted((r, old_id) for r in ids[2:])


def test_the_successor_cannot_read_what_it_carries(
    pair: tuple[Path, str, Path, str], tmp_path: Path
) -> None:
    """The export holds ciphertext only: none of the plaintext is in the file, and the new
    device holds no key that opens it (only upload public keys)."""
    old_dir, _, new_dir, _ = pair
    seal_into_outbox(old_dir, 2)
    export_outbox(old_dir, tmp_path / "old.outbox", now=NOW)
    blob = (tmp_path / "old.outbox").read_bytes()
    payload = simulated_record(random.Random(0), TOWNSHIP, NOW)
    assert blob.startswith(MAGIC)
    assert payload.person.name.encode() not in blob
    assert payload.person.id_number.encode() not in blob
    assert sorted(p.name for p in (new_dir / "identity").iterdir()) == [
        "ca.crt",
        "device.crt",
        "device.key",
        "enrolment.json",
        "guard.sqlite3",  # the licence guard's pinned public anchor and markers, no key
        "licence",
    ]


def test_records_from_an_unregistered_device_are_refused(
    sessions: sessionmaker[Session],
    pki: ControllerPki,
    pair: tuple[Path, str, Path, str],
) -> None:
    """Without a registered succession another device's records are refused, not stored."""
    old_dir, _, _, new_id = pair
    seal_into_outbox(old_dir, 2)
    acks = Ingestor(sessions, pki.upload_keys, VirtualClock(NOW)).ingest_batch(
        new_id, pending(old_dir)
    )
    assert {a.reason_code for a in acks} == {"device_mismatch"}


def test_records_sealed_after_the_revocation_are_refused(
    sessions: sessionmaker[Session],
    pki: ControllerPki,
    pair: tuple[Path, str, Path, str],
) -> None:
    """The old key vouches only for what it sealed before it was revoked."""
    old_dir, old_id, _, new_id = pair
    seal_into_outbox(old_dir, 1)
    register_succession(
        sessions, old_id, new_id, reason="x", by="t", now=NOW - timedelta(minutes=1)
    )
    (ack,) = Ingestor(sessions, pki.upload_keys, VirtualClock(NOW)).ingest_batch(
        new_id, pending(old_dir)
    )
    assert ack.reason_code == "sealed_after_revocation"


def test_a_tampered_export_is_refused_whole(
    pair: tuple[Path, str, Path, str], tmp_path: Path
) -> None:
    """One changed byte in one record: the import refuses the file and adds nothing."""
    old_dir, _, new_dir, _ = pair
    seal_into_outbox(old_dir, 3)
    export_outbox(old_dir, tmp_path / "old.outbox", now=NOW)
    export = data_pb2.OutboxExport.FromString((tmp_path / "old.outbox").read_bytes()[len(MAGIC) :])
    export.records[1].ciphertext = (
        bytes([export.records[1].ciphertext[0] ^ 1]) + export.records[1].ciphertext[1:]
    )
    (tmp_path / "bad.outbox").write_bytes(MAGIC + export.SerializeToString())
    with pytest.raises(ConfigError, match="签名无效"):
        import_outbox(tmp_path / "bad.outbox", new_dir, clock=VirtualClock(NOW))
    assert pending(new_dir) == []


def test_succession_across_townships_is_refused(
    sessions: sessionmaker[Session], pki: ControllerPki, tmp_path: Path
) -> None:
    """A device of another township cannot take over; the old device stays unrevoked."""
    old_id = enrol_device(sessions, pki, tmp_path / "a")
    other_id = enrol_device(sessions, pki, tmp_path / "b", township="370902002000")
    with pytest.raises(ConfigError, match="同一乡镇"):
        register_succession(sessions, old_id, other_id, reason="x", by="t", now=NOW)
    with sessions() as session:
        old = session.get(Device, old_id)
        assert old is not None and old.revoked_at is None
