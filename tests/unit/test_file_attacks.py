"""Attacks through the files the controller writes and reads, replayed against the real writers
and the real `muster controller import` command.

- Formula injection: a name, a region or an ID number typed as a formula is written as text in
  every XLSX report and CSV the project writes, while numbers stay numbers.
- Unreadable import files (invalid UTF-8, a field over the CSV limit, a "workbook" that is no
  XLSX) are refused with the file, the line and the fix, exit status 2, no traceback, and the
  database unchanged; a GBK CSV from Chinese Excel is read correctly.
"""

from __future__ import annotations

import csv
import random
import sqlite3
import subprocess
import sys
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import ImportedDataset, ImportedRecord
from controller.records.initial_import import (
    Importer,
    Rejected,
    check_file,
    import_file,
    write_rejections,
)
from controller.records.progress import progress, weekly_report
from controller.records.region_tree import RegionEntry, load_regions
from controller.records.xlsx_reports import approved_workbook, progress_workbook, weekly_workbook
from muster.clock import VirtualClock
from muster.dataset import synthetic_rows
from muster.initial_data import COLUMNS
from muster.spreadsheets import HOSTILE_TEXTS, csv_value, formula_like, xlsx_cell
from tests.unit.conftest import NOW

TOWNSHIP = "370902001000"
MUSTER = [sys.executable, "-m", "muster"]
LINK = HOSTILE_TEXTS[0]


def as_written(text: str) -> str:
    """What a text must read back as from an XLSX cell: itself, but XML-illegal characters
    replaced and a carriage return read as a line feed (XML's end-of-line rule)."""
    text = text.replace("\r", "\n")
    return "".join("\ufffd" if ord(ch) < 32 and ch not in "\t\n" else ch for ch in text)


def cells(path: Path) -> list[tuple[str, object, str, bool]]:
    """(sheet, value, data_type, quote prefix) of every non-empty cell of a workbook on disk."""
    book = load_workbook(path)
    return [
        (sheet.title, cell.value, cell.data_type, bool(cell.quotePrefix))
        for sheet in book.worksheets
        for row in sheet.iter_rows()
        for cell in row
        if cell.value is not None
    ]


def assert_no_formula(path: Path, hostile: list[str]) -> list[object]:
    """No cell of the workbook is a formula or an error value, and every hostile text is in
    it as its literal self (quote-prefixed when it looks like a formula)."""
    found = cells(path)
    assert [c for c in found if c[2] in ("f", "e")] == []
    by_value = {value: (kind, quoted) for _, value, kind, quoted in found}
    for text in hostile:
        kind, quoted = by_value[as_written(text)]
        assert kind == "s" and quoted == formula_like(text), repr(text)
    return [value for _, value, _, _ in found]


def test_the_rule_and_its_hostile_table() -> None:
    """Every OWASP trigger (and the full-width ones) is caught; plain numbers, names and empty
    texts are not; non-text values pass through a CSV untouched."""
    assert all(formula_like(t) for t in HOSTILE_TEXTS if t[0] in "=+-@\t\r＝")
    for harmless in ("张三", "", "-12", "+3.5", "2026-11-23", "370902001000", "a=b"):
        assert not formula_like(harmless), harmless
    assert csv_value("=1+1") == "'=1+1"
    assert csv_value(-5) == -5 and csv_value(12.5) == 12.5
    assert csv_value("-12") == "-12"


def test_a_cell_is_text_even_where_openpyxl_would_make_a_formula(tmp_path: Path) -> None:
    """openpyxl on its own turns '=...' into a formula and '#N/A' into an error (the attack);
    through xlsx_cell both are plain text and numbers and dates keep their types."""
    from openpyxl import Workbook

    path = tmp_path / "raw.xlsx"
    book = Workbook(write_only=True)
    sheet = book.create_sheet("s")
    sheet.append(["=1+1", "#N/A"])  # what the writers did before
    sheet.append([xlsx_cell(sheet, v) for v in ("=1+1", "#N/A", -5, 12.5, NOW.date())])
    book.save(path)
    rows = list(load_workbook(path)["s"].iter_rows())
    assert [c.data_type for c in rows[0][:2]] == ["f", "e"]
    assert [c.data_type for c in rows[1][:4]] == ["s", "s", "n", "n"]
    assert [c.value for c in rows[1][:3]] == ["=1+1", "#N/A", -5]
    assert rows[1][4].is_date


@pytest.fixture
def hostile_area(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """A county whose township is named by a hostile region list, with people imported and
    approved records taken in from a lower level's data set, every text of which is hostile."""
    with sessions.begin() as s:
        load_regions(
            s,
            [
                RegionEntry("370902", "county", "@SUM(1+1)", "3709"),
                RegionEntry("370902001", "township", LINK, "370902"),
            ],
        )
    rows = list(synthetic_rows(4, [TOWNSHIP], random.Random(9), NOW.date()))
    Importer(sessions, clock=VirtualClock(NOW)).import_rows(enumerate(rows, start=2))
    with sessions.begin() as s:
        s.add(
            ImportedDataset(
                dataset_id="d" * 64,
                area="370902",
                source="lower",
                level="county",
                records=len(HOSTILE_TEXTS),
                created_at=NOW,
                imported_at=NOW,
            )
        )
        s.flush()
        for i, text in enumerate(HOSTILE_TEXTS):
            s.add(
                ImportedRecord(
                    record_id=f"00000000-0000-4000-8000-{i:012d}",
                    dataset_id="d" * 64,
                    township_code=TOWNSHIP,
                    category=text,
                    id_number=f"37090219500101{i:04d}",
                    content_hash=f"{i:064d}",
                    approved_level="county",
                    payload={"person": {"name": text, "id_number": text, "birth_date": text}},
                )
            )
    return sessions


def test_approved_records_with_hostile_names_are_text(
    hostile_area: sessionmaker[Session], tmp_path: Path
) -> None:
    """approved.xlsx: names, ID numbers, categories and the township's name that are formulas
    come back as their literal text, never as a formula or an error cell; nothing else of the
    sheet changes (the record ids and township codes are still there)."""
    path = tmp_path / "approved.xlsx"
    with hostile_area() as s:
        assert approved_workbook(s, "370902", path) == len(HOSTILE_TEXTS)
    values = assert_no_formula(path, [*HOSTILE_TEXTS, LINK])
    assert "00000000-0000-4000-8000-000000000000" in values and TOWNSHIP in values


def test_progress_and_weekly_reports_with_hostile_region_names_are_text(
    hostile_area: sessionmaker[Session], tmp_path: Path
) -> None:
    """progress.xlsx and the weekly report: a region named '=HYPERLINK(...)' or '@SUM(...)' is
    text, and the counts beside it are still numbers."""
    with hostile_area() as s:
        report = progress(s, "370902", NOW)
        week = weekly_report(s, "370902", (NOW - timedelta(days=1)).date(), NOW)
    progress_workbook(report, tmp_path / "progress.xlsx")
    weekly_workbook(week, tmp_path / "weekly.xlsx")
    for name in ("progress.xlsx", "weekly.xlsx"):
        assert_no_formula(tmp_path / name, [LINK])
    township = next(
        row
        for row in load_workbook(tmp_path / "progress.xlsx")["进度"].iter_rows(values_only=True)
        if row[1] == LINK
    )
    assert township[0] == "370902001" and township[2] == 4  # four people: a number


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return list(csv.reader(fh))


def test_the_rejection_report_quotes_hostile_values(tmp_path: Path) -> None:
    """rejected.csv echoes what the file said: '=1+1' as an ID number comes back as the text
    \"'=1+1\" (a leading quote), and the line numbers are still plain numbers."""
    path = tmp_path / "rejected.csv"
    write_rejections(
        path,
        [Rejected(3, "id_number", text, text) for text in HOSTILE_TEXTS]
        + [Rejected(9, "-5", "原因", "-12")],
    )
    rows = read_csv(path)[1:]
    for row, text in zip(rows, HOSTILE_TEXTS, strict=False):
        expected = "'" + text if formula_like(text) else text
        assert row == ["3", expected, "id_number", expected]
    assert rows[-1] == ["9", "-12", "'-5" if formula_like("-5") else "-5", "原因"]
    assert not [v for r in rows for v in r if formula_like(v)]


def test_the_cli_rejection_report_of_a_hostile_row(tmp_path: Path) -> None:
    """The whole way through: a CSV row whose name is a HYPERLINK formula and whose ID number is
    '=1+1' is rejected by `muster controller import`, and the report it writes holds both as
    quoted text."""
    data = tmp_path / "hostile.csv"
    good = next(synthetic_rows(1, [TOWNSHIP], random.Random(4), NOW.date()))
    with data.open("w", newline="", encoding="utf-8-sig") as fh:
        writer = csv.writer(fh)
        writer.writerow([c.header for c in COLUMNS])
        writer.writerow([{**good, "name": LINK, "id_number": "=1+1"}[c.key] for c in COLUMNS])
    run_import(data, tmp_path / "ctl", check=True)
    rows = read_csv(tmp_path / "hostile.csv.rejected.csv")
    assert rows[1][:2] == ["2", "'=1+1"]
    assert not [v for r in rows for v in r if formula_like(v)]


# --- unreadable import files --------------------------------------------------------------


def run_import(path: Path, data_dir: Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MUSTER, "controller", "import", "--file", str(path), "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def database_state(data_dir: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(data_dir / "controller.db") as conn:
        return {
            table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall())
            for table in ("people", "township_slices")
        }


def write_people(path: Path, rows: list[dict[str, str]], encoding: str = "utf-8-sig") -> bytes:
    with path.open("w", newline="", encoding=encoding) as fh:
        writer = csv.writer(fh)
        writer.writerow([c.header for c in COLUMNS])
        for row in rows:
            writer.writerow([row[c.key] for c in COLUMNS])
    return path.read_bytes()


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]]]:
    """A controller data directory that already holds one township's people (so 'unchanged'
    means something), and 2,500 more valid rows for the hostile files: more than one import
    chunk, so a file that broke half way would have committed its first chunk."""
    directory = tmp_path_factory.mktemp("imported")
    first = write_people(
        directory / "first.csv",
        list(synthetic_rows(20, [TOWNSHIP], random.Random(1), NOW.date())),
    )
    assert first
    run_import(directory / "first.csv", directory / "ctl", check=True)
    more = list(synthetic_rows(2500, ["370902002000"], random.Random(2), NOW.date()))
    return directory, more


def hostile_files(directory: Path, rows: list[dict[str, str]]) -> dict[str, tuple[Path, str]]:
    """name → (file, the line the refusal must name, or '' for none)."""
    good = write_people(directory / "good.csv", rows)
    lines = good.split(b"\n")
    files: dict[str, tuple[Path, str]] = {}

    bad_utf8 = directory / "bad-utf8.csv"  # 0xFF is neither UTF-8 nor GB18030
    lines_bad = list(lines)
    lines_bad[2400] = lines_bad[2400].replace(b",", b",\xff\xfe", 1)
    bad_utf8.write_bytes(b"\n".join(lines_bad))
    files["invalid UTF-8"] = (bad_utf8, "第 2401 行")

    huge = directory / "huge-field.csv"  # an unmatched quote swallows the rest of the file
    lines_huge = list(lines)
    lines_huge[2300] = lines_huge[2300].rstrip(b"\r") + b',"' + b"x" * 140_000 + b"\r"
    huge.write_bytes(b"\n".join(lines_huge))
    files["field over the CSV limit"] = (huge, "第 2301 行")

    text = directory / "text.xlsx"
    text.write_text("乡镇代码,姓名\n370902001000,张三\n", encoding="utf-8")
    files["a text file named .xlsx"] = (text, "")

    not_a_book = directory / "zip.xlsx"
    with zipfile.ZipFile(not_a_book, "w") as archive:
        archive.writestr("readme.txt", "not a workbook")
    files["a zip that is no workbook"] = (not_a_book, "")
    return files


@pytest.mark.parametrize(
    "kind",
    [
        "invalid UTF-8",
        "field over the CSV limit",
        "a text file named .xlsx",
        "a zip that is no workbook",
    ],
)
def test_an_unreadable_file_is_refused_and_changes_nothing(
    imported: tuple[Path, list[dict[str, str]]], tmp_path: Path, kind: str
) -> None:
    """Each unreadable file, handed to the real `muster controller import`: exit status 2, no
    Python traceback, a message naming the file, the line (where there is one) and the fix,
    and the database exactly as it was (the valid rows before the fault are not imported
    either)."""
    directory, rows = imported
    path, line = hostile_files(tmp_path, rows)[kind]
    before = database_state(directory / "ctl")
    out = run_import(path, directory / "ctl")
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    assert path.name in out.stderr and line in out.stderr
    assert "未导入任何数据" in out.stderr and ("另存为" in out.stderr or "引号" in out.stderr)
    assert database_state(directory / "ctl") == before


def test_a_gbk_csv_from_chinese_excel_is_read_as_chinese(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """A CSV saved as GBK (what Chinese Excel writes as "CSV") is detected and read as GB18030:
    the people land with their names spelled right, the same as from the UTF-8 file."""
    rows = list(synthetic_rows(30, [TOWNSHIP], random.Random(6), NOW.date()))
    gbk = tmp_path / "gbk.csv"
    write_people(gbk, rows, encoding="gbk")
    assert check_file(gbk).encoding == "gb18030"
    report = import_file(sessions, gbk, clock=VirtualClock(NOW))
    assert report.added == 30 and report.rejected == []
    utf8 = tmp_path / "utf8.csv"
    write_people(utf8, rows)
    again = import_file(sessions, utf8, clock=VirtualClock(NOW))
    assert again.unchanged == 30  # the same names, byte for byte
