"""Enrolment rate: N devices enrolled in one run against one controller, through the real path.

The controller's enrolment service runs in this process (gRPC with server TLS, SQLite in WAL
with synchronous=FULL, a code spent and a device, a licence grant and a certificate written per
enrolment). Each device does what ``muster provision enroll`` does: generate its P-256 key,
build the CSR, send it with a single-use code, verify and store what comes back. Codes are
created beforehand (not timed). The baseline, measured in the same run, is the bare cost of the
CA issuing a certificate from a CSR (key generation + CSR + ECDSA signature), so the ratio shows
what the protocol, the database and the device's durable writes add.

    python tests/bench/bench_enrol.py [--devices N] [--clients C]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from controller.db import make_engine, migrate, session_factory
from controller.demo.run import free_port
from controller.devices.enrolment import Enroller, create_enrollment_code, publish_upload_keys
from controller.devices.pki_store import ensure_controller_pki
from controller.rpc.enrolment_service import EnrollmentService
from edge.enrolment import enroll
from muster.clock import SystemClock
from muster.crypto import generate_device_key
from muster.crypto.pki import build_csr, issue_device_certificate
from muster.logs import configure_logging
from muster.v1 import enrollment_pb2_grpc
from tests.bench.progress import step

TOWNSHIPS = [f"3709020{n:02d}000" for n in range(1, 21)]


def baseline(count: int, pki_dir: Path) -> float:
    pki = ensure_controller_pki(pki_dir, ["127.0.0.1"], now=datetime.now(UTC))
    now = datetime.now(UTC)
    started = time.perf_counter()
    for n in range(count):
        issue_device_certificate(
            pki.ca_key, pki.ca_cert, build_csr(generate_device_key()), f"dev-{n}", now=now
        )
    return count / (time.perf_counter() - started)


def serve(
    enroller: Enroller,
    key: bytes,
    cert: bytes,
    port: int,
    ready: threading.Event,
    stop: threading.Event,
) -> None:
    async def main() -> None:
        server = grpc.aio.server()
        enrollment_pb2_grpc.add_EnrollmentServicer_to_server(EnrollmentService(enroller), server)
        server.add_secure_port(f"127.0.0.1:{port}", grpc.ssl_server_credentials([(key, cert)]))
        await server.start()
        ready.set()
        await asyncio.to_thread(stop.wait)
        await server.stop(grace=1)

    asyncio.run(main())


def run(devices: int, clients: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-enrol-") as tmp:
        root = Path(tmp)
        now = datetime.now(UTC)
        pki = ensure_controller_pki(root / "controller", ["127.0.0.1"], now=now)
        url = f"sqlite:///{root / 'controller.db'}"
        migrate(url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            publish_upload_keys(session, pki, now)
        print(f"creating {devices} enrolment codes…", file=sys.stderr)
        codes = [
            create_enrollment_code(
                sessions,
                township_code=TOWNSHIPS[n % len(TOWNSHIPS)],
                profile="generic-pc" if n % 5 == 0 else "fixed-kiosk",
                valid_for=timedelta(hours=2),
                created_by="bench",
                now=now,
            )
            for n in range(devices)
        ]
        enroller = Enroller(
            sessions,
            pki,
            licence_days=365,
            mqtt_url="mqtt://127.0.0.1:1883",
            data_endpoint="127.0.0.1:7444",
            clock=SystemClock(),
        )
        port = free_port()
        ready, stop = threading.Event(), threading.Event()
        server = threading.Thread(
            target=serve,
            args=(
                enroller,
                pki.server_key_path.read_bytes(),
                pki.server_cert_path.read_bytes(),
                port,
                ready,
                stop,
            ),
            daemon=True,
        )
        server.start()
        ready.wait(30)
        done = 0
        lock = threading.Lock()

        def one(n: int) -> str:
            nonlocal done
            result = enroll(
                controller=f"127.0.0.1:{port}",
                code=codes[n],
                ca_cert=pki.ca_cert_path,
                state_dir=root / "devices" / f"d{n}",
                simulated_seed=f"bench-{n}",
            )
            with lock:
                done += 1
                enrolling.update(done)
            return result.device_id

        with step("enrolled", devices) as enrolling:
            started = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                ids = list(pool.map(one, range(devices)))
            elapsed = time.perf_counter() - started
        stop.set()
        server.join(10)
        engine.dispose()
        assert len(set(ids)) == devices, "every enrolment must create its own device"
        base = baseline(min(devices, 500), root / "baseline")
    return {
        "devices": devices,
        "clients": clients,
        "seconds": round(elapsed, 2),
        "enrolments_per_s": round(devices / elapsed, 1),
        "baseline_issuance_per_s": round(base, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4, help="devices enrolling at once")
    args = parser.parse_args()
    configure_logging("WARNING")  # one line per enrolment would drown the progress line
    result = run(args.devices, args.clients)
    ratio = result["enrolments_per_s"] / result["baseline_issuance_per_s"]
    print(f"{'path':<56} {'per s':>10}")
    print(
        f"{'enrolment over gRPC/TLS, DB commit, device writes':<56} "
        f"{result['enrolments_per_s']:>10.1f}"
    )
    print(
        f"{'baseline: key + CSR + certificate issuance only':<56} "
        f"{result['baseline_issuance_per_s']:>10.1f}"
    )
    print(f"{'ratio enrolment / bare issuance':<56} {ratio:>10.3f}")
    print(json.dumps({**result, "ratio": round(ratio, 4)}))


if __name__ == "__main__":
    main()
