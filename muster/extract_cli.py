"""``muster sim extract``: a department's extract with planted errors, beside the collected data
it was derived from (initial-data format with an address column)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import click

from muster.clock import SystemClock
from muster.departments import DEPARTMENTS, headers_for
from muster.errors import ConfigError
from muster.initial_data import COLUMNS
from muster.regions import parse_township
from muster.synthetic import townships as pick_townships
from muster.synthetic_extracts import make_comparison, write_table

__all__ = ["extract"]


@click.command()
@click.option(
    "--department",
    "kind",
    type=click.Choice(sorted(DEPARTMENTS)),
    required=True,
    help="which department's extract to write",
)
@click.option("--people", type=click.IntRange(min=1), required=True, help="collected people")
@click.option("--township", "township_codes", multiple=True, help="12-digit codes (repeatable)")
@click.option(
    "--townships",
    "township_count",
    type=click.IntRange(min=1),
    default=5,
    help="how many townships to pick when --township is not given",
)
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.3,
    show_default=True,
    help="share of people with a planted problem",
)
@click.option("--seed", type=int, default=2018, show_default=True, help="same seed, same files")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="directory to write the files into",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "xlsx"]),
    default="csv",
    help="file format of the tables",
)
def extract(
    kind: str,
    people: int,
    township_codes: tuple[str, ...],
    township_count: int,
    error_rate: float,
    seed: int,
    out_dir: Path,
    fmt: str,
) -> None:
    """Write OUT/collected.FMT (initial data + 住址), OUT/KIND.FMT (the extract) and
    OUT/truth.json (the planted problems, missing people and deaths)."""
    try:
        codes = [parse_township(c).code for c in township_codes] or pick_townships(
            random.Random(seed), township_count
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    made = make_comparison(
        people, kind, townships=codes, seed=seed, today=SystemClock().today(), error_rate=error_rate
    )
    collected_headers = [c.header for c in COLUMNS] + ["住址"]
    keys = {c.header: c.key for c in COLUMNS} | {"住址": "address"}
    collected = [{h: row[keys[h]] for h in collected_headers} for row in made.collected]
    write_table(out_dir / f"collected.{fmt}", collected_headers, collected)
    write_table(out_dir / f"{kind}.{fmt}", headers_for(kind), made.extract)
    ids = {int(r["_pid"]): r["id_number"] for r in made.collected}
    truth = {
        "problems": sorted([ids[pid], field] for pid, field in made.problems),
        "missing": sorted(
            r["姓名"] + "/" + r["出生日期"] for r in made.extract if int(r["_pid"]) in made.missing
        ),
        "deaths": sorted(ids[pid] for pid in made.deaths),
    }
    (out_dir / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1), "utf-8")
    click.echo(
        f"已写入 {len(made.collected)} 名采集人员、{len(made.extract)} 行{DEPARTMENTS[kind].label}"
        f"数据（问题 {len(made.problems)}，遗漏 {len(made.missing)}）：{out_dir}"
    )
