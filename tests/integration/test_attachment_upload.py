"""Photos and signatures up the real upload stream (S-02, S-07, S-08): a device daemon sends each
record's sealed chunks ahead of it to a real controller, which stores record and attachments
once; a record whose chunks the controller lacks is never acked, stays on the device, and is
stored as soon as the chunks come, even across a kill -9."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from controller.db.models import Attachment, Record
from controller.devices.pki_store import load_upload_keys
from controller.records.attachment_chunks import attachment_chunk
from edge.identity import IdentityStore
from muster.crypto import open_attachment, seal_attachment, upload_public_from_bytes
from tests.fixtures.backlog import preseal_backlog
from tests.fixtures.fleet import ControllerProcess, Fleet, wait_until, write_profile
from tests.fixtures.mosquitto import MosquittoBroker

RECORDS = 12
# Seeded bytes: a failure replays with the same photo.
PHOTO = b"\xff\xd8\xff\xe0" + random.Random(1).randbytes(700_000)  # three chunks
SIGNATURE = b"\x89PNG\r\n\x1a\n" + random.Random(2).randbytes(4_000)
ATTACHMENTS = {"photo.jpg": PHOTO, "signature.png": SIGNATURE}


def centre(controller: ControllerProcess) -> dict[str, dict[str, bytes]]:
    """record id -> attachment name -> bytes, as the centre opens them from verified chunks."""
    engine = create_engine(f"sqlite:///{controller.data_dir / 'controller.db'}")
    keys = load_upload_keys(controller.data_dir / "pki")
    found: dict[str, dict[str, bytes]] = {}
    try:
        with Session(engine) as session:
            for record in session.scalars(select(Record)):
                found[record.record_id] = {}
                for name in record.payload["attachments"]:
                    rows = session.scalars(
                        select(Attachment)
                        .where(
                            Attachment.record_id == record.record_id,
                            Attachment.name == name,
                            Attachment.verified_at.is_not(None),
                        )
                        .order_by(Attachment.chunk_index)
                    ).all()
                    found[record.record_id][name] = open_attachment(
                        [attachment_chunk(r) for r in rows], keys
                    )
    finally:
        engine.dispose()
    return found


def reseal_chunks(state_dir: Path, record_id: str) -> None:
    """Seal the record's attachments again into its outbox (what a technician's restore does)."""
    store = IdentityStore(state_dir)
    enrolment = store.enrolment()
    version = max(int(v) for v in enrolment.upload_keys)
    upload = upload_public_from_bytes(bytes.fromhex(enrolment.upload_keys[str(version)]))
    with sqlite3.connect(state_dir / "outbox.sqlite3") as db:
        for name, data in ATTACHMENTS.items():
            for chunk in seal_attachment(
                data,
                record_id=record_id,
                device_id=enrolment.device_id,
                name=name,
                upload_key=upload,
                key_version=version,
            ):
                db.execute(
                    "INSERT INTO attachment_chunks (record_id, name, chunk_index, chunk)"
                    " VALUES (?, ?, ?, ?)",
                    (record_id, name, chunk.index, chunk.SerializeToString()),
                )


def test_photos_travel_chunked_and_a_record_missing_them_waits(
    fleet: Fleet, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """Every record arrives with photo and signature byte for byte; the one whose chunks the
    device lost is not acked and not stored, then stored once when its chunks exist again."""
    controller = fleet.controller(mqtt_url=mosquitto.url)
    idle = write_profile(tmp_path / "idle.yaml", records_per_minute=0)
    edge = fleet.edge(controller, idle)
    wait_until((edge.state_dir / "identity" / "enrolment.json").exists, 60, "the device to enrol")
    wait_until((edge.state_dir / "outbox.sqlite3").exists, 30, "the daemon to open its outbox")
    edge.stop()
    sealed = preseal_backlog(
        edge.state_dir, RECORDS, attachments=ATTACHMENTS, withhold_chunks=1, seed=8
    )
    edge.start(idle)

    wait_until(lambda: len(centre(controller)) >= RECORDS - 1, 120, "the complete records")
    wait_until(
        lambda: edge.log().count("controller lacks attachments") >= 2,
        60,
        "the device to resend the incomplete record on a new stream",
    )
    stored = centre(controller)
    (waiting,) = sealed - set(stored)
    stats = edge.outbox_stats()
    assert (stats.acked, stats.pending, stats.rejected) == (RECORDS - 1, 1, 0)
    assert all(files == ATTACHMENTS for files in stored.values())
    with sqlite3.connect(edge.state_dir / "outbox.sqlite3") as db:
        kept = {r for (r,) in db.execute("SELECT DISTINCT record_id FROM attachment_chunks")}
    assert kept == set(), "acked records' chunks are gone from the device"

    edge.kill()
    reseal_chunks(edge.state_dir, waiting)
    edge.start(idle)
    wait_until(lambda: edge.outbox_stats().pending == 0, 60, "the last record acked")
    stored = centre(controller)
    assert set(stored) == sealed
    assert stored[waiting] == ATTACHMENTS
