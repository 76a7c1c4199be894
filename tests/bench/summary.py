"""The issue's table after ``scripts/bench.sh``: each row's figure, the limit or peer measured
in the same run, their ratio and the goal beside it, read from the last JSON line each benchmark
printed (``scripts/bench.sh`` keeps every benchmark's stdout in one directory).

    python tests/bench/summary.py DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["main", "rows"]


def last_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    for line in reversed(path.read_text(errors="replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


Row = tuple[str, str, str, str, str, bool | None]


def _ratio_row(what: str, now: float, limit: float, peer: str, goal: float, goal_text: str) -> Row:
    ratio = now / limit if limit else 0.0
    met = ratio >= goal if goal > 0 else None
    return (what, f"{now:,.0f}", f"{peer}: {limit:,.1f}", f"{ratio:.3f}", goal_text, met)


def _processes(count: int) -> str:
    return "one controller process" if count == 1 else f"{count} controller processes ($share)"


def rows(directory: Path) -> list[Row]:
    out: list[Row] = []
    missing: list[str] = []
    fleet = last_json(directory / "bench_fleet.out")
    if fleet:
        count = fleet.get("controllers", 1)
        raw = fleet["raw_msg_per_s"]
        each = fleet.get("per_process_msg_per_s", [])
        split = (
            "; each process " + ", ".join(f"{r:,} ({r / raw:.3f}×)" for r in each)
            if count > 1 and raw
            else ""
        )
        out.append(_ratio_row(
            f"heartbeats handled by {_processes(count)}, {fleet['devices']:,} devices (msg/s)"
            + split,
            fleet["controller_msg_per_s"], raw, "broker → mosquitto_sub", 0.8, "≥ 0.8×",
        ))  # fmt: skip
        if count > 1 and "one_process_msg_per_s" in fleet:
            what, now, peer, ratio, _goal, _met = _ratio_row(
                "  the per-process figure: one controller process alone, same run (msg/s)",
                fleet["one_process_msg_per_s"], raw, "broker → mosquitto_sub", 0.0, "",
            )  # fmt: skip
            out.append((what, now, peer, ratio, "(per process)", None))
    else:
        missing.append("bench_fleet")
    ingest = last_json(directory / "bench_ingest.out")
    if ingest:
        for db, goal in (("sqlite", 0.3), ("postgres", 0.5)):
            if db in ingest:
                out.append(_ratio_row(
                    f"upload ingest, one process, {db} ({ingest['records']:,} records, rec/s)",
                    ingest[db]["ingest_per_s"], ingest[db]["raw_insert_per_s"],
                    "raw batched insert", goal, f"≥ {goal}×",
                ))  # fmt: skip
    else:
        missing.append("bench_ingest")
    odk = last_json(directory / "bench_odk.out")
    if odk:
        how = "measured" if odk["odk_measured"] else "RECORDED, not measured"
        out.append(_ratio_row(
            f"full gRPC mTLS upload path, {odk['devices']} devices (rec/s)",
            odk["muster_upload_per_s"], odk["odk_enc_ack_per_s"],
            f"ODK Central encrypted c{odk['concurrency']} ({how})", 30.0, "≥ 30× ODK",
        ))  # fmt: skip
    else:
        missing.append("bench_odk")
    upload = last_json(directory / "bench_upload.out")
    if upload:
        out.append(_ratio_row(
            "full gRPC mTLS upload path, one device (rec/s)",
            upload["upload_per_s"], upload["raw_insert_per_s"], "raw SQLite insert", 0.0, "—",
        ))  # fmt: skip
    enrol = last_json(directory / "bench_enrol.out")
    if enrol:
        rate = enrol["enrolments_per_s"]
        out.append((
            "enrolments (/s)", f"{rate:,.1f}",
            f"bare issuance: {enrol['baseline_issuance_per_s']:,.1f}; AWS CreateCertificateFromCsr"
            " 15 TPS; Azure DPS 1,000/min", f"{enrol['ratio']:.3f}", "keep ≥ 50/s", rate >= 50,
        ))  # fmt: skip
    else:
        missing.append("bench_enrol")
    replicas = last_json(directory / "bench_replicas.out")
    if replicas and len(replicas["replicas"]) > 1:
        one, more = replicas["replicas"][0], replicas["replicas"][-1]
        out.append(_ratio_row(
            f"upload ingest, {more['replicas']} controller replicas, PostgreSQL (rec/s)",
            more["rate"], one["rate"], "one replica", 0.0, "— (issue 21: measured)",
        ))  # fmt: skip
    for name in missing:
        out.append((f"{name}: no figures (it failed or did not run)", "—", "—", "—", "—", None))
    return out


def main() -> None:
    directory = Path(sys.argv[1])
    table = Table(title="issue 20: figures of this run, each beside its limit or peer and goal")
    for column in ("path", "now", "limit / peer in the same run", "ratio", "goal", "met"):
        table.add_column(column, justify="right" if column in ("now", "ratio") else "left")
    for what, now, peer, ratio, goal, met in rows(directory):
        mark = "—" if met is None else ("yes" if met else "no")
        table.add_row(what, now, peer, ratio, goal, mark)
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
