"""Attacks by a device (or whoever holds its key) against the real controller servers over
mutual TLS and the real database (SQLite, and PostgreSQL where a bug was PostgreSQL's), and
against the real Mosquitto broker. Each test replays the attack, sees it refused with a clear
reason, and checks that nothing else changed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from controller.accounts.clerks import add_clerk
from controller.db import make_engine, migrate, session_factory
from controller.db.models import (
    Attachment,
    Device,
    DeviceEvent,
    FingerprintChange,
    LicenceGrant,
    Record,
)
from controller.devices.broker_bans import BrokerBans
from controller.devices.enrolment import Enroller, publish_upload_keys
from controller.devices.pki_store import ControllerPki, ensure_controller_pki
from controller.devices.revocation import CrlPublisher, revoke_device, write_crl
from controller.fleet.telemetry_consumer import TelemetryConsumer
from controller.fleet.telemetry_store import DeviceStateStore
from controller.records.ingest import Ingestor
from controller.rpc.servers import build_servers
from controller.settings import ControllerSettings
from edge.simulators.collector import simulated_record
from muster import topics
from muster.clock import VirtualClock
from muster.crypto import (
    DeviceKey,
    generate_device_key,
    private_key_pem,
    seal_record,
    upload_public_from_bytes,
    write_private_key,
    write_public_file,
)
from muster.crypto.pki import certificate_pem, load_certificate
from muster.records import RecordPayload
from muster.topics import Kind
from muster.v1 import data_pb2, data_pb2_grpc, device_pb2, enrollment_pb2
from tests.fixtures.components import free_port
from tests.fixtures.secure_broker import SecureBrokerFactory
from tests.integration.test_broker_acl import Peer
from tests.unit.test_enrollment import FINGERPRINT, enrol_directly
from tests.unit.test_record_hostile import number_field

TOWNSHIP = "370902001000"
# Bytes no protobuf message parses: field 1, length-delimited, claiming more bytes than follow.
GARBAGE = b"\x0a\xff\xff\xff\xff\x0f\x00"


@dataclass
class Centre:
    """A controller's gRPC servers on loopback over one database, and one enrolled device."""

    sessions: sessionmaker[Session]
    pki: ControllerPki
    clock: VirtualClock
    settings: ControllerSettings
    device_id: str
    device_key: DeviceKey
    device_cert_pem: bytes
    upload_public: bytes

    def channel(self) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.pki.ca_cert_path.read_bytes(),
            private_key=private_key_pem(self.device_key),
            certificate_chain=self.device_cert_pem,
        )
        return grpc.aio.secure_channel(f"127.0.0.1:{self.settings.data_port}", credentials)

    def enrol_channel(self) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.pki.ca_cert_path.read_bytes()
        )
        return grpc.aio.secure_channel(f"127.0.0.1:{self.settings.enrol_port}", credentials)

    def seal(
        self, payload: RecordPayload | None = None, *, seed: int = 1, **envelope: object
    ) -> data_pb2.SealedRecord:
        payload = payload or simulated_record(random.Random(seed), TOWNSHIP, self.clock.now())
        return self.seal_bytes(payload.to_bytes(), payload, **envelope)

    def seal_bytes(
        self, plaintext: bytes, payload: RecordPayload, **envelope: object
    ) -> data_pb2.SealedRecord:
        sealed = seal_record(
            plaintext,
            record_id=str(envelope.pop("record_id", payload.record_id)),
            device_id=self.device_id,
            schema_version=f"{payload.category.value}/{payload.form_version}",
            upload_key=upload_public_from_bytes(self.upload_public),
            key_version=1,
            signing_key=self.device_key,
            now=self.clock.now(),
        )
        return sealed

    def stored(self) -> set[str]:
        with self.sessions() as session:
            return set(session.scalars(select(Record.record_id)))

    def device(self) -> Device:
        with self.sessions() as session:
            device = session.get(Device, self.device_id)
            assert device is not None
            session.expunge(device)
            return device


def _database(url: str, pki: ControllerPki, now: datetime) -> sessionmaker[Session]:
    migrate(url)
    sessions = session_factory(make_engine(url))
    with sessions.begin() as session:
        publish_upload_keys(session, pki, now)
    return sessions


async def _running_centre(url: str, tmp_path: Path) -> AsyncIterator[Centre]:
    # TLS checks certificates against the real time, so the centre's clock starts there.
    clock = VirtualClock(datetime.now(UTC).replace(microsecond=0))
    pki = ensure_controller_pki(tmp_path / "ctl", ["127.0.0.1", "localhost"], now=clock.now())
    sessions = _database(url, pki, clock.now())
    key = generate_device_key()
    response = enrol_directly(sessions, pki, key, township=TOWNSHIP, now=clock.now())
    cert_pem = certificate_pem(load_certificate(response.certificate_der))
    settings = ControllerSettings(
        data_dir=tmp_path / "ctl", enrol_port=free_port(), data_port=free_port()
    )
    enroller = Enroller(
        sessions,
        pki,
        licence_days=30,
        mqtt_url="mqtt://x:1",
        data_endpoint="x:2",
        clock=clock,
    )
    ingestor = Ingestor(sessions, dict(pki.upload_keys), clock)
    servers = build_servers(settings, pki, sessions, enroller, ingestor, clock)
    for server in servers:
        await server.start()
    try:
        yield Centre(
            sessions,
            pki,
            clock,
            settings,
            response.device_id,
            key,
            cert_pem,
            response.upload_keys[0].x25519_public_key,
        )
    finally:
        for server in servers:
            await server.stop(None)
        sessions.kw["bind"].dispose()


@pytest.fixture
async def centre(tmp_path: Path) -> AsyncIterator[Centre]:
    async for running in _running_centre(f"sqlite:///{tmp_path / 'controller.db'}", tmp_path):
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_centre(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Centre]:
    """The same centre on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'controller.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    async for running in _running_centre(url, tmp_path):
        yield running


async def upload(centre: Centre, *requests: data_pb2.UploadRequest) -> list[data_pb2.RecordAck]:
    async with centre.channel() as channel:
        call = data_pb2_grpc.UploadsStub(channel).Upload(iter(requests), timeout=20)
        acks: list[data_pb2.RecordAck] = []
        async for response in call:
            acks.extend(response.acks.acks if response.HasField("acks") else [response.ack])
        return acks


def batch(*records: data_pb2.SealedRecord) -> data_pb2.UploadRequest:
    return data_pb2.UploadRequest(batch=data_pb2.RecordBatch(records=records))


def health_request() -> data_pb2.HealthRequest:
    return data_pb2.HealthRequest(fingerprint=enrollment_pb2.HardwareFingerprint(**FINGERPRINT))


# --- 1. a revoked device ----------------------------------------------------------------------


async def test_a_revoked_device_learns_only_that_it_is_revoked(centre: Centre) -> None:
    """Attack: a device revoked at the centre keeps calling Health to harvest the township's
    clerks (scrypt hashes) and returned records (ID numbers, names). Refused: the answer says
    revoked and carries nothing else; before the revocation the same call carried both."""
    with centre.sessions.begin() as session:
        add_clerk(
            session,
            township_code=TOWNSHIP,
            username="clerk1",
            display_name="张三",
            password="s3cret-passw0rd",
            now=centre.clock.now(),
        )
    async with centre.channel() as channel:
        before = await data_pb2_grpc.DeviceStub(channel).Health(health_request(), timeout=10)
    assert before.clerks and before.upload_keys and not before.revoked
    revoke_device(
        centre.sessions, centre.device_id, reason="stolen", by="admin", now=centre.clock.now()
    )
    async with centre.channel() as channel:
        after = await data_pb2_grpc.DeviceStub(channel).Health(health_request(), timeout=10)
    assert after.revoked
    bare = data_pb2.HealthResponse(revoked=True)
    bare.server_time.CopyFrom(after.server_time)
    assert after == bare, "a revoked device's Health answer carries more than 'revoked'"


async def test_a_revoked_device_can_neither_upload_pull_nor_renew(centre: Centre) -> None:
    """Attack: the revoked device uploads a record, pulls its township's slice and asks for a
    new licence. Refused: PERMISSION_DENIED saying it is revoked, nothing stored or granted."""
    revoke_device(
        centre.sessions, centre.device_id, reason="stolen", by="admin", now=centre.clock.now()
    )
    with centre.sessions() as session:
        grants = session.scalar(select(func.count()).select_from(LicenceGrant))
    async with centre.channel() as channel:
        calls = {
            "upload": lambda: upload(centre, batch(centre.seal())),
            "slices": lambda: _drain(
                data_pb2_grpc.SlicesStub(channel).Pull(data_pb2.SliceRequest())
            ),
            "renew": lambda: data_pb2_grpc.DeviceStub(channel).RenewLicence(
                data_pb2.RenewLicenceRequest(
                    fingerprint=enrollment_pb2.HardwareFingerprint(**FINGERPRINT)
                ),
                timeout=10,
            ),
        }
        for name, call in calls.items():
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call()
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, name
            assert "吊销" in (refused.value.details() or ""), name
    assert centre.stored() == set()
    with centre.sessions() as session:
        assert session.scalar(select(func.count()).select_from(LicenceGrant)) == grants


async def _drain(call: grpc.aio.UnaryStreamCall[object, object]) -> None:
    async for _ in call:
        pass


# --- 2. one bad record in a batch -------------------------------------------------------------


def _nan_record(centre: Centre) -> data_pb2.SealedRecord:
    for seed in range(100):
        payload = simulated_record(random.Random(seed + 1000), TOWNSHIP, centre.clock.now())
        try:
            key = number_field(payload.category.value)
        except StopIteration:
            continue
        data = json.loads(payload.to_bytes())
        data["fields"][key] = 1
        text = json.dumps(data).replace(f'"{key}": 1', f'"{key}": NaN')
        return centre.seal_bytes(text.encode(), payload)
    raise AssertionError("no category with a number field")


async def test_bad_records_are_rejected_alone_and_the_good_ones_stored(any_centre: Centre) -> None:
    """Attack: one batch mixes good records with a NaN number, a 41-character record id (a
    DataError for the whole batch on PostgreSQL before), a record of garbage ciphertext and
    a record with no envelope at all, and one sealed at an impossible time. Refused: each bad one alone, with its reason; the good
    ones are stored once and counted once."""
    centre = any_centre
    good = [centre.seal(seed=seed) for seed in range(3)]
    nan = _nan_record(centre)
    long_id = centre.seal(seed=10, record_id="x" * 41)
    garbage = centre.seal(seed=11)
    garbage.ciphertext = b"\x00" * len(garbage.ciphertext)
    empty = data_pb2.SealedRecord(record_id="00000000-0000-4000-8000-000000000000")
    far = centre.seal(seed=12)
    far.sealed_at.seconds = 2**62  # no datetime holds it: it raised out of the whole batch
    acks = await upload(centre, batch(good[0], nan, long_id, good[1], garbage, empty, far, good[2]))
    by_id = {ack.record_id: ack for ack in acks}
    Ack = data_pb2.RecordAck
    assert [by_id[s.record_id].status for s in good] == [Ack.STATUS_STORED] * 3
    assert by_id[nan.record_id].status == Ack.STATUS_REJECTED
    assert by_id[nan.record_id].reason_code == "form" and "数字" in by_id[nan.record_id].reason
    assert by_id["x" * 41].reason_code == "malformed" and "UUID" in by_id["x" * 41].reason
    assert by_id[garbage.record_id].reason_code == "signature"
    assert by_id[empty.record_id].reason_code == "malformed"
    assert by_id[far.record_id].reason_code == "malformed"
    assert "0001-9999" in by_id[far.record_id].reason
    assert len(acks) == 8
    assert centre.stored() == {s.record_id for s in good}
    assert centre.device().records_received == 3


# --- 4. licence state at the centre -----------------------------------------------------------


async def test_records_from_a_device_whose_licence_expired_are_refused(centre: Centre) -> None:
    """Attack: a device whose guard was switched off keeps collecting after its licence ran
    out and uploads. Refused: each record gets ``licence_expired`` saying to renew; nothing is
    stored. After a renewal the same records are stored."""
    records = [centre.seal(seed=seed) for seed in range(2)]
    with centre.sessions() as session:
        until = session.scalar(select(func.max(LicenceGrant.not_after)))
    assert until is not None
    centre.clock.set_wall(until.replace(tzinfo=UTC) + timedelta(days=1))
    acks = await upload(centre, batch(*records))
    assert {(a.status, a.reason_code) for a in acks} == {
        (data_pb2.RecordAck.STATUS_REJECTED, "licence_expired")
    }
    assert all("续期" in a.reason for a in acks)
    assert centre.stored() == set()
    with centre.sessions.begin() as session:
        session.execute(
            update(LicenceGrant).values(not_after=centre.clock.now() + timedelta(days=30))
        )
    acks = await upload(centre, batch(*records))
    assert {a.status for a in acks} == {data_pb2.RecordAck.STATUS_STORED}


# --- 3. storage exhaustion by orphan chunks ---------------------------------------------------


async def test_orphan_chunks_over_the_quota_are_refused(centre: Centre) -> None:
    """Attack: the device streams 400 chunks (100 MB) for record ids that never come.
    Refused: only the device's quota of unclaimed chunks is kept (count and bytes); the rest
    are not stored, the stream stays up, and the record sent after them is stored."""
    rng = random.Random(3)

    def orphan(index: int) -> data_pb2.UploadRequest:
        return data_pb2.UploadRequest(
            chunk=data_pb2.AttachmentChunk(
                record_id=f"{index:08x}-0000-4000-8000-000000000000",
                device_id=centre.device_id,
                name="photo.jpg",
                key_version=1,
                index=0,
                count=1,
                ephemeral_public_key=b"k" * 32,
                nonce=b"n" * 12,
                ciphertext=rng.randbytes(256 * 1024),
            )
        )

    acks = await upload(centre, *(orphan(i) for i in range(400)), batch(centre.seal(seed=5)))
    assert [a.status for a in acks] == [data_pb2.RecordAck.STATUS_STORED]
    with centre.sessions() as session:
        kept, size = session.execute(
            select(func.count(), func.sum(func.length(Attachment.ciphertext)))
        ).one()
    assert kept == 200 and size <= 50 * 1024 * 1024
    assert len(centre.stored()) == 1


# --- 5. undecodable requests ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "method", "kind"),
    [
        ("Device", "Health", "unary"),
        ("Device", "RenewLicence", "unary"),
        ("Slices", "Pull", "server_stream"),
        ("Uploads", "Upload", "bidi"),
        ("Enrollment", "Enroll", "enrol"),
    ],
)
async def test_garbage_bytes_are_invalid_argument(
    centre: Centre, service: str, method: str, kind: str
) -> None:
    """Attack: bytes that are no protobuf sent to every method over a raw channel. Refused:
    INVALID_ARGUMENT saying the request is not a valid protobuf (grpc answered UNKNOWN)."""
    path = f"/muster.v1.{service}/{method}"
    async with centre.enrol_channel() if kind == "enrol" else centre.channel() as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            if kind in ("unary", "enrol"):
                await channel.unary_unary(path)(GARBAGE, timeout=10)
            elif kind == "server_stream":
                async for _ in channel.unary_stream(path)(GARBAGE, timeout=10):
                    pass
            else:
                async for _ in channel.stream_stream(path)(iter([GARBAGE]), timeout=10):
                    pass
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "protobuf" in (refused.value.details() or "")
    assert centre.stored() == set()


async def test_an_oversized_fingerprint_is_invalid_argument(centre: Centre) -> None:
    """Attack: a Health request whose fingerprint field is a megabyte. Refused:
    INVALID_ARGUMENT naming the field; no fingerprint change is recorded."""
    request = health_request()
    request.fingerprint.machine_id = "m" * 1_000_000
    async with centre.channel() as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await data_pb2_grpc.DeviceStub(channel).Health(request, timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "machine_id" in (refused.value.details() or "")
    with centre.sessions() as session:
        assert session.scalar(select(func.count()).select_from(FingerprintChange)) == 0


# --- 1b. a revoked device's live MQTT session -------------------------------------------------


async def test_a_revoked_devices_live_mqtt_session_changes_nothing(
    secure_mosquitto: SecureBrokerFactory, tmp_path: Path
) -> None:
    """Attack: a device opens its MQTT session, is revoked, and keeps publishing heartbeats and
    events on the session it already has.

    What Mosquitto 2.0.11 does, proved here: the CRL the controller publishes (SIGHUP through
    ``broker_pid_file``) refuses every *new* connection of the revoked certificate, but the
    session opened before stays up and its publishes are still delivered. So the controller
    drops the device's messages on arrival, counted and logged, and nothing it sends is
    applied: its heartbeat sequence, state and events stay as they were; then its ban in the
    broker's dynamic-security plugin closes the session (tests/integration/
    test_revocation_broker.py goes further)."""
    clock = VirtualClock(datetime.now(UTC).replace(microsecond=0))
    ctl = tmp_path / "ctl"
    pki = ensure_controller_pki(ctl, ["127.0.0.1", "localhost"], now=clock.now())
    sessions = _database(f"sqlite:///{tmp_path / 'controller.db'}", pki, clock.now())
    key = generate_device_key()
    enrolled = enrol_directly(sessions, pki, key, township=TOWNSHIP, now=clock.now())
    device_id = enrolled.device_id
    write_private_key(tmp_path / "device.key", key)
    write_public_file(
        tmp_path / "device.crt", certificate_pem(load_certificate(enrolled.certificate_der))
    )
    write_crl(sessions, pki, now=clock.now())
    broker = secure_mosquitto(ctl, listener_config=f"crlfile {pki.crl_path}")
    pid_file = tmp_path / "mosquitto.pid"
    assert broker._process is not None
    pid_file.write_text(str(broker._process.pid))
    settings = ControllerSettings(data_dir=ctl, mqtt_url=getattr(broker, "centre_url", broker.url))
    store = DeviceStateStore(sessions, clock)
    consumer = TelemetryConsumer(settings, store, clock, pki)
    consumer.refresh_revoked()
    running = asyncio.create_task(consumer.run())
    try:
        assert await asyncio.wait_for(consumer.connected.wait(), 10)
        device = Peer(broker, pki, tmp_path / "device.crt", tmp_path / "device.key", device_id)

        async def publish(kind: Kind, payload: bytes) -> None:
            seen = consumer.messages_received
            await asyncio.to_thread(device.publish, topics.topic(device_id, kind), payload)
            for _ in range(200):
                if consumer.messages_received > seen:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"the {kind} never reached the controller")

        await publish("telemetry", device_pb2.Heartbeat(sequence=1).SerializeToString())
        await consumer.flush()
        with sessions() as session:
            before = session.get(Device, device_id)
            assert before is not None and before.heartbeat_sequence == 1
            state_before = (before.state, before.outbox_depth, before.last_seen)
            events_before = session.scalar(select(func.count()).select_from(DeviceEvent))

        revoke_device(sessions, device_id, reason="stolen", by="admin", now=clock.now())
        publisher = CrlPublisher(sessions, pki, broker_pid_file=pid_file, clock=clock)
        assert await asyncio.to_thread(publisher.publish_if_changed)
        consumer.refresh_revoked()
        await asyncio.sleep(2)  # the broker re-reads its configuration and CRL

        # The session opened before the revocation is still up, and still delivers.
        assert device.client.is_connected()
        await publish(
            "telemetry", device_pb2.Heartbeat(sequence=2, outbox_depth=99).SerializeToString()
        )
        await publish("event", device_pb2.Event(message="forged").SerializeToString())
        await consumer.flush()
        assert consumer.messages_from_revoked == 2
        with sessions() as session:
            after = session.get(Device, device_id)
            assert after is not None and after.heartbeat_sequence == 1
            assert (after.state, after.outbox_depth, after.last_seen) == state_before
            events = session.scalar(select(func.count()).select_from(DeviceEvent))
            assert events == events_before + 1  # the REVOKED event of the revocation only

        # A new connection with the revoked certificate is refused by the reloaded CRL...
        with pytest.raises(AssertionError, match="could not connect"):
            Peer(broker, pki, tmp_path / "device.crt", tmp_path / "device.key", "again")
        # ...and the ban at the broker closes the old session at once.
        banning = CrlPublisher(sessions, pki, clock=clock, bans=BrokerBans(broker.centre_url, pki))
        assert await banning.ban_revoked() == {device_id}
        for _ in range(200):
            if not device.client.is_connected():
                break
            await asyncio.sleep(0.05)
        assert not device.client.is_connected()
        device.close()
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await running
        sessions.kw["bind"].dispose()
