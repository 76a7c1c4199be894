"""Every benchmark still runs: each script under tests/bench/ at a small size, as
``scripts/bench.sh`` runs it, must finish and print its figures. A benchmark that silently
broke (the fleet benchmark once died on a login page) fails here, in the suite, not at the next
measurement. The figures themselves are not asserted: tests never judge wall-clock time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMALL: dict[str, list[str]] = {
    "bench_camera.py": ["1.0"],
    "bench_comparison.py": ["--people", "2000"],
    "bench_card_read.py": ["3"],
    "bench_deliveries.py": ["--applications", "30", "--departments", "2"],
    "bench_enrol.py": ["--devices", "20", "--clients", "2"],
    "bench_face.py": ["1"],
    # Two processes: the shared-subscription path once hung, unseen, for more than one.
    "bench_fleet.py": [
        "--devices",
        "200",
        "--burst",
        "2000",
        "--sustain",
        "3",
        "--controllers",
        "2",
    ],
    "bench_ingest.py": ["--records", "300"],
    "bench_odk.py": [
        "--rounds",
        "1",
        "--odk-n",
        "20",
        "--records",
        "60",
        "--devices",
        "1",
        "--no-setup",
    ],
    "bench_progress.py": ["--records", "3000", "--repeat", "1"],
    "bench_replicas.py": ["--records", "200", "--devices", "2"],
    "bench_slices.py": ["--township-people", "300", "--townships", "20", "--per-township", "2"],
    "bench_upload.py": ["--records", "200"],
}


def test_every_benchmark_has_a_smoke_size() -> None:
    """A new benchmark gets its small size here, so it is smoke-tested from the start."""
    scripts = {p.name for p in (ROOT / "tests" / "bench").glob("bench_*.py")}
    assert scripts == set(SMALL), scripts ^ set(SMALL)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMALL))
def test_benchmark_runs_at_a_small_size(script: str) -> None:
    """The benchmark exits 0 and prints at least one figure."""
    # The system temp dir, not pytest's: the PostgreSQL benchmarks run initdb as postgres.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "bench" / script), *SMALL[script]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip(), "the benchmark printed no figures"


@pytest.mark.slow
def test_the_cluster_soak_runs_at_a_small_size() -> None:
    """scripts/soak.sh's script (tests/bench/soak_cluster.py) at 1,500 devices for 40 s on the real
    3-node NATS cluster, two replicas and PostgreSQL: it exits 0 only when the heartbeats were
    held, no device read a wrong state and no process grew, and it prints its figures."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "bench" / "soak_cluster.py"),
         "--devices", "1500", "--minutes", "0.67", "--interval", "5", "--burst", "1500",
         "--sample", "10", "--warmup", "15"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["problems"] == [] and len(figures["replica_steps"]) == 2, figures
    assert set(figures["summary"]["memory"]) >= {"controller-1", "controller-2", "nats-n1"}
