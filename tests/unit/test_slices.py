"""Slices (S-04): signed by the centre, readable only by the device they were cut for, checked
chunk by chunk, stored encrypted on the device, resumable, wiped when withdrawn."""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from controller.devices.pki_store import ControllerPki
from controller.records.initial_import import Importer
from controller.records.slices import plan_slice, set_slice_state, slice_chunks
from edge.slice_store import SliceStore
from muster.clock import VirtualClock
from muster.crypto import generate_device_key, generate_licence_authority_key
from muster.dataset import synthetic_rows
from muster.slices import (
    ChunkReceived,
    SliceComplete,
    SliceProtocolError,
    SliceReader,
    SliceWithdrawn,
)
from muster.v1 import data_pb2
from tests.unit.conftest import NOW

T1, T2 = "370902001000", "370902002000"
DEVICE = f"{T1}-AAAAAA"


@pytest.fixture
def imported(sessions: sessionmaker[Session]) -> list[dict[str, str]]:
    rows = list(synthetic_rows(120, [T1, T2], random.Random(11), NOW.date()))
    Importer(sessions, clock=VirtualClock(NOW)).import_rows(enumerate(rows, start=2))
    return rows


def transfer(
    sessions: sessionmaker[Session],
    pki: ControllerPki,
    device_key: object,
    have: int = 0,
    chunk_people: int = 25,
    **resume: object,
) -> list[data_pb2.SliceChunk]:
    with sessions() as session:
        plan = plan_slice(session, T1, have_version=have, now=NOW, **resume)  # type: ignore[arg-type]
    return list(
        slice_chunks(
            sessions,
            plan,
            device_id=DEVICE,
            device_key=device_key.public_key(),  # type: ignore[attr-defined]
            signing_key=pki.licence_key,
            now=NOW,
            chunk_people=chunk_people,
        )
    )


def reader(device_key: object, pki: ControllerPki, township: str = T1) -> SliceReader:
    return SliceReader(
        device_id=DEVICE,
        township_code=township,
        device_key=device_key,  # type: ignore[arg-type]
        authority_key=pki.licence_key.public_key(),
    )


def test_a_device_gets_exactly_its_townships_people(
    sessions: sessionmaker[Session], pki: ControllerPki, imported: list[dict[str, str]]
) -> None:
    """The full slice holds every person of the township and nobody from another one."""
    key = generate_device_key()
    r = reader(key, pki)
    got: list[data_pb2.SlicePerson] = []
    complete = []
    for chunk in transfer(sessions, pki, key):
        for event in r.feed(chunk):
            if isinstance(event, ChunkReceived):
                got.extend(event.people)
            if isinstance(event, SliceComplete):
                complete.append(event.version)
    assert complete == [1]
    assert {p.id_number for p in got} == {
        row["id_number"] for row in imported if row["township_code"] == T1
    }
    assert all(json.loads(p.details)["name"] for p in got)


def test_another_devices_key_cannot_open_the_slice(
    sessions: sessionmaker[Session], pki: ControllerPki, imported: list[dict[str, str]]
) -> None:
    """A slice cut for one device is useless to another: the data key does not unwrap."""
    chunks = transfer(sessions, pki, generate_device_key())
    with pytest.raises(SliceProtocolError, match="不是为本设备加密"):
        reader(generate_device_key(), pki).feed(chunks[0])


def test_forged_tampered_reordered_and_foreign_slices_are_refused(
    sessions: sessionmaker[Session], pki: ControllerPki, imported: list[dict[str, str]]
) -> None:
    """A manifest not signed by the centre, one for another township, a flipped bit in a chunk
    and a chunk out of order are each refused."""
    key = generate_device_key()
    chunks = transfer(sessions, pki, key)
    forged = SliceReader(
        device_id=DEVICE,
        township_code=T1,
        device_key=key,
        authority_key=generate_licence_authority_key().public_key(),
    )
    with pytest.raises(SliceProtocolError, match="签名无效"):
        forged.feed(chunks[0])
    with pytest.raises(SliceProtocolError, match="不是发给本设备或本乡镇"):
        reader(key, pki, township=T2).feed(chunks[0])
    r = reader(key, pki)
    r.feed(chunks[0])
    tampered = data_pb2.SliceChunk()
    tampered.CopyFrom(chunks[1])
    tampered.data.ciphertext = (
        bytes([tampered.data.ciphertext[0] ^ 1]) + tampered.data.ciphertext[1:]
    )
    with pytest.raises(SliceProtocolError, match="损坏或被篡改"):
        r.feed(tampered)
    r = reader(key, pki)
    r.feed(chunks[0])
    with pytest.raises(SliceProtocolError, match="顺序错误"):
        r.feed(chunks[2])


def test_store_keeps_only_ciphertext_and_resumes_and_applies_deltas(
    sessions: sessionmaker[Session],
    pki: ControllerPki,
    imported: list[dict[str, str]],
    tmp_path: Path,
) -> None:
    """Interrupted after two chunks, the device resumes after the last entry it applied; the
    file never holds a name or ID number in clear; a delta then removes a person who moved."""
    key = generate_device_key()
    store = SliceStore(tmp_path / "slices" / "s.sqlite3", tmp_path / "identity" / "slice.key")
    assert (tmp_path / "identity" / "slice.key").stat().st_mode & 0o777 == 0o600
    chunks = transfer(sessions, pki, key)
    r = reader(key, pki)
    for chunk in chunks[:3]:  # manifest and two chunks, then the line drops
        for event in r.feed(chunk):
            if isinstance(event, ChunkReceived):
                store.apply(event.people)
            else:
                store.begin(event.manifest)  # type: ignore[union-attr]
    pending, after = store.resume_point()
    assert pending == 1 and after and store.version == 0
    resumed = transfer(sessions, pki, key, resume_version=pending, resume_after=after)
    r = reader(key, pki)
    for chunk in resumed:
        for event in r.feed(chunk):
            if isinstance(event, ChunkReceived):
                store.apply(event.people)
            elif isinstance(event, SliceComplete):
                store.complete(event.version)
            else:
                store.begin(event.manifest)  # type: ignore[union-attr]
    mine = [row for row in imported if row["township_code"] == T1]
    assert store.version == 1 and store.count() == len(mine)
    assert store.find(mine[0]["id_number"])["name"] == mine[0]["name"]  # type: ignore[index]
    raw = b"".join(
        bytes(v) if isinstance(v, bytes) else str(v).encode()
        for row in sqlite3.connect(tmp_path / "slices" / "s.sqlite3").execute(
            "SELECT * FROM people"
        )
        for v in row
    )
    assert mine[0]["id_number"].encode() not in raw and mine[0]["name"].encode() not in raw

    moved = {**mine[0], "township_code": T2}
    Importer(sessions, clock=VirtualClock(NOW)).import_rows(enumerate([moved], start=2))
    r = reader(key, pki)
    for chunk in transfer(sessions, pki, key, have=1):
        for event in r.feed(chunk):
            if isinstance(event, ChunkReceived):
                assert [p.removed for p in event.people] == [True]
                store.apply(event.people)
            elif isinstance(event, SliceComplete):
                store.complete(event.version)
            else:
                store.begin(event.manifest)  # type: ignore[union-attr]
    assert store.version == 2 and store.find(mine[0]["id_number"]) is None
    assert store.count() == len(mine) - 1
    store.close()


def test_withdrawn_and_expired_slices_are_wiped(
    sessions: sessionmaker[Session],
    pki: ControllerPki,
    imported: list[dict[str, str]],
    tmp_path: Path,
) -> None:
    """A withdrawn slice arrives as a signed withdrawal with no data; an expiry date travels in
    the manifest so the device wipes even while offline."""
    key = generate_device_key()
    set_slice_state(sessions, T1, expires=(NOW + timedelta(days=2)).date().isoformat(), now=NOW)
    chunks = transfer(sessions, pki, key)
    store = SliceStore(tmp_path / "s.sqlite3", tmp_path / "slice.key")
    store.begin(reader(key, pki).feed(chunks[0])[0].manifest)  # type: ignore[union-attr]
    assert not store.expired(NOW) and store.expired(NOW + timedelta(days=3))
    set_slice_state(sessions, T1, revoke=True, reason="test", now=NOW)
    withdrawn = transfer(sessions, pki, key)
    assert len(withdrawn) == 1
    events = reader(key, pki).feed(withdrawn[0])
    assert isinstance(events[-1], SliceWithdrawn)
    store.wipe("revoked")
    assert store.count() == 0 and store.version == 0 and store.wiped_reason == "revoked"
    store.close()
