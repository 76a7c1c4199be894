"""Import of the initial data (S-04): every row checked, each rejection explained, re-import
changes nothing, moves and changes bump the township's slice version."""

from __future__ import annotations

import csv
import random
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import PersonRow, TownshipSlice
from controller.records.initial_import import Importer, import_file, read_rows
from muster.clock import VirtualClock
from muster.dataset import synthetic_rows, write_dataset
from muster.initial_data import COLUMNS
from tests.unit.conftest import NOW

T1, T2 = "370902001000", "370902002000"


def versions(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        return {s.township_code: s.version for s in session.scalars(select(TownshipSlice))}


def people(sessions: sessionmaker[Session], township: str) -> int:
    with sessions() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(PersonRow)
                .where(PersonRow.township_code == township, PersonRow.removed.is_(False))
            )
            or 0
        )


def test_csv_and_xlsx_import_and_reimport_changes_nothing(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Both file kinds import every valid row; the same file again adds, changes and bumps
    nothing."""
    for suffix in (".csv", ".xlsx"):
        path = tmp_path / f"people{suffix}"
        write_dataset(path, people=300, township_codes=[T1, T2], seed=len(suffix), today=NOW.date())
        first = import_file(sessions, path, clock=VirtualClock(NOW))
        assert first.rejected == []
        before = versions(sessions)
        again = import_file(sessions, path, clock=VirtualClock(NOW))
        assert (again.added, again.changed, again.moved, again.unchanged) == (0, 0, 0, 300)
        assert versions(sessions) == before
    assert people(sessions, T1) + people(sessions, T2) == 600


def test_bad_rows_are_rejected_with_a_reason_and_change_nothing(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Each kind of bad row is refused with its line number and a reason naming the column;
    the good rows around it are imported."""
    rows = list(synthetic_rows(6, [T1], random.Random(3), NOW.date()))
    good = rows[0]
    bad = [
        {
            **rows[1],
            "id_number": rows[1]["id_number"][:-1]
            + ("0" if rows[1]["id_number"][-1] != "0" else "1"),
        },
        {**rows[2], "birth_date": "1901-01-01"},
        {**rows[3], "category": "士兵"},
        {**rows[4], "service_unit": "3师5团2连"},
        {**rows[5], "township_code": "37090200"},
        {**good},  # the same person twice
    ]
    path = tmp_path / "bad.csv"
    with path.open("w", newline="", encoding="utf-8-sig") as fh:
        writer = csv.writer(fh)
        writer.writerow([c.header for c in COLUMNS])
        for row in [good, *bad]:
            writer.writerow([row[c.key] for c in COLUMNS])
    report = Importer(sessions, clock=VirtualClock(NOW)).import_rows(read_rows(path))
    assert report.added == 1
    codes = [(r.line, r.code) for r in report.rejected]
    assert codes == [
        (3, "id_number"),
        (4, "id_birth_date"),
        (5, "category"),
        (6, "classified"),
        (7, "township"),
        (8, "duplicate"),
    ]
    assert "不填写番号" in report.rejected[3].reason
    assert "校验位" in report.rejected[0].reason
    assert people(sessions, T1) == 1


def test_a_change_and_a_move_bump_only_the_townships_concerned(
    sessions: sessionmaker[Session],
) -> None:
    """A changed person bumps their township; a person who moved leaves a tombstone in the old
    township (bumped too) and appears in the new one."""
    rows = list(synthetic_rows(10, [T1], random.Random(5), NOW.date()))
    importer = Importer(sessions, clock=VirtualClock(NOW))
    importer.import_rows(enumerate(rows, start=2))
    assert versions(sessions) == {T1: 1}
    changed = {**rows[0], "household_registration": "外省"}
    if changed == rows[0]:
        changed["household_registration"] = "本乡镇"
    moved = {**rows[1], "township_code": T2}
    report = importer.import_rows(enumerate([changed, moved, *rows[2:]], start=2))
    assert (report.changed, report.moved, report.added, report.unchanged) == (1, 1, 1, 8)
    assert versions(sessions) == {T1: 2, T2: 1}
    assert (people(sessions, T1), people(sessions, T2)) == (9, 1)
    with sessions() as session:
        tomb = session.get(PersonRow, (T1, rows[1]["id_number"]))
        assert tomb is not None and tomb.removed and tomb.version == 2
        state = session.get(TownshipSlice, T1)
        assert state is not None and state.people == 9


def test_cli_imports_and_writes_the_rejection_report(tmp_path: Path) -> None:
    """`muster sim dataset` then `muster controller import`: a summary line, and a CSV of the
    rejected rows next to the file."""
    data = tmp_path / "d.csv"
    run = [sys.executable, "-m", "muster"]
    subprocess.run(
        [*run, "sim", "dataset", "--people", "50", "--townships", "3", "--out", str(data)],
        check=True,
        capture_output=True,
    )
    with data.open("a", encoding="utf-8") as fh:
        fh.write("370902001000,张三,110101199001011234,男,01,1990-01-01,退役士兵,,,,,,,,\n")
    out = subprocess.run(
        [*run, "controller", "import", "--file", str(data), "--data-dir", str(tmp_path / "ctl")],
        check=True,
        capture_output=True,
        text=True,
    )
    assert '"added": 50' in out.stdout and '"rejected": 1' in out.stdout
    report = (tmp_path / "d.csv.rejected.csv").read_text(encoding="utf-8-sig")
    assert "52" in report and "公民身份号码" in report
