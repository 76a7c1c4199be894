"""``muster sim dataset``: synthetic initial data in the import format."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import Progress

from muster.clock import SystemClock
from muster.dataset import write_dataset
from muster.errors import ConfigError
from muster.regions import parse_township

__all__ = ["dataset"]


@click.command()
@click.option("--people", type=click.IntRange(min=1), required=True, help="rows to write")
@click.option(
    "--townships",
    "township_count",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="spread the people over this many townships of real counties",
)
@click.option(
    "--township",
    "township_codes",
    multiple=True,
    help="use exactly these 12-digit township codes instead (repeatable)",
)
@click.option("--seed", type=int, default=2018, show_default=True, help="same seed, same people")
@click.option("--out", type=click.Path(path_type=Path), required=True, help=".csv or .xlsx")
def dataset(
    people: int, township_count: int, township_codes: tuple[str, ...], seed: int, out: Path
) -> None:
    """Write synthetic people (valid ID numbers, real region codes, realistic categories)."""
    try:
        codes = [parse_township(c).code for c in township_codes]
        with Progress(transient=True) as progress:
            task = progress.add_task("生成 generating", total=people)
            used = write_dataset(
                out,
                people=people,
                township_count=township_count,
                township_codes=codes,
                seed=seed,
                today=SystemClock().today(),
                progress=lambda n: progress.advance(task, n),
            )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"已写入 {people} 人，{len(used)} 个乡镇：{out}")
