"""Upload ingest on one controller process and its ingest workers — verify + decrypt + validate +
commit — against a raw batched insert of the same rows, on SQLite (WAL, synchronous=FULL) and on
PostgreSQL (durable: fsync on). Ratios are measured in the same run.

The ingest runs as the gRPC service runs it: batches of ``--batch`` records, two batches at once
(the service's ``IngestTurns`` slots), opened by the ingest workers. The raw insert is
the same rows through SQLAlchemy Core, in the same batches, one transaction each.

    python tests/bench/bench_ingest.py [--records N] [--batch B] [--only sqlite|postgres]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, insert, select

from controller.db import make_engine, migrate, session_factory
from controller.db.models import Record
from controller.devices.enrolment import publish_upload_keys
from controller.devices.pki_store import ensure_controller_pki
from controller.records.ingest import Ingestor
from edge.simulators.collector import simulated_record
from muster.clock import SystemClock
from muster.crypto import generate_device_key, seal_record, upload_public_from_bytes
from muster.logs import configure_logging
from muster.v1 import data_pb2
from tests.bench.progress import step
from tests.unit.test_enrollment import enrol_directly


def measure(url: str, directory: Path, records: int, batch: int) -> dict[str, float]:
    now = datetime.now(UTC)
    pki = ensure_controller_pki(directory / "ctl", ["127.0.0.1"], now=now)
    migrate(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        publish_upload_keys(session, pki, now)
    key = generate_device_key()
    response = enrol_directly(sessions, pki, key, now=now)
    upload = upload_public_from_bytes(response.upload_keys[0].x25519_public_key)
    rng = random.Random(1)
    sealed = []
    with step("sealing", records) as sealing:
        for i in range(records):
            payload = simulated_record(rng, "370902001000", now)
            sealed.append(
                seal_record(
                    payload.to_bytes(),
                    record_id=payload.record_id,
                    device_id=response.device_id,
                    schema_version=f"{payload.category.value}/{payload.form_version}",
                    upload_key=upload,
                    key_version=1,
                    signing_key=key,
                    now=now,
                )
            )
            sealing.update(i + 1)
    ingestor = Ingestor(sessions, pki.upload_keys, SystemClock())
    ingestor.start_workers()  # as a controller that has served a batch has them
    batches = [sealed[i : i + batch] for i in range(0, records, batch)]
    done = 0

    def one(chunk: list[data_pb2.SealedRecord]) -> None:
        nonlocal done
        acks = ingestor.ingest_batch(response.device_id, chunk)
        assert all(a.status == data_pb2.RecordAck.STATUS_STORED for a in acks), acks[0]
        done += len(chunk)
        ingesting.update(done)

    with step("ingest", records) as ingesting:
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(one, batches))
        ingest_rate = records / (time.perf_counter() - start)

    with sessions() as session:
        rows = [
            {c.key: getattr(r, c.key) for c in Record.__table__.columns}
            for r in session.scalars(select(Record))
        ]
    with sessions.begin() as session:
        session.execute(delete(Record))
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        with engine.begin() as conn:
            conn.execute(insert(Record), rows[i : i + batch])
    raw_rate = len(rows) / (time.perf_counter() - start)
    ingestor.close()
    engine.dispose()
    return {"ingest_per_s": ingest_rate, "raw_insert_per_s": raw_rate}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    configure_logging("WARNING")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="muster-bench-") as tmp:
        directory = Path(tmp)
        if args.only in (None, "sqlite"):
            print("SQLite…", file=sys.stderr)
            results["sqlite"] = measure(
                f"sqlite:///{directory / 'c.db'}", directory / "s", args.records, args.batch
            )
        if args.only in (None, "postgres"):
            from tests.fixtures.postgres import PostgresServer

            print("PostgreSQL (durable)…", file=sys.stderr)
            server = PostgresServer(durable=True)
            server.start()
            try:
                server.create_database("bench")
                results["postgres"] = measure(
                    server.url("bench"), directory / "p", args.records, args.batch
                )
            finally:
                server.stop()
    print(f"{'database':<12} {'ingest/s':>10} {'raw insert/s':>13} {'ratio':>7}")
    for name, r in results.items():
        r["ratio"] = r["ingest_per_s"] / r["raw_insert_per_s"]
        print(
            f"{name:<12} {r['ingest_per_s']:>10.0f} {r['raw_insert_per_s']:>13.0f} {r['ratio']:>7.3f}"
        )
    print(json.dumps({"records": args.records, "batch": args.batch, **results}))


if __name__ == "__main__":
    main()
