"""The chaos suite's CI run: three real device daemons uploading to two controller replicas on a
PostgreSQL of the run's own, through Mosquitto with client certificates and again through the
3-node NATS cluster, while 50 seeded faults
hit them (kill -9 of devices, replicas, the broker and the database; device clock jumps; cut
links; latency and packet loss on a device's links). After recovery nothing is lost, nothing is doubled, and the devices' status at the
centre is true. ``bash scripts/chaos.sh`` runs the long version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from muster.chaos_plan import FAULT_KINDS, KILL_CONTROLLER
from tests.chaos.runner import ChaosConfig, run_chaos

FAULTS = 50


# The world takes a minute or two to start on a loaded two-core machine, the faults two or three.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("broker", ["mosquitto", "nats"])
def test_fifty_faults_lose_and_double_nothing(tmp_path: Path, broker: str) -> None:
    """Every kind of fault lands at least once; every sealed record is stored exactly once under
    its own hash; up devices read online and the one left dead reads offline; the fault log has
    a line per fault with its seed. Once on Mosquitto, once on the 3-node NATS cluster (a broker
    fault kills one node there; devices fail over along the nodes enrolment named)."""
    config = ChaosConfig(
        broker=broker,
        out_dir=tmp_path / "chaos",
        seed=21,
        devices=3,
        controllers=2,
        faults=FAULTS,
        records=300,
        records_per_minute=60,
        mean_gap_s=0.6,
        commands=10,
        recovery_timeout_s=180,
        # A replica restart takes half a minute here; a few of them keep the run short.
        weights={KILL_CONTROLLER: 0.8},
    )
    counts = run_chaos(config, Console(stderr=True, width=100))
    log = [json.loads(line) for line in (config.out_dir / "faults.jsonl").read_text().splitlines()]
    injected = [e for e in log if "kind" in e]
    summary = json.loads((config.out_dir / "summary.json").read_text())

    assert counts.faults_injected == FAULTS and len(injected) == FAULTS
    assert set(counts.faults_by_kind) == set(FAULT_KINDS)
    assert {e["seed"] for e in injected} == {21}
    assert counts.recovered, summary
    assert counts.records_sealed >= 300
    assert counts.records_lost == 0, summary
    assert counts.records_doubled == 0 and counts.content_mismatched == 0, summary
    assert counts.records_stored == counts.records_sealed
    # Collection stopped means stopped: no daemon outlived its restart to seal on afterwards.
    assert counts.sealed_after_stop == 0, summary
    assert counts.stray_processes == {
        "device-1": 0,
        "device-2": 0,
        "device-3": 0,
        "controllers": 0,
    }, summary
    assert counts.status_wrong == [], summary
    assert counts.devices_up_online == 2 and counts.devices_dead_offline == 1
    assert summary["ok"] is True
    if broker == "nats":
        nodes = {e["target"] for e in injected if e["kind"] == "kill_broker"}
        assert nodes <= {"broker-n1", "broker-n2", "broker-n3"} and nodes, nodes
