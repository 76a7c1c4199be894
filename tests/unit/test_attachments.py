"""Photos and signatures travel sealed apart from their record, in chunks, ahead of it (S-02,
S-07, S-08): the centre stores a record only when every attachment it names has arrived whole and
matches, stores it once however often it is resent, and tells the device what to do otherwise."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.accounts.admins import add_admin, issue_token
from controller.admin import create_admin_app
from controller.db.models import Attachment, Record
from controller.devices.pki_store import ControllerPki
from controller.records.attachment_chunks import attachment_chunk
from controller.records.ingest import Ingestor
from edge.outbox import Outbox
from edge.simulators.collector import simulated_record
from muster.clock import VirtualClock
from muster.crypto import (
    ATTACHMENT_CHUNK_BYTES,
    content_hash,
    generate_upload_key,
    open_attachment,
    seal_attachment,
    seal_record,
    upload_public_from_bytes,
)
from muster.errors import SealError
from muster.records import ATTACHMENT_MAX_BYTES, RecordError, describe_attachment
from muster.v1 import data_pb2
from tests.unit.conftest import NOW
from tests.unit.test_ingest import Dev, device, ingestor  # noqa: F401  (fixtures)

Ack = data_pb2.RecordAck
# Seeded bytes: a failure replays with the same photo.
PHOTO = random.Random(1).randbytes(600_000)  # three chunks
SIGNATURE = b"\x89PNG\r\n\x1a\n" + random.Random(2).randbytes(3_000)


def _sealed(
    dev: Dev,
    attachments: dict[str, bytes],
    seed: int = 1,
    described: dict[str, bytes] | None = None,
) -> tuple[data_pb2.SealedRecord, list[data_pb2.AttachmentChunk]]:
    """A record naming ``described`` (default: ``attachments``) and the chunks of ``attachments``."""
    payload = simulated_record(random.Random(seed), "370902001000", NOW)
    refs = {n: describe_attachment(n, d) for n, d in (described or attachments).items()}
    payload = payload.model_copy(update={"attachments": refs})
    upload = upload_public_from_bytes(dev.upload_public)
    sealed = seal_record(
        payload.to_bytes(),
        record_id=payload.record_id,
        device_id=dev.device_id,
        schema_version=f"{payload.category.value}/{payload.form_version}",
        upload_key=upload,
        key_version=1,
        signing_key=dev.key,
        now=NOW,
    )
    chunks = [
        c
        for name, data in attachments.items()
        for c in seal_attachment(
            data,
            record_id=payload.record_id,
            device_id=dev.device_id,
            name=name,
            upload_key=upload,
            key_version=1,
        )
    ]
    return sealed, chunks


def _count(sessions: sessionmaker[Session], model: type[Record] | type[Attachment]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_attachment_round_trip_in_bounded_chunks() -> None:
    """A 600 KB photo becomes three chunks of at most 256 KiB plaintext that only the upload key
    opens, in order, back to the same bytes; the plaintext appears in none of them."""
    key = generate_upload_key()
    chunks = seal_attachment(
        PHOTO,
        record_id="r1",
        device_id="d1",
        name="photo.jpg",
        upload_key=key.public_key(),
        key_version=2,
    )
    assert [c.index for c in chunks] == [0, 1, 2] and {c.count for c in chunks} == {3}
    assert all(len(c.ciphertext) <= ATTACHMENT_CHUNK_BYTES + 16 for c in chunks)
    assert open_attachment(chunks, {2: key}) == PHOTO
    assert not any(PHOTO[:64] in c.SerializeToString() for c in chunks)


def test_moved_reordered_or_missing_chunks_do_not_open() -> None:
    """A chunk swapped into another position, relabelled for another record or attachment, or
    left out, fails with the one opaque error."""
    key = generate_upload_key()
    chunks = seal_attachment(
        PHOTO,
        record_id="r1",
        device_id="d1",
        name="photo.jpg",
        upload_key=key.public_key(),
        key_version=1,
    )
    relabelled = data_pb2.AttachmentChunk()
    relabelled.CopyFrom(chunks[0])
    relabelled.name = "signature.png"
    for broken in (
        [chunks[1], chunks[0], chunks[2]],
        chunks[:2],
        [relabelled, *chunks[1:]],
    ):
        with pytest.raises(SealError):
            open_attachment(broken, {1: key})


def test_oversized_attachment_is_refused_with_a_reason() -> None:
    """An attachment over 8 MiB is refused before sealing, saying how big it is and the limit."""
    with pytest.raises(RecordError, match="超过 8 MB 上限"):
        describe_attachment("photo.jpg", b"\0" * (ATTACHMENT_MAX_BYTES + 1))


def test_record_with_its_chunks_is_stored_once_however_often_resent(
    ingestor: Ingestor,  # noqa: F811
    device: Dev,  # noqa: F811
    sessions: sessionmaker[Session],
) -> None:
    """Chunks then record: stored, chunks verified, the centre opens the photo again. The whole
    lot resent (a lost ack, a crash) is a duplicate and stores nothing twice."""
    sealed, chunks = _sealed(device, {"photo.jpg": PHOTO, "signature.png": SIGNATURE})
    acks = ingestor.ingest_batch(device.device_id, [sealed], chunks)
    assert [a.status for a in acks] == [Ack.STATUS_STORED]
    again = ingestor.ingest_batch(device.device_id, [sealed], chunks)
    assert [a.status for a in again] == [Ack.STATUS_DUPLICATE]
    assert _count(sessions, Record) == 1
    assert _count(sessions, Attachment) == len(chunks) == 4
    with sessions() as session:
        rows = session.scalars(
            select(Attachment)
            .where(Attachment.name == "photo.jpg")
            .order_by(Attachment.chunk_index)
        ).all()
        assert all(r.verified_at is not None for r in rows)
        assert open_attachment([attachment_chunk(r) for r in rows], ingestor._upload_keys) == PHOTO
        record = session.get(Record, sealed.record_id)
        assert record is not None
        # The record keeps only the descriptor; the bytes are in the chunks.
        assert record.payload["attachments"]["photo.jpg"] == {
            "media_type": "image/jpeg",
            "size": len(PHOTO),
            "sha256": hashlib.sha256(PHOTO).hexdigest(),
        }


def test_chunks_in_an_earlier_batch_count(
    ingestor: Ingestor,  # noqa: F811
    device: Dev,  # noqa: F811
    sessions: sessionmaker[Session],
) -> None:
    """Chunks that came in an earlier turn of the stream are joined with the record later."""
    sealed, chunks = _sealed(device, {"photo.jpg": PHOTO})
    assert ingestor.ingest_batch(device.device_id, [], chunks) == []
    assert [a.status for a in ingestor.ingest_batch(device.device_id, [sealed])] == [
        Ack.STATUS_STORED
    ]


def test_missing_chunk_is_not_acked_and_the_resend_completes_it(
    ingestor: Ingestor,  # noqa: F811
    device: Dev,  # noqa: F811
    sessions: sessionmaker[Session],
) -> None:
    """A record whose photo lacks a chunk is not stored and comes back INCOMPLETE with a reason
    code (not a rejection: the device resends); chunks and record sent again are stored once."""
    sealed, chunks = _sealed(device, {"photo.jpg": PHOTO})
    acks = ingestor.ingest_batch(device.device_id, [sealed], chunks[:2])
    assert [(a.status, a.reason_code) for a in acks] == [
        (Ack.STATUS_INCOMPLETE, "attachment_missing")
    ]
    assert "重新发送" in acks[0].reason
    assert _count(sessions, Record) == 0
    acks = ingestor.ingest_batch(device.device_id, [sealed], chunks)
    assert [a.status for a in acks] == [Ack.STATUS_STORED]
    assert _count(sessions, Attachment) == 3


def test_attachment_not_matching_its_record_is_rejected_then_replaced(
    ingestor: Ingestor,  # noqa: F811
    device: Dev,  # noqa: F811
    sessions: sessionmaker[Session],
) -> None:
    """Chunks that decrypt to other bytes than the record names are rejected with a reason for
    the clerk; the record sealed again with a new photo replaces the unverified chunks."""
    sealed, chunks = _sealed(device, {"photo.jpg": PHOTO}, described={"photo.jpg": b"other"})
    acks = ingestor.ingest_batch(device.device_id, [sealed], chunks)
    assert [(a.status, a.reason_code) for a in acks] == [
        (Ack.STATUS_REJECTED, "attachment_corrupt")
    ]
    assert "重新拍照" in acks[0].reason
    assert _count(sessions, Record) == 0
    retaken = PHOTO[::-1]
    sealed, chunks = _sealed(device, {"photo.jpg": retaken})
    acks = ingestor.ingest_batch(device.device_id, [sealed], chunks)
    assert [a.status for a in acks] == [Ack.STATUS_STORED]
    with sessions() as session:
        rows = session.scalars(select(Attachment).order_by(Attachment.chunk_index)).all()
        assert open_attachment([attachment_chunk(r) for r in rows], ingestor._upload_keys) == (
            retaken
        )


def test_chunks_from_another_device_are_ignored(
    ingestor: Ingestor,  # noqa: F811
    device: Dev,  # noqa: F811
    sessions: sessionmaker[Session],
) -> None:
    """A device cannot plant chunks under another device's id: they are not kept."""
    sealed, chunks = _sealed(device, {"photo.jpg": PHOTO})
    for chunk in chunks:
        chunk.device_id = "someone-else"
    acks = ingestor.ingest_batch(device.device_id, [sealed], chunks)
    assert [a.status for a in acks] == [Ack.STATUS_INCOMPLETE]
    assert _count(sessions, Attachment) == 0


def test_outbox_keeps_chunks_beside_the_record_until_acked(
    tmp_path: Path,
    device: Dev,  # noqa: F811
) -> None:
    """The outbox hands out a record with its chunks, and drops the chunks once it is acked."""
    sealed, chunks = _sealed(device, {"photo.jpg": PHOTO})
    outbox = Outbox(tmp_path / "outbox.sqlite3", clock=VirtualClock(NOW))
    try:
        outbox.add(sealed, content_hash(sealed), chunks=chunks)
        (pending,) = outbox.pending(0, 10)
        assert [data_pb2.AttachmentChunk.FromString(c) for c in pending.chunks] == chunks
        outbox.apply_acks([Ack(record_id=sealed.record_id, status=Ack.STATUS_INCOMPLETE)])
        assert len(outbox.pending(0, 10)[0].chunks) == 3, "an INCOMPLETE ack changes nothing"
        outbox.apply_acks([Ack(record_id=sealed.record_id, status=Ack.STATUS_STORED)])
        assert outbox.pending(0, 10) == []
        assert outbox.stats().acked == 1
    finally:
        outbox.close()
    assert PHOTO[:64] not in (tmp_path / "outbox.sqlite3").read_bytes()


def admin_token(sessions: sessionmaker[Session], username: str, region: str) -> str:
    with sessions.begin() as session:
        add_admin(
            session,
            username=username,
            role="county",
            region=region,
            password="Huaxia-2026-collect",
            now=NOW,
        )
        session.flush()
        return issue_token(session, username, NOW)


async def test_admin_route_returns_the_sealed_photo(
    ingestor: Ingestor,  # noqa: F811
    device: Dev,  # noqa: F811
    sessions: sessionmaker[Session],
    pki: ControllerPki,
) -> None:
    """The county's admin downloads a stored record's photo, decrypted, byte for byte as sealed,
    with its media type; an attachment the record does not have is a 404 saying so; another
    county's admin is refused (region scopes, issue 10)."""
    sealed, chunks = _sealed(device, {"photo.jpg": PHOTO, "signature.png": SIGNATURE})
    ingestor.ingest_batch(device.device_id, [sealed], chunks)
    own = admin_token(sessions, "wang.fang", "370902")
    other = admin_token(sessions, "li.na", "370911")
    app = create_admin_app(sessions, clock=VirtualClock(NOW), upload_keys=lambda: pki.upload_keys)
    base = f"/api/v1/records/{sealed.record_id}/attachments"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://admin",
        headers={"Authorization": f"Bearer {own}"},
    ) as client:
        photo = await client.get(f"{base}/photo.jpg")
        signature = await client.get(f"{base}/signature.png")
        missing = await client.get(f"{base}/signed_sheet.jpg")
        bad = await client.get(f"{base}/x.exe")
        foreign = await client.get(
            f"{base}/photo.jpg", headers={"Authorization": f"Bearer {other}"}
        )
    assert (photo.status_code, photo.headers["content-type"]) == (200, "image/jpeg")
    assert photo.content == PHOTO
    assert signature.content == SIGNATURE
    assert missing.status_code == 404 and "没有附件" in missing.json()["detail"]
    assert bad.status_code == 404 and "signed_sheet.jpg" in bad.json()["detail"]
    assert foreign.status_code == 403 and PHOTO[:64] not in foreign.content


def test_outbox_batches_stay_small_when_records_carry_photos(
    tmp_path: Path,
    device: Dev,  # noqa: F811
) -> None:
    """A batch is cut where its chunks pass the byte budget, never below one record, and the
    next batch carries on in order: a photo-laden backlog does not load all at once."""
    outbox = Outbox(tmp_path / "outbox.sqlite3", clock=VirtualClock(NOW))
    try:
        ids = []
        for seed in range(4):
            sealed, chunks = _sealed(device, {"photo.jpg": PHOTO}, seed=seed)
            outbox.add(sealed, content_hash(sealed), chunks=chunks)
            ids.append(sealed.record_id)
        first = outbox.pending(0, 64, max_chunk_bytes=1_000_000)
        assert [p.record_id for p in first] == ids[:1]
        two = outbox.pending(first[-1].seq, 64, max_chunk_bytes=1_300_000)
        assert [p.record_id for p in two] == ids[1:3]
        assert all(len(p.chunks) == 3 for p in two)
        assert [p.record_id for p in outbox.pending(0, 64)] == ids
    finally:
        outbox.close()
