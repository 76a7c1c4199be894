"""Attacks on the device's licence guard and on the centre's ingest and telemetry, in virtual
time: each replays the attack, sees it refused with a clear reason, and checks that nothing
else changed. (The same attacks over the real servers and broker: tests/integration.)"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Attachment, Device, Record
from controller.demo.simulated_fleet import register_simulated
from controller.devices.pki_store import ControllerPki
from controller.devices.revocation import revoke_device
from controller.fleet.telemetry_consumer import TelemetryConsumer
from controller.fleet.telemetry_store import DeviceStateStore
from controller.records.attachment_chunks import ChunkQuota, ChunkSweeper
from controller.records.ingest import Ingestor
from controller.settings import ControllerSettings
from edge.identity import IdentityStore
from edge.outbox import Outbox
from edge.simulators.collector import simulated_record
from muster.clock import VirtualClock
from muster.crypto import (
    generate_device_key,
    generate_licence_authority_key,
    licence_public_bytes,
    seal_attachment,
    seal_record,
    upload_public_from_bytes,
)
from muster.fleet_layout import simulated_device
from muster.licence import sign_licence
from muster.records import describe_attachment
from muster.v1 import data_pb2, device_pb2
from tests.unit.conftest import NOW
from tests.unit.test_enrollment import enrol_directly
from tests.unit.test_ingest import Dev, seal
from tests.unit.test_licence_guard_clock import ISSUED, guard, licence
from tests.unit.test_licence_guard_clock import store as store  # the fixture

Ack = data_pb2.RecordAck


# --- the device's licence guard ---------------------------------------------------------------


def test_deleting_the_high_water_file_does_not_hide_a_rollback(store: IdentityStore) -> None:
    """Attack: the clock is turned back a day and ``clock.hwm`` deleted to hide it. Refused:
    the ledger's copy still knows the later time (clock_rollback), and the file is restored."""
    clock = VirtualClock(ISSUED + timedelta(days=10))
    assert guard(store, clock).check().allowed
    (store.directory / "clock.hwm").unlink()
    clock.set_wall(ISSUED + timedelta(days=9))
    verdict = guard(store, clock).check()
    assert (verdict.allowed, verdict.reason) == (False, "clock_rollback")


def test_deleting_both_marks_does_not_hide_a_rollback_the_outbox_shows(
    store: IdentityStore, tmp_path: Path
) -> None:
    """Attack: both high-water copies deleted, clock turned back behind records already sealed.
    Refused: the outbox's newest seal time is the evidence (clock_rollback)."""
    clock = VirtualClock(ISSUED + timedelta(days=10))
    outbox = Outbox(tmp_path / "outbox.sqlite3", clock=clock)
    record = data_pb2.SealedRecord(record_id="00000000-0000-4000-8000-000000000001")
    outbox.add(record, "h" * 64)
    outbox.close()
    assert guard(store, clock).check().allowed
    (store.directory / "clock.hwm").unlink()
    store.ledger.path.unlink()
    clock.set_wall(ISSUED + timedelta(days=3))
    verdict = guard(store, clock).check()
    assert (verdict.allowed, verdict.reason) == (False, "clock_rollback")


def test_deleting_the_revoked_marker_does_not_restore_collection(store: IdentityStore) -> None:
    """Attack: after the controller revoked the device, the ``revoked`` file is deleted.
    Refused: the ledger still says revoked; the file is written again."""
    clock = VirtualClock(ISSUED + timedelta(days=1))
    licence_guard = guard(store, clock)
    licence_guard.mark_revoked()
    (store.directory / "revoked").unlink()
    verdict = guard(store, clock).check()
    assert (verdict.allowed, verdict.reason) == (False, "revoked")
    assert (store.directory / "revoked").exists()


def test_a_forged_licence_under_a_swapped_anchor_is_tampered(store: IdentityStore) -> None:
    """Attack: the licence authority key in the writable enrolment.json is replaced by the
    attacker's, and a ten-year licence signed with it put beside it. Refused: the guard checks
    against the anchor pinned at enrolment and says tampered; the pin is unchanged."""
    clock = VirtualClock(ISSUED + timedelta(days=400))  # the real licence has expired
    assert guard(store, clock).check().reason == "expired"
    pinned = store.pinned_authority_key()
    forger = generate_licence_authority_key()
    forged = licence(days=3650, serial="ff")
    store.licence_path.write_bytes(sign_licence(forged, forger))
    data = json.loads(store.enrolment_path.read_text())
    data["licence_authority_key"] = licence_public_bytes(forger).hex()
    store.enrolment_path.write_text(json.dumps(data))
    verdict = guard(store, clock).check()
    assert (verdict.allowed, verdict.reason) == (False, "tampered")
    assert "根密钥" in verdict.message
    assert store.pinned_authority_key() == pinned


# --- the centre's ingest: orphan chunks -------------------------------------------------------


@pytest.fixture
def device(sessions: sessionmaker[Session], pki: ControllerPki) -> Dev:
    key = generate_device_key()
    response = enrol_directly(sessions, pki, key)
    return Dev(response.device_id, key, response.upload_keys[0].x25519_public_key)


def orphan_chunks(dev: Dev, records: int, size: int = 1000) -> list[data_pb2.AttachmentChunk]:
    rng = random.Random(4)
    chunks: list[data_pb2.AttachmentChunk] = []
    for n in range(records):
        chunks += seal_attachment(
            rng.randbytes(size),
            record_id=f"{n:08x}-0000-4000-8000-000000000000",
            device_id=dev.device_id,
            name="photo.jpg",
            upload_key=upload_public_from_bytes(dev.upload_public),
            key_version=1,
        )
    return chunks


def unclaimed(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions() as session:
        count, size = session.execute(
            select(func.count(), func.coalesce(func.sum(func.length(Attachment.ciphertext)), 0))
        ).one()
    return int(count), int(size)


def test_orphan_chunks_stop_at_the_quota_in_count_and_bytes(
    sessions: sessionmaker[Session], pki: ControllerPki, device: Dev
) -> None:
    """Attack: chunks for records that never come, past the device's quota. Refused: only the
    quota is kept, by count and by bytes; a record in the same batch is still stored."""
    clock = VirtualClock(NOW)
    by_count = Ingestor(sessions, pki.upload_keys, clock, quota=ChunkQuota(max_chunks=5))
    acks = by_count.ingest_batch(device.device_id, [seal(device, 1)], orphan_chunks(device, 9))
    assert [a.status for a in acks] == [Ack.STATUS_STORED]
    assert unclaimed(sessions)[0] == 5
    by_bytes = Ingestor(
        sessions, pki.upload_keys, clock, quota=ChunkQuota(max_chunks=100, max_bytes=7 * 1016)
    )
    by_bytes.ingest_batch(device.device_id, [], orphan_chunks(device, 9))
    count, size = unclaimed(sessions)
    assert count == 7 and size <= 7 * 1016


def test_a_record_whose_chunk_was_over_quota_says_so(
    sessions: sessionmaker[Session], pki: ControllerPki, device: Dev
) -> None:
    """A record whose own chunk was refused over the quota is not stored and gets
    ``chunk_quota`` (incomplete, the device keeps it) with a reason it can show."""
    clock = VirtualClock(NOW)
    ingestor = Ingestor(sessions, pki.upload_keys, clock, quota=ChunkQuota(max_chunks=2))
    ingestor.ingest_batch(device.device_id, [], orphan_chunks(device, 2))
    photo = random.Random(5).randbytes(500)
    payload = simulated_record(random.Random(7), "370902001000", NOW).model_copy(
        update={"attachments": {"photo.jpg": describe_attachment("photo.jpg", photo)}}
    )
    record = seal_record(
        payload.to_bytes(),
        record_id=payload.record_id,
        device_id=device.device_id,
        schema_version=f"{payload.category.value}/{payload.form_version}",
        upload_key=upload_public_from_bytes(device.upload_public),
        key_version=1,
        signing_key=device.key,
        now=NOW,
    )
    chunks = seal_attachment(
        photo,
        record_id=payload.record_id,
        device_id=device.device_id,
        name="photo.jpg",
        upload_key=upload_public_from_bytes(device.upload_public),
        key_version=1,
    )
    (ack,) = ingestor.ingest_batch(device.device_id, [record], chunks)
    assert (ack.status, ack.reason_code) == (Ack.STATUS_INCOMPLETE, "chunk_quota")
    assert "上限" in ack.reason
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Record)) == 0


async def test_unclaimed_chunks_expire_on_the_clock(
    sessions: sessionmaker[Session], pki: ControllerPki, device: Dev
) -> None:
    """Orphan chunks older than ``expire_after`` are swept on the controller's clock (virtual
    here: a week passes in no time); younger ones and verified ones stay."""
    clock = VirtualClock(NOW)
    ingestor = Ingestor(
        sessions, pki.upload_keys, clock, quota=ChunkQuota(expire_after=timedelta(days=7))
    )
    ingestor.ingest_batch(device.device_id, [], orphan_chunks(device, 3))
    sweeper = ChunkSweeper(ingestor, clock, every_s=3600)
    task = asyncio.create_task(sweeper.run())
    try:
        await clock.wait_for_sleepers(1, timeout_s=5)
        await clock.advance(6 * 86400, sleepers=1)
        assert await settled(lambda: unclaimed(sessions)[0] == 3)
        await clock.advance(2 * 86400, sleepers=1)
        assert await settled(lambda: unclaimed(sessions)[0] == 0), "not swept after 8 days"
    finally:
        task.cancel()


async def settled(condition: Callable[[], bool]) -> bool:
    """The sweep runs in a worker thread: give it real moments to finish (at most 5 s)."""
    for _ in range(250):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


# --- the centre's telemetry: a revoked device -------------------------------------------------


class CountingStore(DeviceStateStore):
    queries = 0

    def revoked_devices(self) -> frozenset[str]:
        self.queries += 1
        return super().revoked_devices()


def test_a_revoked_devices_messages_are_dropped_without_a_query_each(
    sessions: sessionmaker[Session], device: Dev, tmp_path: Path
) -> None:
    """Attack: a revoked device floods heartbeats. Refused: each is dropped on arrival from the
    cached revoked set (one query per refresh, not per message), counted, and nothing of the
    device's state changes."""
    clock = VirtualClock(NOW)
    store = CountingStore(sessions, clock)
    consumer = TelemetryConsumer(ControllerSettings(data_dir=tmp_path), store, clock)
    revoke_device(sessions, device.device_id, reason="stolen", by="t", now=NOW)
    consumer.refresh_revoked()
    beat = device_pb2.Heartbeat(sequence=5, outbox_depth=7).SerializeToString()
    for _ in range(1000):
        assert not consumer.receive(device.device_id, "telemetry", beat)
    assert store.queries == 1
    assert consumer.messages_from_revoked == 1000 and consumer.pending == 0


def test_a_batch_applied_after_the_revocation_changes_nothing(
    sessions: sessionmaker[Session], device: Dev
) -> None:
    """Messages already buffered when the revocation lands are dropped when applied: the store
    checks ``revoked_at`` in the same SELECT that reads the batch's devices."""
    clock = VirtualClock(NOW)
    store = DeviceStateStore(sessions, clock)
    revoke_device(sessions, device.device_id, reason="stolen", by="t", now=NOW)
    beat = device_pb2.Heartbeat(sequence=5, outbox_depth=7).SerializeToString()
    assert store.apply([(device.device_id, "telemetry", beat)]) == 0
    assert store.dropped_revoked == 1
    with sessions() as session:
        row = session.get(Device, device.device_id)
        assert row is not None and row.heartbeat_sequence == 0 and row.outbox_depth == 0


def _hostile_telemetry(device_id: str) -> list[tuple[str, str, bytes]]:
    """Messages a device's broker session can publish that protobuf decodes but a datetime or
    an enum cannot hold: timestamps outside 0001-9999, enum values no release defines."""
    far = 2**62
    beat = device_pb2.Heartbeat(sequence=9, outbox_depth=1, reader=99, camera=-5)
    beat.sent_at.seconds = far
    beat.last_card_read.seconds = -far
    status = device_pb2.DeviceStatus(device_id=device_id, state=77)
    status.since.seconds = far
    event = device_pb2.Event(device_id=device_id, kind=1234, message="x")
    event.at.seconds = -far
    ack = device_pb2.CommandAck(command_id="c", result=55)
    ack.at.seconds = far
    return [
        (device_id, kind, message.SerializeToString())
        for kind, message in (
            ("telemetry", beat),
            ("status", status),
            ("event", event),
            ("ack", ack),
        )
    ]


def test_impossible_timestamps_and_enum_values_do_not_stall_the_fleet_s_telemetry(
    sessions: sessionmaker[Session], device: Dev, tmp_path: Path
) -> None:
    """Attack: one device publishes a heartbeat, a status, an event and an ack whose timestamps
    are ±2^62 s and whose enum values no release has. They used to raise out of the batch, which
    was given back and failed again at every flush, so no device's telemetry was applied any
    more. Now each is taken for what can be read of it (an impossible time as none, an unknown
    enum by its number), and another device's beat in the same batch is applied."""
    clock = VirtualClock(NOW)
    store = DeviceStateStore(sessions, clock)
    consumer = TelemetryConsumer(ControllerSettings(data_dir=tmp_path), store, clock)
    register_simulated(sessions, 1, now=NOW)
    other = simulated_device(0).device_id
    for message in _hostile_telemetry(device.device_id):
        consumer.receive(*message)
    consumer.receive(other, "telemetry", device_pb2.Heartbeat(sequence=1).SerializeToString())
    assert asyncio.run(consumer.flush())
    assert consumer.pending == 0
    with sessions() as session:
        row = session.get(Device, device.device_id)
        assert row is not None
        assert row.heartbeat_sequence == 9 and row.last_seen == NOW
        assert row.last_heartbeat["reader"] == "99" and row.last_heartbeat["camera"] == "-5"
        assert row.last_heartbeat["sent_at"] == NOW.isoformat()  # as if the device sent none
        assert row.last_heartbeat["last_card_read"] == ""
        assert session.get(Device, other).heartbeat_sequence == 1  # type: ignore[union-attr]
