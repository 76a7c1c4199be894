"""The region tree: the shipped provinces, cities and counties with their current names,
townships entered by code where no name is known, official names loaded over the
placeholders, and the operator's commands for it and for admin accounts."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Region
from controller.records.region_tree import (
    SHIPPED,
    RegionEntry,
    generate_entries,
    load_regions,
    read_entries,
    region_names,
    township_placeholders,
    write_entries,
)
from muster.errors import ConfigError
from muster.spreadsheets import HOSTILE_TEXTS, formula_like
from tests.unit.admin_world import build_world

MUSTER = [sys.executable, "-m", "muster"]


def test_the_shipped_file_is_what_the_generator_makes() -> None:
    """controller/records/regions.csv is current with python-stdnum's table (scripts/gen_regions.py)
    and names Tai'an's counties as they are called today."""
    assert SHIPPED.read_text(encoding="utf-8") == write_entries(generate_entries())
    names = {e.code: e.name for e in read_entries(SHIPPED)}
    assert (names["37"], names["3709"], names["370902"], names["370911"]) == (
        "山东省",
        "泰安市",
        "泰山区",
        "岱岳区",
    )
    assert sum(1 for code in names if len(code) == 6) > 2800


def test_a_row_takes_its_level_and_parent_from_its_length(tmp_path: Path) -> None:
    """Each code in a region file is placed by its length (a 12-digit code ending in 000 is its
    township); the shipped file's levels and parents follow the same rule."""
    rows = tmp_path / "regions.csv"
    rows.write_text(
        "code,level,name,parent\n"
        "37,,山东省,\n"
        "3709,,泰安市,\n"
        "370902,,泰山区,\n"
        "370902001000,,泰前街道,\n"
        "370902001002,,某村,\n",
        encoding="utf-8",
    )
    assert list(read_entries(rows)) == [
        RegionEntry("37", "province", "山东省", ""),
        RegionEntry("3709", "city", "泰安市", "37"),
        RegionEntry("370902", "county", "泰山区", "3709"),
        RegionEntry("370902001", "township", "泰前街道", "370902"),
        RegionEntry("370902001002", "village", "某村", "370902001"),
    ]
    by_length = {2: "province", 4: "city", 6: "county"}
    for entry in read_entries(SHIPPED):
        assert entry.level == by_length[len(entry.code)]
        assert entry.parent == entry.code[: {2: 0, 4: 2, 6: 4}[len(entry.code)]]


@pytest.mark.parametrize("code", ["370", "37090", "3709020010", "3709a2", ""])
def test_a_row_of_no_level_is_refused_with_its_line(tmp_path: Path, code: str) -> None:
    """A code of a length no level has (or not digits) stops the load, naming the line."""
    rows = tmp_path / "regions.csv"
    rows.write_text(f"code,level,name,parent\n37,,山东省,\n{code},,某地,\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"第 3 行.*2、4、6、9、12 位数字"):
        list(read_entries(rows))


def test_townships_by_code_then_by_name(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """Townships the system knows get "乡镇 <code>" placeholders; an official list renames
    them; loading again, or placeholders again, changes nothing."""
    build_world(sessions)
    with sessions.begin() as s:
        assert load_regions(s, read_entries(SHIPPED))[0] > 3000
        added, _ = load_regions(s, township_placeholders(s))
        assert added == 2
        assert region_names(s, ["370902001"]) == {"370902001": "泰山区 001 乡镇"}
    official = tmp_path / "townships.csv"
    official.write_text("code,level,name,parent\n370902001000,township,泰前街道,370902\n")
    with sessions.begin() as s:
        assert load_regions(s, read_entries(official)) == (0, 1)
        assert load_regions(s, township_placeholders(s)) == (0, 0)
        assert load_regions(s, read_entries(SHIPPED)) == (0, 0)
        assert region_names(s, ["370902001"]) == {"370902001": "泰前街道"}
        assert (
            s.scalar(select(func.count()).select_from(Region).where(Region.name_known.is_(False)))
            == 1
        )


def test_operator_commands(tmp_path: Path) -> None:
    """`regions load`, `admin add` (password from a file), `admin token`; a region that does not
    fit the role is refused with what to write, and nothing is created."""
    data = ["--data-dir", str(tmp_path / "ctl")]
    loaded = subprocess.run(
        [*MUSTER, "controller", "regions", "load", *data],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "地区树" in loaded.stdout
    secret = tmp_path / "pw"
    secret.write_text("Wang-passw0rd\n")
    bad = subprocess.run(
        [
            *MUSTER,
            "controller",
            "admin",
            "add",
            "--username",
            "wang.fang",
            "--role",
            "county",
            "--region",
            "3709",
            "--password-file",
            str(secret),
            *data,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "6位" in bad.stderr
    subprocess.run(
        [
            *MUSTER,
            "controller",
            "admin",
            "add",
            "--username",
            "wang.fang",
            "--role",
            "county",
            "--region",
            "370902",
            "--password-file",
            str(secret),
            *data,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    token = subprocess.run(
        [*MUSTER, "controller", "admin", "token", "--username", "wang.fang", *data],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.strip()
    assert token.startswith("mst_") and len(token) > 40
    listed = subprocess.run(
        [*MUSTER, "controller", "admin", "list", *data],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert '"region": "370902"' in listed and '"has_token": true' in listed


@pytest.mark.parametrize("hostile", HOSTILE_TEXTS)
def test_a_region_name_that_reads_as_a_formula_is_written_as_text(hostile: str) -> None:
    """The region file is opened in Excel by whoever maintains it: a name is never live."""
    entry = RegionEntry("370902", "county", hostile, "3709")
    if any(ch < " " for ch in hostile):
        with pytest.raises(ConfigError, match="控制字符"):
            write_entries([entry])
        return
    text = write_entries([entry])
    (_header, row) = list(csv.reader(io.StringIO(text)))
    assert row[2] == ("'" + hostile if formula_like(hostile) else hostile)
