"""Ingest on PostgreSQL writes a batch's records with one COPY and SQLite with one executemany:
the stored rows read back as the ORM wrote them before (payload, times, review state), a resend
is a duplicate stored once, and two streams racing with the same records store each once."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from controller.db import make_engine, migrate, session_factory
from controller.db.models import Device, Record
from controller.devices.enrolment import publish_upload_keys
from controller.devices.pki_store import ControllerPki, ensure_controller_pki
from controller.records.ingest import Ingestor
from controller.records.record_insert import insert_records
from edge.simulators.collector import simulated_record
from muster.clock import VirtualClock
from muster.crypto import generate_device_key, seal_record, upload_public_from_bytes
from muster.records import RecordPayload
from muster.v1 import data_pb2
from tests.unit.conftest import NOW
from tests.unit.test_enrollment import enrol_directly

Ack = data_pb2.RecordAck


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'c.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def pki(tmp_path: Path) -> ControllerPki:
    return ensure_controller_pki(tmp_path / "ctl", ["127.0.0.1"], now=NOW)


@pytest.fixture
def sessions(url: str, pki: ControllerPki) -> Iterator[sessionmaker[Session]]:
    migrate(url)
    engine = make_engine(url)
    factory = session_factory(engine)
    with factory.begin() as session:
        publish_upload_keys(session, pki, NOW)
    yield factory
    engine.dispose()


def _batch(
    sessions: sessionmaker[Session], pki: ControllerPki, count: int
) -> tuple[str, list[data_pb2.SealedRecord], list[RecordPayload]]:
    key = generate_device_key()
    response = enrol_directly(sessions, pki, key)
    upload = upload_public_from_bytes(response.upload_keys[0].x25519_public_key)
    rng = random.Random(7)
    payloads = [simulated_record(rng, "370902001000", NOW) for _ in range(count)]
    sealed = [
        seal_record(
            p.to_bytes(),
            record_id=p.record_id,
            device_id=response.device_id,
            schema_version=f"{p.category.value}/{p.form_version}",
            upload_key=upload,
            key_version=1,
            signing_key=key,
            now=NOW,
        )
        for p in payloads
    ]
    return response.device_id, sealed, payloads


def test_a_batch_is_stored_as_before_and_a_resend_is_a_duplicate(
    sessions: sessionmaker[Session], pki: ControllerPki
) -> None:
    device_id, sealed, payloads = _batch(sessions, pki, 40)
    ingestor = Ingestor(sessions, pki.upload_keys, VirtualClock(NOW))
    acks = ingestor.ingest_batch(device_id, sealed)
    assert [a.status for a in acks] == [Ack.STATUS_STORED] * 40
    with sessions() as session:
        rows = {r.record_id: r for r in session.scalars(select(Record))}
        device = session.get(Device, device_id)
        assert device is not None and device.records_received == 40
    assert set(rows) == {p.record_id for p in payloads}
    for payload in payloads:
        row = rows[payload.record_id]
        assert row.payload == payload.model_dump(mode="json")
        assert row.received_at == NOW and row.sealed_at == NOW
        assert row.review_status == "collected" and row.approved_level == ""
        assert row.id_number == payload.person.id_number
        assert row.township_code == "370902001000" and row.device_id == device_id
    again = ingestor.ingest_batch(device_id, sealed)
    assert [a.status for a in again] == [Ack.STATUS_DUPLICATE] * 40
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Record)) == 40


def test_a_record_id_stored_meanwhile_fails_the_insert_as_an_integrity_error(
    sessions: sessionmaker[Session], pki: ControllerPki
) -> None:
    """What ingest retries on: the loser of a race sees SQLAlchemy's IntegrityError, and its
    transaction leaves nothing behind."""
    device_id, sealed, _payloads = _batch(sessions, pki, 3)
    Ingestor(sessions, pki.upload_keys, VirtualClock(NOW)).ingest_batch(device_id, sealed[:1])
    with sessions() as session:
        stored = session.scalars(select(Record)).one()
        row = {
            "record_id": stored.record_id,
            "device_id": device_id,
            "content_hash": stored.content_hash,
            "schema_version": stored.schema_version,
            "key_version": 1,
            "township_code": stored.township_code,
            "category": stored.category,
            "sealed_at": NOW,
            "received_at": NOW,
            "payload": "{}",
            "id_number": stored.id_number,
        }
    fresh = {**row, "record_id": "00000000-0000-4000-8000-000000000000"}
    with pytest.raises(IntegrityError), sessions.begin() as session:
        insert_records(session, [fresh, row])
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Record)) == 1


def test_two_streams_racing_with_the_same_records_store_each_once(
    sessions: sessionmaker[Session], pki: ControllerPki
) -> None:
    device_id, sealed, _payloads = _batch(sessions, pki, 60)
    ingestor = Ingestor(sessions, pki.upload_keys, VirtualClock(NOW))
    start = threading.Barrier(2)
    results: list[list[data_pb2.RecordAck]] = []

    def stream() -> None:
        start.wait()
        results.append(ingestor.ingest_batch(device_id, sealed))

    threads = [threading.Thread(target=stream) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2
    for position in range(60):
        got = sorted(acks[position].status for acks in results)
        assert got == sorted([Ack.STATUS_STORED, Ack.STATUS_DUPLICATE]), got
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Record)) == 60
