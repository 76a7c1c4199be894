"""Upload throughput through the real path, against a raw SQLite insert of the same rows.

A controller (in this process, SQLite, WAL, synchronous=FULL) and one edge daemon (a separate
process, mutual TLS gRPC) with a pre-sealed backlog. We time from the first committed record to
the last, then insert exactly the rows the controller stored into a fresh table of the same
schema, in batches of the same size, and print both rates and their ratio.

    python tests/bench/bench_upload.py [--records N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from controller.app import Controller
from controller.db import make_engine, migrate
from controller.db.models import Record
from controller.demo.embedded_broker import EmbeddedBroker
from controller.demo.run import free_port
from controller.devices.enrolment import create_enrollment_code
from controller.settings import ControllerSettings
from edge.enrolment import enroll
from edge.identity import IdentityStore
from edge.outbox import Outbox
from edge.simulators.collector import simulated_record
from muster.clock import SystemClock
from muster.crypto import content_hash, seal_record, upload_public_from_bytes
from muster.logs import configure_logging
from tests.bench.progress import step

IDLE_PROFILE = (
    "name: simulator\nmodel: bench\nkind: simulator\nreader: {kind: none}\ncamera: {kind: none}\n"
    "uplink: {heartbeat_interval_s: 30, upload_batch: 64}\noutbox: {min_disk_free_bytes: 0}\n"
    "simulation: {records_per_minute: 0}\n"
)


def presealed_device(state_dir: Path, count: int, seed: int = 42) -> None:
    """Fill the enrolled device's outbox with ``count`` sealed records (not part of the timing)."""
    store = IdentityStore(state_dir)
    enrolment = store.enrolment()
    key = store.device_key()
    version = max(int(v) for v in enrolment.upload_keys)
    upload = upload_public_from_bytes(bytes.fromhex(enrolment.upload_keys[str(version)]))
    outbox = Outbox(state_dir / "outbox.sqlite3", clock=SystemClock())
    rng = random.Random(seed)
    now = datetime.now(UTC)
    for _ in range(count):
        payload = simulated_record(rng, enrolment.township_code, now)
        sealed = seal_record(
            payload.to_bytes(),
            record_id=payload.record_id,
            device_id=enrolment.device_id,
            schema_version=f"{payload.category.value}/{payload.form_version}",
            upload_key=upload,
            key_version=version,
            signing_key=key,
            now=now,
        )
        outbox.add(sealed, content_hash(sealed))
    outbox.close()


def raw_insert_rate(rows: list[dict[str, object]], directory: Path, batch: int) -> float:
    url = f"sqlite:///{directory / 'raw.db'}"
    migrate(url)
    engine = make_engine(url)
    with engine.begin() as conn:  # the device row the records refer to
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.execute(insert(Record), rows[i : i + batch])
    elapsed = time.perf_counter() - start
    engine.dispose()
    return len(rows) / elapsed


async def measure(records: int, directory: Path) -> dict[str, float]:
    broker = EmbeddedBroker("127.0.0.1", free_port())
    await broker.start()
    settings = ControllerSettings(
        data_dir=directory / "controller",
        enrol_port=free_port(),
        data_port=free_port(),
        admin_port=free_port(),
        mqtt_url=broker.url,
    )
    controller = Controller.prepare(settings, SystemClock())
    await controller.start()
    # Warm, as a controller that has served a large batch is: its ingest workers are running.
    assert controller.ingestor is not None
    await asyncio.to_thread(controller.ingestor.start_workers)
    code = create_enrollment_code(
        controller.sessions,
        township_code="370902001000",
        profile="simulator",
        valid_for=timedelta(hours=1),
        created_by="bench",
        now=datetime.now(UTC),
    )
    state_dir = directory / "device"
    await asyncio.to_thread(
        enroll,
        controller=f"127.0.0.1:{settings.enrol_port}",
        code=code,
        ca_cert=controller.pki.ca_cert_path,
        state_dir=state_dir,
        simulated_seed="bench",
    )
    print(f"sealing {records} records into the device outbox…", file=sys.stderr)
    await asyncio.to_thread(presealed_device, state_dir, records)
    profile = directory / "idle.yaml"
    profile.write_text(IDLE_PROFILE)
    edge = await asyncio.create_subprocess_exec(
        *[
            sys.executable,
            "-m",
            "muster",
            "edge",
            "run",
            "--profile",
            str(profile),
            "--state-dir",
            str(state_dir),
            "--log-level",
            "WARNING",
        ],
        stdin=subprocess.DEVNULL,
    )

    def stored() -> int:
        with controller.sessions() as session:
            return session.scalar(select(func.count()).select_from(Record)) or 0

    first_count, first_at = 0, 0.0
    with step("uploaded", records) as uploading:
        while True:
            count = await asyncio.to_thread(stored)
            now = time.perf_counter()
            if count and not first_at:
                first_count, first_at = count, now
            uploading.update(count)
            if count >= records:
                break
            if edge.returncode is not None:
                raise SystemExit(f"edge daemon exited with {edge.returncode}")
            await asyncio.sleep(0.02)
    upload_rate = (records - first_count) / (now - first_at)
    edge.terminate()
    await edge.wait()
    with controller.sessions() as session:
        rows = [
            {c.key: getattr(r, c.key) for c in Record.__table__.columns}
            for r in session.scalars(select(Record))
        ]
    await controller.stop()
    await broker.stop()
    raw_rate = raw_insert_rate(rows, directory, settings.upload_batch)
    return {"records": records, "upload_per_s": upload_rate, "raw_insert_per_s": raw_rate}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=5000)
    args = parser.parse_args()
    configure_logging("WARNING")
    with tempfile.TemporaryDirectory(prefix="muster-bench-") as tmp:
        result = asyncio.run(measure(args.records, Path(tmp)))
    ratio = result["upload_per_s"] / result["raw_insert_per_s"]
    print(f"{'path':<52} {'records/s':>10}")
    print(
        f"{'gRPC mTLS upload: verify + decrypt + validate + commit':<52} {result['upload_per_s']:>10.0f}"
    )
    print(
        f"{'raw SQLite insert of the same rows (same batches)':<52} {result['raw_insert_per_s']:>10.0f}"
    )
    print(f"{'ratio upload / raw insert':<52} {ratio:>10.3f}")
    print(json.dumps({**result, "ratio": round(ratio, 4)}))


if __name__ == "__main__":
    main()
