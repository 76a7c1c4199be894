"""Records opened in worker processes (controller/records/opening.py) are answered and stored
exactly as records opened in the controller's own process; a worker killed mid-run costs no
record, and a controller killed -9 leaves no worker behind. Opening a stream's next batch ahead
of its transaction changes no answer; the settings that size all this refuse what they cannot
use."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import click
import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.cli.service import _settings
from controller.db import make_engine, session_factory
from controller.db.models import Record
from controller.devices.pki_store import ControllerPki
from controller.records.ingest import Ingestor
from controller.records.opening import MIN_SHARE, RecordOpener
from controller.settings import ControllerSettings
from muster.clock import VirtualClock
from muster.crypto import generate_upload_key, upload_public_bytes
from muster.profiles import UplinkProfile
from muster.v1 import data_pb2
from tests.unit.conftest import NOW
from tests.unit.test_ingest import Dev, device, seal

__all__ = ["device"]  # the enrolled device fixture, shared with test_ingest

Ack = data_pb2.RecordAck


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A worker that exited but is not yet reaped by its (dead) parent is a zombie: gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _worker_pids(ingestor: Ingestor) -> set[int]:
    pool = ingestor._opener._pool
    assert pool is not None, "the ingestor has no workers running"
    return set(pool._processes)


@pytest.fixture
def pooled(sessions: sessionmaker[Session], pki: ControllerPki) -> Iterator[Ingestor]:
    ingestor = Ingestor(sessions, pki.upload_keys, VirtualClock(NOW), workers=2)
    yield ingestor
    ingestor.close()


def _mixed_batch(dev: Dev, first_seed: int) -> list[data_pb2.SealedRecord]:
    """Every outcome a record can have in one batch, among records that store."""
    batch = [seal(dev, seed) for seed in range(first_seed, first_seed + 3 * MIN_SHARE)]
    batch[1].ciphertext = batch[1].ciphertext[:-1] + bytes([batch[1].ciphertext[-1] ^ 1])
    batch[3] = seal(dev, first_seed + 3, township="370902002000")  # not this device's township
    batch[5] = seal(dev, first_seed + 5, entered_by="clerk-x", reviewed_by="clerk-x")
    # Sealed, and signed, for an upload key the centre never had: it cannot be opened.
    stranger = Dev(dev.device_id, dev.key, upload_public_bytes(generate_upload_key()))
    batch[7] = seal(stranger, first_seed + 7)
    batch[9] = seal(dev, first_seed + 9, form_version="999")  # a form the centre does not know
    batch.append(batch[0])  # the same record again in the same batch
    return batch


def _twin(sessions: sessionmaker[Session], path: Path) -> sessionmaker[Session]:
    """A second database holding what the first holds now (the enrolled device, the keys)."""
    with sessions() as session:
        source = session.connection().connection.driver_connection
        target = sqlite3.connect(path)
        source.backup(target)
        target.close()
    return session_factory(make_engine(f"sqlite:///{path}"))


def _rows(sessions: sessionmaker[Session]) -> list[dict[str, object]]:
    with sessions() as session:
        return [
            {c.key: getattr(r, c.key) for c in Record.__table__.columns}
            for r in session.scalars(select(Record).order_by(Record.record_id))
        ]


def test_workers_answer_as_the_process_itself_does(
    sessions: sessionmaker[Session], pki: ControllerPki, device: Dev, tmp_path: Path
) -> None:
    """The same batch into two copies of one database, opened inline in one and by two workers
    in the other: the same acks, reason for reason, and the same rows, column for column."""
    twin = _twin(sessions, tmp_path / "twin.db")
    inline = Ingestor(sessions, pki.upload_keys, VirtualClock(NOW), workers=0)
    pooled = Ingestor(twin, pki.upload_keys, VirtualClock(NOW), workers=2)
    try:
        batch = _mixed_batch(device, 100)
        by_inline = inline.ingest_batch(device.device_id, batch)
        assert [a.reason_code for a in by_inline if a.status == Ack.STATUS_REJECTED] == [
            "signature",
            "wrong_township",
            "review",
            "unreadable",
            "form_unknown",
        ]
        assert by_inline[-1].status == Ack.STATUS_DUPLICATE
        by_workers = pooled.ingest_batch(device.device_id, batch)
        assert _worker_pids(pooled), "the batch was not shared out"
        assert by_workers == by_inline
        assert _rows(twin) == _rows(sessions)
        # And a resend of the whole batch: the same answers again, from the stored hashes.
        assert pooled.ingest_batch(device.device_id, batch) == inline.ingest_batch(
            device.device_id, batch
        )
    finally:
        pooled.close()


def test_a_worker_killed_costs_no_record(
    sessions: sessionmaker[Session], device: Dev, pooled: Ingestor
) -> None:
    """kill -9 of a worker: the next batch is still answered in full (opened in the process),
    and the batch after that gets new workers."""
    pooled.start_workers()
    before = _worker_pids(pooled)
    assert len(before) == 2
    os.kill(next(iter(before)), signal.SIGKILL)
    time.sleep(0.5)  # the pool notices its dead worker
    batch = [seal(device, seed) for seed in range(300, 300 + 4 * MIN_SHARE)]
    acks = pooled.ingest_batch(device.device_id, batch)
    assert {a.status for a in acks} == {Ack.STATUS_STORED}
    more = [seal(device, seed) for seed in range(400, 400 + 4 * MIN_SHARE)]
    assert {a.status for a in pooled.ingest_batch(device.device_id, more)} == {Ack.STATUS_STORED}
    assert not _worker_pids(pooled) & before
    with sessions() as session:
        assert len(session.scalars(select(Record.record_id)).all()) == 8 * MIN_SHARE


def test_workers_leave_with_their_controller() -> None:
    """A process holding workers is killed -9 (as the chaos runs kill controllers): its workers
    notice and exit on their own within seconds; none is left running unowned."""
    script = textwrap.dedent(
        """
        import sys, time
        from controller.records.opening import RecordOpener
        if __name__ == "__main__":
            opener = RecordOpener(2)
            opener.start()
            print(" ".join(str(p) for p in opener._pool._processes), flush=True)
            time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path.cwd(),
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)], "workers outlived their controller"


def test_bad_worker_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="workers must be 0"):
        RecordOpener(-1)


def test_a_batch_opened_ahead_is_answered_as_one_opened_in_its_transaction(
    sessions: sessionmaker[Session], pki: ControllerPki, device: Dev, tmp_path: Path
) -> None:
    """``preopen`` (a stream's next batch opened while the last one is stored) changes no
    answer and no row: the same mixed batch into two copies of one database, with and without
    opening ahead, and a resend of it opened ahead too."""
    twin = _twin(sessions, tmp_path / "twin.db")
    plain = Ingestor(sessions, pki.upload_keys, VirtualClock(NOW), workers=2)
    ahead = Ingestor(twin, pki.upload_keys, VirtualClock(NOW), workers=2)
    try:
        warm = [seal(device, seed) for seed in range(500, 500 + 2 * MIN_SHARE)]
        assert plain.ingest_batch(device.device_id, warm) == ahead.ingest_batch(
            device.device_id, warm
        )
        batch = _mixed_batch(device, 600)
        preopened = ahead.preopen(device.device_id, batch)
        assert preopened is not None, "nothing was opened ahead"
        by_plain = plain.ingest_batch(device.device_id, batch)
        assert ahead.ingest_batch(device.device_id, batch, preopened=preopened) == by_plain
        assert _rows(twin) == _rows(sessions)
        resend = ahead.preopen(device.device_id, batch)
        assert ahead.ingest_batch(device.device_id, batch, preopened=resend) == (
            plain.ingest_batch(device.device_id, batch)
        )
    finally:
        plain.close()
        ahead.close()


@pytest.mark.parametrize("stale", ["certificate", "day"])
def test_what_was_opened_ahead_under_another_key_or_day_is_not_used(
    sessions: sessionmaker[Session], pki: ControllerPki, device: Dev, stale: str
) -> None:
    """Opened ahead, then the device's certificate changed (a renewal) or the day turned
    before the transaction: what was opened is put aside and the batch opened again. Shown with
    results that would be wrong if used: another batch's, under the stale key or day."""
    ingestor = Ingestor(sessions, pki.upload_keys, VirtualClock(NOW), workers=2)
    try:
        ingestor.ingest_batch(device.device_id, [seal(device, s) for s in range(2 * MIN_SHARE)])
        batch = [seal(device, seed) for seed in range(700, 700 + 2 * MIN_SHARE)]
        other = [seal(device, seed) for seed in range(800, 800 + 2 * MIN_SHARE)]
        wrong = ingestor.preopen(device.device_id, other)
        assert wrong is not None
        if stale == "certificate":
            wrong = wrong._replace(serial="a certificate since replaced")
        else:
            wrong = wrong._replace(today=NOW.date() - timedelta(days=1))
        acks = ingestor.ingest_batch(device.device_id, batch, preopened=wrong)
        assert [a.status for a in acks] == [Ack.STATUS_STORED] * len(batch)
        with sessions() as session:
            ids = set(session.scalars(select(Record.record_id)))
        assert {s.record_id for s in batch} <= ids
        assert not {s.record_id for s in other} & ids
    finally:
        ingestor.close()


@pytest.mark.parametrize("given", ["-1", "many", "65", "1.5"])
def test_a_worker_count_the_controller_cannot_use_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("MUSTER_CONTROLLER_INGEST_WORKERS", given)
    with pytest.raises(click.UsageError, match=r"设置有误 \(bad settings\): ingest_workers: "):
        _settings()


def test_the_worker_count_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ControllerSettings().ingest_workers is None  # one per core
    monkeypatch.setenv("MUSTER_CONTROLLER_INGEST_WORKERS", "0")
    assert ControllerSettings().ingest_workers == 0


def test_a_device_window_below_one_record_is_refused() -> None:
    with pytest.raises(ValidationError, match="upload_window"):
        UplinkProfile(upload_window=0)
    assert UplinkProfile().upload_window >= UplinkProfile().upload_batch
