"""``muster sim idcard --people``: the township's own people as visitors, and what it refuses."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

from click.testing import CliRunner

from edge.simulators.idcard import load_visitors, visitor_cards
from edge.simulators.idcard_cli import idcard
from muster.dataset import write_dataset

TOWNSHIPS = ["370902001000", "370902002000"]


def _people(tmp_path: Path) -> Path:
    out = tmp_path / "people.csv"
    write_dataset(out, people=40, township_codes=TOWNSHIPS, seed=5, today=date(2026, 12, 1))
    return out


def test_visitors_are_the_townships_people_each_once(tmp_path: Path) -> None:
    path = _people(tmp_path)
    mine = load_visitors(path, TOWNSHIPS[0])
    everyone = load_visitors(path)
    assert 0 < len(mine) < len(everyone)
    assert all(p["township_code"] == TOWNSHIPS[0] for p in mine)
    cards = visitor_cards(mine, seed=1)
    assert sorted(c.text.id_number for c in cards) == sorted(p["id_number"] for p in mine)
    assert [c.text.id_number for c in visitor_cards(mine, seed=1)] == [
        c.text.id_number for c in cards
    ]
    assert random.Random(0)  # seeded order above, not the wall clock


def test_hostile_people_files_are_refused_with_the_reason(tmp_path: Path) -> None:
    runner = CliRunner()
    path = _people(tmp_path)
    cases = {
        ("--people", str(path), "--township", "3709"): "12-digit township",
        ("--people", str(path), "--township", "110101001000"): "nobody of township",
        ("--people", str(path), "--queue", "3"): "leave out --queue",
        ("--township", TOWNSHIPS[0]): "give --people",
    }
    xlsx = tmp_path / "people.xlsx"
    xlsx.write_bytes(b"PK\x03\x04 not really")
    cases[("--people", str(xlsx))] = ".csv"
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n", encoding="utf-8")
    cases[("--people", str(wrong))] = "姓名"
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81\x82")
    cases[("--people", str(binary))] = "cannot read"
    for args, expected in cases.items():
        result = runner.invoke(idcard, list(args))
        assert result.exit_code == 2, (args, result.output)
        assert expected in result.output, (args, result.output)
