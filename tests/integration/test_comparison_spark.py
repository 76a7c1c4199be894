"""The comparison on Spark ``local[2]`` (PySpark with Debian's OpenJDK 17) links the same pairs,
and so finds the same problems and missing people, as on DuckDB."""

from __future__ import annotations

import os
import random
import shutil
from datetime import date
from pathlib import Path

import pytest

from controller.comparison.findings import find
from controller.comparison.linkage import JAVA_HOME, Person, link_people
from muster.departments import parse_extract_row
from muster.synthetic import townships
from muster.synthetic_extracts import make_comparison

TODAY = date(2026, 6, 1)


def _java_available() -> bool:
    return Path(JAVA_HOME, "bin", "java").exists() or shutil.which("java") is not None


@pytest.mark.slow
def test_spark_and_duckdb_give_the_same_result() -> None:
    if os.environ.get("CI") != "true":
        pytest.importorskip("pyspark")
    if not _java_available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"no Java at {JAVA_HOME}: install openjdk-17-jre-headless")
        pytest.skip("no Java")
    made = make_comparison(
        300, "military_service", townships=townships(random.Random(2), 4), seed=9, today=TODAY
    )
    theirs, extra = [], {}
    for i, row in enumerate(made.extract):
        p = parse_extract_row("military_service", row, today=TODAY)
        theirs.append(
            Person(
                f"l{i}",
                p.name,
                p.id_number,
                p.id_valid,
                p.sex,
                p.birth_date,
                p.address,
                p.township_code,
            )
        )
        extra[f"l{i}"] = p.extra
    ours = [
        Person(
            f"r{r['_pid']}",
            r["name"],
            r["id_number"],
            True,
            "1" if r["sex"] == "男" else "2",
            r["birth_date"],
            r["address"],
            r["township_code"],
        )
        for r in made.collected
    ]
    duck = link_people(theirs, ours, engine="duckdb")
    spark = link_people(theirs, ours, engine="spark")
    assert [(x.department, x.collected, x.method) for x in duck] == [
        (x.department, x.collected, x.method) for x in spark
    ]
    assert [round(x.score, 6) for x in duck] == [round(x.score, 6) for x in spark]
    assert any(x.method == "probabilistic" for x in duck)
    a = find("military_service", theirs, ours, duck, department_extra=extra, collected_fields={})
    b = find("military_service", theirs, ours, spark, department_extra=extra, collected_fields={})
    assert a.problems == b.problems and a.missing == b.missing
