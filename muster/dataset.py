"""Synthetic initial data written in the import format (CSV or XLSX), for the demo, the tests
and the benchmarks. Deterministic for a seed."""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path

from muster.errors import ConfigError
from muster.initial_data import COLUMNS
from muster.synthetic import dataset_row, townships

__all__ = ["synthetic_rows", "write_dataset"]


def synthetic_rows(
    people: int, township_codes: Sequence[str], rng: random.Random, today: date
) -> Iterator[dict[str, str]]:
    for _ in range(people):
        yield dataset_row(rng, rng.choice(township_codes), today)


def write_dataset(
    out: Path,
    *,
    people: int,
    township_count: int = 0,
    township_codes: Sequence[str] = (),
    seed: int = 2018,
    today: date,
    progress: Callable[[int], None] = lambda n: None,
) -> list[str]:
    """Write ``people`` rows to ``out`` (.csv or .xlsx); returns the townships used."""
    rng = random.Random(seed)
    codes = list(township_codes) or townships(rng, max(1, township_count))
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise ConfigError(f"{out}: write a .csv or an .xlsx file")
    out.parent.mkdir(parents=True, exist_ok=True)
    headers = [c.header for c in COLUMNS]
    rows = synthetic_rows(people, codes, rng, today)
    if suffix == ".csv":
        # utf-8-sig: the BOM makes Excel open the Chinese headers correctly.
        with out.open("w", newline="", encoding="utf-8-sig") as fh:
            writer = csv.writer(fh)
            writer.writerow(headers)
            for i, row in enumerate(rows, 1):
                writer.writerow([row[c.key] for c in COLUMNS])
                if i % 1000 == 0:
                    progress(1000)
    else:
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        sheet = book.create_sheet("初始数据")
        sheet.append(headers)
        for i, row in enumerate(rows, 1):
            sheet.append([row[c.key] for c in COLUMNS])
            if i % 1000 == 0:
                progress(1000)
        book.save(out)
    progress(people % 1000)
    return codes
