"""Side by side with ODK Central: its OpenRosa submission ingest and muster's full upload path
(sealed records from edge daemon processes over mutual-TLS gRPC to a controller: signature check,
decryption, validation, commit), run alternately in one run on this machine, with both rates
and their ratio. The goal is muster >= 30x ODK's encrypted rate at concurrency 8.

ODK Central runs from the kit in ``/work/shared/peers/odk-central`` (``--kit``; its README says
how: ``setup.sh`` with ``MIRROR`` set to a mirror of getodk/central-backend). When Central is
not listening on 127.0.0.1:8383 this benchmark runs ``setup.sh`` once; if that fails it says
what stopped it and prints muster's side beside the kit's *recorded* figures (RESULTS.md),
labelled as recorded, not measured.

Per round: ODK takes ``--odk-n`` encrypted submissions from ``--concurrency`` clients (bodies
built before the clock starts, as the kit's bench.py does; "fully processed" waits until
Central's worker backlog is empty), then muster takes ``--records`` records from ``--devices``
enrolled devices at once, each its own edge daemon process.

    python tests/bench/bench_odk.py [--rounds 2] [--odk-n 1000] [--records 20000] [--devices 2]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import func, select

from controller.app import Controller
from controller.db.models import Record
from controller.demo.embedded_broker import EmbeddedBroker
from controller.demo.run import free_port
from controller.devices.enrolment import create_enrollment_code
from controller.settings import ControllerSettings
from edge.enrolment import enroll
from muster.clock import SystemClock
from muster.logs import configure_logging
from tests.bench.bench_upload import IDLE_PROFILE, presealed_device
from tests.bench.progress import step

KIT = Path(os.environ.get("MUSTER_ODK_KIT", "/work/shared/peers/odk-central"))
MIRROR = Path(os.environ.get("MIRROR", "/work/.mirror/getodk+central-backend/repo"))
ODK_PG = "-h 127.0.0.1 -p 5439 -U postgres jubilant"
# RESULTS.md of the kit, run 2, single process (2026-11-23): encrypted OpenRosa at c8.
RECORDED = {"ack_per_s": 166.8, "fully_processed_per_s": 76.8, "source": "kit RESULTS.md run 2"}


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def central_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 8383), timeout=2):
            return True
    except OSError:
        return False


def start_central(kit: Path, setup: bool = True) -> str | None:
    """None when Central listens (started here if need be), else what stopped it."""
    if central_up() and Path("/tmp/odk/state/state.json").exists():
        return None
    if not setup:
        return "Central is not listening on 127.0.0.1:8383 and --no-setup was given"
    if not (kit / "setup.sh").exists():
        return f"no ODK kit at {kit}"
    if not MIRROR.exists():
        return (
            f"no mirror of getodk/central-backend at {MIRROR} (fetch github:getodk/central-backend)"
        )
    say(f"starting ODK Central from the kit ({kit / 'setup.sh'})…")
    done = subprocess.run(
        ["bash", str(kit / "setup.sh")],
        env={**os.environ, "MIRROR": str(MIRROR)},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0 or not central_up():
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        return f"the kit's setup.sh failed ({done.returncode}): " + " | ".join(tail)
    return None


def load_kit(kit: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("odk_kit_bench", kit / "bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class OdkSide:
    def __init__(self, kit: ModuleType, concurrency: int) -> None:
        self.kit = kit
        self.concurrency = concurrency
        self.state = json.loads(Path(kit.STATE).read_text())
        status, session = kit.api_json(
            "POST",
            "/v1/sessions",
            body={"email": self.state["email"], "password": self.state["password"]},
        )
        if status != 200:
            raise SystemExit(f"ODK Central refused the kit's admin login: {status} {session}")
        self.token = session["token"]
        self.enc = kit.Encryptor(Path(self.state["encPubKeyB64"]).read_text().strip())
        self.rng = random.Random(7)

    def round(self, n: int, tag: str) -> dict[str, float]:
        items = self.kit.build("openrosa:enc", n, self.state, self.token, self.enc, self.rng, tag)
        requests = [(path, body, headers) for _, path, body, headers, _ in items]
        elapsed, statuses, _lat, bodies = self.kit.run_requests(requests, self.concurrency)
        failed = [s for s in statuses if s not in (200, 201)]
        if failed:
            raise SystemExit(f"ODK Central answered {len(failed)} of {n} with errors: {bodies}")
        start = time.perf_counter()
        while self.kit.worker_backlog(ODK_PG):
            time.sleep(0.5)
        drain = time.perf_counter() - start
        return {"ack_per_s": n / elapsed, "fully_processed_per_s": n / (elapsed + drain)}


class MusterSide:
    """A controller in this process (SQLite, WAL, synchronous=FULL) and enrolled devices, each
    uploading a pre-sealed backlog from its own ``muster edge run`` process per round."""

    def __init__(self, directory: Path, devices: int) -> None:
        self.directory = directory
        self.devices = devices
        self.states: list[Path] = []

    async def start(self) -> None:
        self.broker = EmbeddedBroker("127.0.0.1", free_port())
        await self.broker.start()
        self.settings = ControllerSettings(
            data_dir=self.directory / "controller",
            enrol_port=free_port(),
            data_port=free_port(),
            admin_port=free_port(),
            mqtt_url=self.broker.url,
        )
        self.controller = Controller.prepare(self.settings, SystemClock())
        await self.controller.start()
        # Warm, as a controller that has served a large batch is: its ingest workers are running.
        assert self.controller.ingestor is not None
        await asyncio.to_thread(self.controller.ingestor.start_workers)
        for n in range(self.devices):
            code = create_enrollment_code(
                self.controller.sessions,
                township_code="370902001000",
                profile="simulator",
                valid_for=timedelta(hours=1),
                created_by="bench",
                now=datetime.now(UTC),
            )
            state = self.directory / f"device{n}"
            await asyncio.to_thread(
                enroll,
                controller=f"127.0.0.1:{self.settings.enrol_port}",
                code=code,
                ca_cert=self.controller.pki.ca_cert_path,
                state_dir=state,
                simulated_seed=f"bench-odk-{n}",
            )
            self.states.append(state)
        self.profile = self.directory / "idle.yaml"
        self.profile.write_text(IDLE_PROFILE)

    def stored(self) -> int:
        with self.controller.sessions() as session:
            return session.scalar(select(func.count()).select_from(Record)) or 0

    async def round(self, records: int, seed: int) -> dict[str, float]:
        share = records // self.devices
        for n, state in enumerate(self.states):
            await asyncio.to_thread(presealed_device, state, share, seed * 1000 + n)
        total = share * self.devices
        base = await asyncio.to_thread(self.stored)
        edges = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "muster",
                "edge",
                "run",
                "--profile",
                str(self.profile),
                "--state-dir",
                str(state),
                "--log-level",
                "WARNING",
                stdin=subprocess.DEVNULL,
            )
            for state in self.states
        ]
        first_count, first_at, now = 0, 0.0, 0.0
        try:
            with step("muster uploaded", total) as uploading:
                while True:
                    count = await asyncio.to_thread(self.stored) - base
                    now = time.perf_counter()
                    if count and not first_at:
                        first_count, first_at = count, now
                    uploading.update(count)
                    if count >= total:
                        break
                    if any(edge.returncode is not None for edge in edges):
                        raise SystemExit("an edge daemon exited during the upload")
                    await asyncio.sleep(0.02)
        finally:
            for edge in edges:
                if edge.returncode is None:
                    edge.terminate()
                await edge.wait()
        return {"upload_per_s": (total - first_count) / max(now - first_at, 1e-9)}

    async def stop(self) -> None:
        await self.controller.stop()
        await self.broker.stop()


async def run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    stopped = start_central(args.kit, setup=not args.no_setup)
    odk = None
    if stopped is None:
        odk = OdkSide(load_kit(args.kit), args.concurrency)
    else:
        say(f"ODK Central cannot run here: {stopped}")
    muster = MusterSide(directory, args.devices)
    await muster.start()
    rounds: list[dict[str, Any]] = []
    try:
        for n in range(args.rounds):
            entry: dict[str, Any] = {"round": n + 1}
            if odk is not None:
                say(f"round {n + 1}: ODK Central, {args.odk_n} encrypted submissions, "
                    f"concurrency {args.concurrency}…")  # fmt: skip
                entry["odk"] = await asyncio.to_thread(odk.round, args.odk_n, f"muster-{n}")
                say(f"  {entry['odk']['ack_per_s']:.1f}/s acknowledged, "
                    f"{entry['odk']['fully_processed_per_s']:.1f}/s fully processed")  # fmt: skip
            say(f"round {n + 1}: muster, {args.records} records from {args.devices} devices…")
            entry["muster"] = await muster.round(args.records, n + 1)
            say(f"  {entry['muster']['upload_per_s']:.0f}/s")
            rounds.append(entry)
    finally:
        await muster.stop()
    return {"rounds": rounds, "odk_stopped_by": stopped}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--odk-n", type=int, default=1000, help="ODK submissions per round")
    # 20,000: at 4,000 a round lasted under a second and moved 4.5k-6.8k/s between rounds.
    parser.add_argument("--records", type=int, default=20000, help="muster records per round")
    parser.add_argument("--devices", type=int, default=2, help="muster devices uploading at once")
    parser.add_argument("--concurrency", type=int, default=8, help="ODK clients at once")
    parser.add_argument("--kit", type=Path, default=KIT)
    parser.add_argument(
        "--no-setup", action="store_true", help="use Central only if it is already running"
    )
    args = parser.parse_args()
    configure_logging("WARNING")
    with tempfile.TemporaryDirectory(prefix="muster-bench-odk-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    rounds = result["rounds"]
    ours = statistics.median(r["muster"]["upload_per_s"] for r in rounds)
    measured = result["odk_stopped_by"] is None
    if measured:
        ack = statistics.median(r["odk"]["ack_per_s"] for r in rounds)
        full = statistics.median(r["odk"]["fully_processed_per_s"] for r in rounds)
        label = "measured in this run"
    else:
        ack, full = RECORDED["ack_per_s"], RECORDED["fully_processed_per_s"]
        label = f"RECORDED, not measured ({RECORDED['source']})"
    c = args.concurrency
    print(f"{'path (median of ' + str(len(rounds)) + ' alternating rounds)':<64} {'per s':>10}")
    print(f"{'muster: gRPC mTLS upload, ' + str(args.devices) + ' devices':<64} {ours:>10.0f}")
    print(f"{f'ODK Central: encrypted OpenRosa, concurrency {c}, acknowledged':<64} {ack:>10.1f}")
    print(
        f"{f'ODK Central: encrypted OpenRosa, concurrency {c}, fully processed':<64} {full:>10.1f}"
    )
    print(f"{'ratio muster / ODK acknowledged (goal >= 30)':<64} {ours / ack:>10.1f}")
    print(f"{'ratio muster / ODK fully processed':<64} {ours / full:>10.1f}")
    print(f"ODK figures: {label}"
          + ("" if measured else f"; ODK could not run: {result['odk_stopped_by']}"))  # fmt: skip
    print(
        json.dumps(
            {
                "muster_upload_per_s": round(ours, 1),
                "odk_enc_ack_per_s": round(ack, 1),
                "odk_enc_fully_processed_per_s": round(full, 1),
                "ratio": round(ours / ack, 2),
                "ratio_fully_processed": round(ours / full, 2),
                "odk_measured": measured,
                "odk_stopped_by": result["odk_stopped_by"],
                "concurrency": c,
                "devices": args.devices,
                "rounds": rounds,
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
