"""Departments' extracts and the comparison: the row rule, hostile headers and rows, re-import,
the linkage's precision and recall on planted errors, and the files it writes."""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import func, select

from controller.cli.service import controller
from controller.comparison.extracts import import_extract
from controller.comparison.runs import run_comparison
from controller.db import make_engine, migrate, session_factory
from controller.db.models import (
    ComparisonFinding,
    ComparisonRun,
    DeceasedPerson,
    DepartmentExtract,
    DepartmentExtractRow,
)
from muster.departments import ExtractHeaderError, check_headers, headers_for, parse_extract_row
from muster.initial_data import COLUMNS, RowRejected
from muster.name_match import name_pinyin
from muster.spreadsheets import HOSTILE_TEXTS
from muster.synthetic import townships
from muster.synthetic_extracts import make_comparison, write_table

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
TODAY = NOW.date()
TOWNSHIPS = townships(random.Random(3), 6)


def _sessions(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate(url)
    return session_factory(make_engine(url))


def _collected_file(made, path: Path) -> Path:  # type: ignore[no-untyped-def]
    headers = [c.header for c in COLUMNS] + ["住址"]
    keys = {c.header: c.key for c in COLUMNS} | {"住址": "address"}
    write_table(path, headers, [{h: r[keys[h]] for h in headers} for r in made.collected])
    return path


def test_homophones_share_their_pinyin() -> None:
    assert name_pinyin("张伟") == name_pinyin("张玮") == name_pinyin(" 张 伟 ")


def test_a_row_without_id_needs_birth_date_and_sex() -> None:
    row = {"姓名": "王芳", "公民身份号码": "", "性别": "女", "出生日期": "", "住址": "x"}
    with pytest.raises(RowRejected, match="出生日期"):
        parse_extract_row("household", {**row, "户号": "1", "户籍状态": "正常"}, today=TODAY)


def test_an_invalid_id_is_kept_for_linkage_not_rejected() -> None:
    row = {
        "姓名": "王芳",
        "公民身份号码": "370902194005051235",
        "性别": "女",
        "出生日期": "1940-05-05",
        "住址": "",
        "户号": "1",
        "户籍状态": "正常",
    }
    person = parse_extract_row("household", row, today=TODAY)
    assert person.id_number == "370902194005051235" and not person.id_valid


def test_another_departments_headers_name_that_department() -> None:
    with pytest.raises(ExtractHeaderError, match="--department funeral"):
        check_headers("social_security", headers_for("funeral"))


def test_unknown_and_missing_headers_are_named() -> None:
    with pytest.raises(ExtractHeaderError, match="参保状态") as caught:
        check_headers("social_security", [*headers_for("social_security")[:6], "备注"])
    assert "备注" in str(caught.value)


def test_rows_outside_the_region_are_rejected_with_the_reason(tmp_path: Path) -> None:
    made = make_comparison(60, "funeral", townships=TOWNSHIPS[:2], seed=1, today=TODAY)
    path = tmp_path / "funeral.csv"
    write_table(path, headers_for("funeral"), made.extract)
    sessions = _sessions(tmp_path)
    report = import_extract(
        sessions, "funeral", path, now=NOW, imported_by="t", region_prefix=TOWNSHIPS[0]
    )
    outside = [r for r in report.rejected if r.code == "region"]
    inside = sum(1 for r in made.extract if r["乡镇代码"] == TOWNSHIPS[0])
    assert outside and report.accepted + len(report.rejected) == len(made.extract)
    assert report.accepted <= inside
    assert all("不在本数据覆盖的区域" in r.reason for r in outside)


def test_reimport_changes_nothing_and_a_bad_file_nothing_at_all(tmp_path: Path) -> None:
    made = make_comparison(80, "social_security", townships=TOWNSHIPS, seed=2, today=TODAY)
    good = tmp_path / "ss.xlsx"
    write_table(good, headers_for("social_security"), made.extract)
    sessions = _sessions(tmp_path)
    first = import_extract(sessions, "social_security", good, now=NOW, imported_by="t")
    again = import_extract(sessions, "social_security", good, now=NOW, imported_by="t")
    assert again.already_imported and again.extract_id == first.extract_id
    wrong = tmp_path / "funeral.csv"
    write_table(wrong, headers_for("funeral"), [])
    with pytest.raises(ExtractHeaderError):
        import_extract(sessions, "social_security", wrong, now=NOW, imported_by="t")
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(DepartmentExtract)) == 1
        rows = s.scalar(select(func.count()).select_from(DepartmentExtractRow))
        assert rows == first.accepted


def test_duplicate_id_numbers_are_rejected_naming_the_first_line(tmp_path: Path) -> None:
    made = make_comparison(10, "housing", townships=TOWNSHIPS, seed=4, today=TODAY, error_rate=0)
    rows = [*made.extract, dict(made.extract[0])]
    path = tmp_path / "h.csv"
    write_table(path, headers_for("housing"), rows)
    report = import_extract(_sessions(tmp_path), "housing", path, now=NOW, imported_by="t")
    assert [r.code for r in report.rejected] == ["duplicate"]
    assert "第 2 行" in report.rejected[0].reason


@pytest.mark.parametrize("kind", ["household", "funeral"])
def test_comparison_finds_the_planted_errors(tmp_path: Path, kind: str) -> None:
    """Small-size precision and recall of both lists (the benchmark measures at 100k)."""
    made = make_comparison(600, kind, townships=TOWNSHIPS, seed=11, today=TODAY)
    extract = tmp_path / f"{kind}.csv"
    write_table(extract, headers_for(kind), made.extract)
    collected = _collected_file(made, tmp_path / "collected.csv")
    sessions = _sessions(tmp_path)
    import_extract(sessions, kind, extract, now=NOW, imported_by="t")
    result = run_comparison(
        sessions, kind, out_dir=tmp_path / "out", now=NOW, run_by="t", collected_file=collected
    )
    pid = {r["id_number"]: int(r["_pid"]) for r in made.collected}
    got = {(pid[p.id_number], p.field) for p in result.findings.problems}
    hit = len(got & made.problems)
    assert hit / len(got) >= 0.98 and hit / len(made.problems) >= 0.95
    missing = {(m.name, m.birth_date) for m in result.findings.missing}
    truth = {(r["姓名"], r["出生日期"]) for r in made.extract if int(r["_pid"]) in made.missing}
    if truth:
        hit = len(missing & truth)
        assert hit / len(missing) >= 0.98 and hit / len(truth) >= 0.95
    else:
        assert not missing
    with (tmp_path / "out" / "problems.csv").open(encoding="utf-8-sig") as fh:
        header = next(csv.reader(fh))
    assert {
        "公民身份号码",
        "姓名",
        "字段",
        "采集值",
        "部门值",
        "部门",
        "匹配方式",
        "匹配得分",
    } <= set(header)
    book = load_workbook(tmp_path / "out" / "comparison.xlsx", read_only=True)
    assert book.sheetnames[0] == "汇总"
    with sessions() as s:
        run = s.scalars(select(ComparisonRun)).one()
        assert run.problems == len(result.findings.problems) and run.run_by == "t"
        findings = s.scalar(select(func.count()).select_from(ComparisonFinding))
        assert findings == len(result.findings.problems) + len(result.findings.missing)
        # A run on a file marks nobody deceased: the file's people are not ours.
        assert s.scalar(select(func.count()).select_from(DeceasedPerson)) == 0
    if kind == "funeral":
        deaths = {pid[d.id_number] for d in result.findings.deaths}
        assert len(deaths & made.deaths) / len(made.deaths) >= 0.95


def test_hostile_names_stay_text_in_every_output(tmp_path: Path) -> None:
    made = make_comparison(
        len(HOSTILE_TEXTS),
        "household",
        townships=TOWNSHIPS,
        seed=5,
        today=TODAY,
        error_rate=0,
        only_ours=0,
        only_theirs=0,
    )
    for row, text in zip(made.extract, HOSTILE_TEXTS, strict=True):
        row["住址"] = text
    extract = tmp_path / "household.csv"
    write_table(extract, headers_for("household"), made.extract)
    sessions = _sessions(tmp_path)
    import_extract(sessions, "household", extract, now=NOW, imported_by="t")
    run_comparison(
        sessions,
        "household",
        out_dir=tmp_path / "out",
        now=NOW,
        run_by="t",
        collected_file=_collected_file(made, tmp_path / "c.csv"),
    )
    text = (tmp_path / "out" / "problems.csv").read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK" in text and "\n=" not in text and ",=" not in text
    book = load_workbook(tmp_path / "out" / "comparison.xlsx")
    assert all(c.data_type != "f" for r in book["问题数据"].iter_rows() for c in r)


def test_cli_refuses_another_departments_file_with_exit_2(tmp_path: Path) -> None:
    made = make_comparison(20, "funeral", townships=TOWNSHIPS, seed=6, today=TODAY)
    path = tmp_path / "funeral.csv"
    write_table(path, headers_for("funeral"), made.extract)
    runner = CliRunner()
    args = ["--data-dir", str(tmp_path / "ctl")]
    done = runner.invoke(
        controller, ["extract", "import", *args, "--department", "petitions", "--file", str(path)]
    )
    assert done.exit_code == 2 and "--department funeral" in done.output
    ok = runner.invoke(
        controller, ["extract", "import", *args, "--department", "funeral", "--file", str(path)]
    )
    assert ok.exit_code == 0, ok.output
    summary = json.loads(ok.output.strip().splitlines()[-1])
    again = runner.invoke(
        controller, ["extract", "import", *args, "--department", "funeral", "--file", str(path)]
    )
    assert json.loads(again.output.strip().splitlines()[-1])["already_imported"] is True
    assert summary["accepted"] > 0
    none = runner.invoke(
        controller, ["compare", *args, "--department", "petitions", "--out", str(tmp_path / "o")]
    )
    assert none.exit_code == 2 and "extract import" in none.output


def test_spark_engine_is_refused_clearly_when_it_is_unknown() -> None:
    from controller.comparison.errors import ComparisonError
    from controller.comparison.linkage import link_people

    with pytest.raises(ComparisonError, match="--engine"):
        link_people([], [], engine="oracle")


def test_a_run_replays(tmp_path: Path) -> None:
    """Two runs on the same data give the same findings (nothing random in the linkage)."""
    made = make_comparison(200, "household", townships=TOWNSHIPS, seed=8, today=TODAY)
    extract = tmp_path / "household.csv"
    write_table(extract, headers_for("household"), made.extract)
    collected = _collected_file(made, tmp_path / "c.csv")
    sessions = _sessions(tmp_path)
    import_extract(sessions, "household", extract, now=NOW, imported_by="t")
    a = run_comparison(
        sessions, "household", out_dir=tmp_path / "a", now=NOW, run_by="t", collected_file=collected
    )
    b = run_comparison(
        sessions, "household", out_dir=tmp_path / "b", now=NOW, run_by="t", collected_file=collected
    )
    assert a.findings.problems == b.findings.problems and a.findings.missing == b.findings.missing
