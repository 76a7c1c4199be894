"""Upload keys are versioned and rotatable: after a rotation a device seals to the newest key it
has been given, and the controller opens every still-valid version, without a restart."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from controller.devices.enrolment import publish_upload_keys, upload_key_messages
from controller.devices.pki_store import ControllerPki, load_upload_keys, rotate_upload_key
from controller.records.ingest import Ingestor
from edge.simulators.collector import simulated_record
from muster.clock import VirtualClock
from muster.crypto import seal_record, upload_public_from_bytes
from muster.v1 import data_pb2
from tests.unit.conftest import NOW
from tests.unit.test_ingest import Dev, device  # noqa: F401  (the fixture)

Ack = data_pb2.RecordAck


def seal_to(dev: Dev, seed: int, version: int, public: bytes) -> data_pb2.SealedRecord:
    payload = simulated_record(random.Random(seed), "370902001000", NOW)
    return seal_record(
        payload.to_bytes(),
        record_id=payload.record_id,
        device_id=dev.device_id,
        schema_version=f"{payload.category.value}/{payload.form_version}",
        upload_key=upload_public_from_bytes(public),
        key_version=version,
        signing_key=dev.key,
        now=NOW,
    )


def test_rotation_while_running_opens_old_and_new_versions(
    sessions: sessionmaker[Session],
    pki: ControllerPki,
    device: Dev,  # noqa: F811
) -> None:
    """A running ingestor that has only v1 opens a record sealed to v2 (it finds the new key on
    disk), and still opens v1 records sealed before the rotation."""
    ingestor = Ingestor(
        sessions,
        dict(pki.upload_keys),
        VirtualClock(NOW),
        reload_keys=lambda: load_upload_keys(pki.directory),
    )
    old = seal_to(device, 1, 1, device.upload_public)
    version = rotate_upload_key(pki)
    assert version == 2
    fresh = load_upload_keys(pki.directory)
    with sessions.begin() as session:
        publish_upload_keys(session, ControllerPki(**{**pki.__dict__, "upload_keys": fresh}), NOW)
    with sessions() as session:
        offered = {k.version: k.x25519_public_key for k in upload_key_messages(session, NOW)}
    assert sorted(offered) == [1, 2]
    # What the sealer does: the newest version it has been given.
    newest = max(offered)
    new = seal_to(device, 2, newest, offered[newest])
    acks = ingestor.ingest_batch(device.device_id, [new, old])
    assert [a.status for a in acks] == [Ack.STATUS_STORED, Ack.STATUS_STORED]


def test_rotate_upload_key_command(tmp_path: Path) -> None:
    """`muster controller rotate-upload-key` adds v2 beside v1 and publishes it."""
    data = tmp_path / "ctl"
    run = [sys.executable, "-m", "muster", "controller"]
    subprocess.run([*run, "migrate", "--data-dir", str(data)], check=True, capture_output=True)
    out = subprocess.run(
        [*run, "rotate-upload-key", "--data-dir", str(data)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert "第 2 版" in out.stdout
    assert sorted(p.name for p in (data / "pki" / "upload").glob("v*.key")) == ["v1.key", "v2.key"]
