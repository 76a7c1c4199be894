"""The device outbox: durable on return, acked only by the controller's word, rejected records
kept with their reason, quotas refused before anything is written."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.outbox import Outbox, OutboxFullError
from muster.clock import VirtualClock
from muster.v1 import data_pb2
from tests.unit.conftest import NOW

Ack = data_pb2.RecordAck


def sealed(n: int) -> data_pb2.SealedRecord:
    record = data_pb2.SealedRecord(
        record_id=f"rec-{n:06d}",
        device_id="d",
        schema_version="retired_soldier/1",
        ciphertext=random.Random(n).randbytes(64),
    )
    record.sealed_at.FromDatetime(datetime(2026, 11, 23, tzinfo=UTC))
    return record


def test_pending_in_order_and_acks(tmp_path: Path) -> None:
    """Records come out in the order sealed; STORED and DUPLICATE both mean delivered, REJECTED
    keeps the record with its reason."""
    box = Outbox(tmp_path / "o.db", clock=VirtualClock(NOW))
    for n in range(5):
        box.add(sealed(n), f"h{n}", now=100.0 + n)
    pending = box.pending(0, 10)
    assert [p.record_id for p in pending] == [f"rec-{n:06d}" for n in range(5)]
    assert data_pb2.SealedRecord.FromString(pending[0].sealed).record_id == "rec-000000"
    assert box.pending(pending[2].seq, 10)[0].record_id == "rec-000003"
    box.apply_acks(
        [
            Ack(record_id="rec-000000", status=Ack.STATUS_STORED),
            Ack(record_id="rec-000001", status=Ack.STATUS_DUPLICATE),
            Ack(
                record_id="rec-000002",
                status=Ack.STATUS_REJECTED,
                reason_code="schema",
                reason="出生日期有误",
            ),
        ]
    )
    stats = box.stats(now=110.0)
    assert (stats.sealed_total, stats.acked, stats.pending, stats.rejected) == (5, 2, 2, 1)
    assert stats.oldest_pending_age_s == pytest.approx(7.0)
    assert box.rejected() == [("rec-000002", "schema", "出生日期有误")]
    assert [p.record_id for p in box.pending(0, 10)] == ["rec-000003", "rec-000004"]


def test_quota_refuses_before_writing(tmp_path: Path) -> None:
    """At the profile's quota a new record is refused with a message, and nothing is written."""
    box = Outbox(tmp_path / "o.db", clock=VirtualClock(NOW), max_records=2)
    box.add(sealed(1), "a")
    box.add(sealed(2), "b")
    with pytest.raises(OutboxFullError, match="上限"):
        box.add(sealed(3), "c")
    assert box.stats().sealed_total == 2
    box.apply_acks([Ack(record_id="rec-000001", status=Ack.STATUS_STORED)])
    box.add(sealed(3), "c")  # acked records do not count against the quota


def test_low_disk_refuses(tmp_path: Path) -> None:
    """Below the profile's free-disk floor, collection pauses with a clear message."""
    box = Outbox(tmp_path / "o.db", clock=VirtualClock(NOW), min_disk_free_bytes=2**62)
    with pytest.raises(OutboxFullError, match="磁盘"):
        box.add(sealed(1), "a")
    assert box.stats().sealed_total == 0


def _writer(path: str, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    box = Outbox(Path(path), clock=VirtualClock(NOW))
    n = 0
    while True:
        box.add(sealed(n), str(n))
        n += 1
        if n == 50:
            ready.set()


def test_kill9_mid_write_keeps_every_returned_record(tmp_path: Path) -> None:
    """A process killed with SIGKILL while writing leaves a readable outbox with every record
    whose add() had returned (here: at least the 50 before the signal)."""
    path = tmp_path / "o.db"
    ready = multiprocessing.get_context("fork").Event()
    writer = multiprocessing.get_context("fork").Process(target=_writer, args=(str(path), ready))
    writer.start()
    assert ready.wait(30)
    os.kill(writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
    writer.join()
    box = Outbox(path, clock=VirtualClock(NOW))
    stats = box.stats()
    assert stats.pending >= 50
    ids = [p.record_id for p in box.pending(0, 1_000_000)]
    assert ids == [f"rec-{n:06d}" for n in range(len(ids))], "no gaps, no torn rows"
