"""``python -m tests.chaos`` (from a checkout; ``bash scripts/chaos.sh`` sets it up): a chaos run with
its counts table on stderr and its JSON summary as the last line on stdout. Exit status 1 when a
record was lost or doubled or a device's status is wrong at the end."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click

from muster.chaos_plan import FAULT_KINDS
from tests.chaos.runner import ChaosConfig, run_chaos

__all__ = ["chaos"]


def _weights(values: tuple[str, ...]) -> dict[str, float]:
    weights: dict[str, float] = {}
    for value in values:
        kind, sep, number = value.partition("=")
        if not sep or kind not in FAULT_KINDS:
            raise click.BadParameter(
                f"{value!r}: 应为 类型=权重, 类型取 {', '.join(FAULT_KINDS)}", param_hint="--weight"
            )
        try:
            weight = float(number)
        except ValueError:
            weight = -1.0
        if not 0 <= weight <= 1000:
            raise click.BadParameter(
                f"{value!r}: 权重须是 0 到 1000 之间的数", param_hint="--weight"
            )
        weights[kind] = weight
    return weights


@click.command()
@click.option(
    "--faults",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help=(
        "faults to inject (kill -9 of devices, replicas, broker, database; clock jumps;"
        " partitions; latency and packet loss)"
    ),
)
@click.option(
    "--records",
    type=click.IntRange(min=0),
    default=600,
    show_default=True,
    help="records sealed into the devices' outboxes before the run, split over them",
)
@click.option(
    "--devices",
    type=click.IntRange(min=2, max=999),
    default=3,
    show_default=True,
    help="device daemons (real processes, enrolled); the last is left dead at the end",
)
@click.option(
    "--controllers",
    type=click.IntRange(min=2, max=16),
    default=2,
    show_default=True,
    help="controller replicas sharing the telemetry subscription on one PostgreSQL",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, max=6000),
    default=60.0,
    show_default=True,
    help="records each device collects per minute during the run",
)
@click.option(
    "--gap",
    type=click.FloatRange(min=0.05, max=600),
    default=1.5,
    show_default=True,
    help="mean seconds between faults",
)
@click.option(
    "--commands",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="admin commands sent to devices during the run (some short-lived)",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="seed of the fault and command plan; the same seed replays the same plan",
)
@click.option(
    "--recovery-timeout",
    type=click.FloatRange(min=10),
    default=240.0,
    show_default=True,
    help="seconds to wait at the end for every outbox to drain",
)
@click.option(
    "--weight",
    "weights",
    multiple=True,
    metavar="KIND=W",
    callback=lambda ctx, param, value: _weights(value),
    help=(
        "how often a kind of fault is drawn, over the defaults (repeatable), e.g."
        f" kill_controller=0.8; kinds: {', '.join(FAULT_KINDS)}"
    ),
)
@click.option(
    "--broker",
    type=click.Choice(["mosquitto", "nats"]),
    default="mosquitto",
    show_default=True,
    help=(
        "mosquitto: one broker, replicas sharing $share; nats: the 3-node NATS cluster, devices"
        " failing over along its nodes, replicas on its queue group and JetStream"
    ),
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="directory for faults.jsonl, summary.json and the logs (default: a new temp dir)",
)
def chaos(
    faults: int,
    records: int,
    devices: int,
    controllers: int,
    rate: float,
    gap: float,
    commands: int,
    seed: int,
    recovery_timeout: float,
    weights: dict[str, float],
    broker: str,
    out: Path | None,
) -> None:
    """Run a fleet under seeded faults and count lost and doubled records (the chaos suite)."""
    if out is not None and out.exists() and any(out.iterdir()):
        raise click.BadParameter(f"{out} 不是空目录; 请给一个新目录", param_hint="--out")
    out_dir = out or Path(tempfile.mkdtemp(prefix="muster-chaos-"))
    config = ChaosConfig(
        out_dir=out_dir,
        seed=seed,
        devices=devices,
        controllers=controllers,
        faults=faults,
        records=records,
        records_per_minute=rate,
        mean_gap_s=gap,
        commands=commands,
        recovery_timeout_s=recovery_timeout,
        weights=weights,
        broker=broker,
    )
    click.echo(f"chaos run in {out_dir}", err=True)
    counts = run_chaos(config)
    click.echo(json.dumps(counts.as_json(), ensure_ascii=False))
    sys.exit(0 if counts.ok else 1)
