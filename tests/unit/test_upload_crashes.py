"""Nothing lost, nothing doubled (S-08): any sequence of device crashes, controller crashes and
lost messages, at any point of the upload protocol, ends with every sealed record stored exactly
once and acked. Drives the REAL outbox (SQLite file) and the REAL ingestor (migrated SQLite
database) through a lossy link modelled as a state machine; a crash closes and reopens the
process's durable state and forgets everything it held in memory."""

from __future__ import annotations

import random
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from controller.db import make_engine, migrate, session_factory
from controller.db.models import Device, Record
from controller.devices.enrolment import publish_upload_keys
from controller.devices.pki_store import ControllerPki, ensure_controller_pki
from controller.records.ingest import Ingestor
from edge.outbox import Outbox
from edge.simulators.collector import simulated_record
from muster.clock import VirtualClock
from muster.crypto import content_hash, generate_device_key, seal_record, upload_public_from_bytes
from muster.v1 import data_pb2
from tests.unit.conftest import NOW
from tests.unit.test_enrollment import enrol_directly

POOL = 60


class World:
    """What survives between examples: a migrated database, an enrolled device, sealed records."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pki: ControllerPki = ensure_controller_pki(directory / "ctl", ["127.0.0.1"], now=NOW)
        self.url = f"sqlite:///{directory / 'controller.db'}"
        migrate(self.url)
        engine = make_engine(self.url)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            publish_upload_keys(session, self.pki, NOW)
        key = generate_device_key()
        response = enrol_directly(sessions, self.pki, key)
        engine.dispose()
        self.device_id = response.device_id
        upload = upload_public_from_bytes(response.upload_keys[0].x25519_public_key)
        rng = random.Random(3)
        self.pool: list[data_pb2.SealedRecord] = []
        for _ in range(POOL):
            payload = simulated_record(rng, "370902001000", NOW)
            self.pool.append(
                seal_record(
                    payload.to_bytes(),
                    record_id=payload.record_id,
                    device_id=self.device_id,
                    schema_version=f"{payload.category.value}/{payload.form_version}",
                    upload_key=upload,
                    key_version=1,
                    signing_key=key,
                    now=NOW,
                )
            )
        self.examples = 0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("crashes"))


class UploadProtocol(RuleBasedStateMachine):
    world: World

    def __init__(self) -> None:
        super().__init__()
        w = self.world
        w.examples += 1
        self.outbox_path = w.directory / f"outbox-{w.examples}.sqlite3"
        self.outbox = Outbox(self.outbox_path, clock=VirtualClock(NOW))
        self.engine: Engine = make_engine(w.url)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        with self.sessions.begin() as session:
            session.execute(delete(Record))
            session.execute(
                update(Device).where(Device.id == w.device_id).values(records_received=0)
            )
        self.ingestor = Ingestor(self.sessions, self.world.pki.upload_keys, VirtualClock(NOW))
        self.sealed = 0
        self.cursor = 0  # the device's in-memory position in its outbox
        self.to_controller: list[list[data_pb2.SealedRecord]] = []
        self.to_device: list[list[data_pb2.RecordAck]] = []

    # --- the device ---------------------------------------------------------------------------

    @precondition(lambda self: self.sealed < POOL)
    @rule(n=st.integers(1, 8))
    def seal(self, n: int) -> None:
        for record in self.world.pool[self.sealed : self.sealed + n]:
            self.outbox.add(record, content_hash(record))
            self.sealed += 1

    @rule(limit=st.integers(1, 16))
    def send(self, limit: int) -> None:
        batch = self.outbox.pending(self.cursor, limit)
        if batch:
            self.cursor = batch[-1].seq
            self.to_controller.append(
                [data_pb2.SealedRecord.FromString(item.sealed) for item in batch]
            )

    @precondition(lambda self: bool(self.to_device))
    @rule()
    def receive_acks(self) -> None:
        self.outbox.apply_acks(self.to_device.pop(0))

    @rule()
    def crash_device(self) -> None:
        """kill -9 of the daemon: the outbox file stays, memory and the stream are gone."""
        self.outbox.close()
        self.outbox = Outbox(self.outbox_path, clock=VirtualClock(NOW))
        self.cursor = 0
        self.to_controller.clear()
        self.to_device.clear()

    @rule()
    def reconnect(self) -> None:
        """The stream broke and was reopened: everything not yet acked is sent again."""
        self.cursor = 0
        self.to_controller.clear()
        self.to_device.clear()

    # --- the controller and the link ----------------------------------------------------------

    @precondition(lambda self: bool(self.to_controller))
    @rule(lose_ack=st.booleans())
    def ingest(self, lose_ack: bool) -> None:
        acks = self.ingestor.ingest_batch(self.world.device_id, self.to_controller.pop(0))
        if not lose_ack:
            self.to_device.append(acks)

    @precondition(lambda self: bool(self.to_controller))
    @rule()
    def lose_request(self) -> None:
        self.to_controller.pop(0)

    @rule()
    def crash_controller(self) -> None:
        """kill -9 of the controller: committed rows stay, everything in flight is gone."""
        self.engine.dispose()
        self.engine = make_engine(self.world.url)
        self.sessions = session_factory(self.engine)
        self.ingestor = Ingestor(self.sessions, self.world.pki.upload_keys, VirtualClock(NOW))
        self.to_controller.clear()
        self.to_device.clear()

    # --- what must always hold ----------------------------------------------------------------

    def stored(self) -> dict[str, str]:
        with self.sessions() as session:
            return dict(session.execute(select(Record.record_id, Record.content_hash)).all())

    @invariant()
    def acked_means_stored(self) -> None:
        stored = self.stored()
        sealed = {r.record_id: content_hash(r) for r in self.world.pool[: self.sealed]}
        assert set(stored) <= set(sealed)
        assert all(sealed[i] == h for i, h in stored.items())
        stats = self.outbox.stats()
        assert stats.acked <= len(stored)
        assert stats.rejected == 0

    def teardown(self) -> None:
        try:
            # The link heals: the device keeps sending until its outbox is empty.
            for _ in range(POOL):
                if self.outbox.stats().pending == 0:
                    break
                self.reconnect()
                self.send(POOL)
                self.ingest(False)
                self.receive_acks()
            stats = self.outbox.stats()
            stored = self.stored()
            assert stats.pending == 0 and stats.acked == self.sealed
            assert set(stored) == {r.record_id for r in self.world.pool[: self.sealed]}
            with self.sessions() as session:
                received = session.scalar(
                    select(Device.records_received).where(Device.id == self.world.device_id)
                )
                rows = session.scalar(select(func.count()).select_from(Record))
            assert received == rows == self.sealed  # stored once each, counted once each
        finally:
            self.outbox.close()
            self.engine.dispose()


def test_any_crash_sequence_stores_every_record_exactly_once(world: World) -> None:
    """Hypothesis explores sequences of sealing, sending, losing, crashing and acking; every one
    ends with the outbox empty and each sealed record stored and counted exactly once."""
    UploadProtocol.world = world
    run = UploadProtocol.TestCase
    run.settings = settings(
        max_examples=40,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    run().runTest()
