"""Linking a department's people to ours: exact on a valid ID number first, then Splink for the
rest, then a one-to-one assignment.

1. **Exact**: a department row with a valid ID number that one of our records also holds is
   that person, unless name, surname and birth date all disagree (a number copied onto the
   wrong row); such a pair goes to step 2 like the rows without a number.
2. **Probabilistic** (Splink, ``link_only``): the department rows and our records left over,
   compared on name (exact, same pinyin so homophones meet, Jaro-Winkler on the pinyin, one
   character apart), birth date (exact, one edit or a transposition apart, same year), sex,
   address and ID number (when both have one: exact, two edits apart). The model's m and u
   probabilities are fixed here, not trained, so a run replays to the same pairs and scores
   on DuckDB and on Spark alike. Blocking keeps the candidate pairs near-linear in the sizes:
   same pinyin and birth year; same pinyin and month-day (a transposed year); same surname and
   birth date (a mistyped given name).
3. **One-to-one**: pairs at or above ``THRESHOLD`` in descending score (ties by the ids), each
   side used at most once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from controller.comparison.errors import ComparisonError
from muster.name_match import address_key, name_key, name_pinyin, surname_pinyin

__all__ = ["ENGINES", "THRESHOLD", "Link", "Person", "link_people"]

ENGINES: Final = ("duckdb", "spark")
THRESHOLD: Final = 0.9
JAVA_HOME: Final = "/usr/lib/jvm/java-17-openjdk-amd64"


@dataclass(frozen=True, slots=True)
class Person:
    """One side's person in the shape linkage reads. ``key`` is unique within its side."""

    key: str
    name: str
    id_number: str  # "" when none
    id_valid: bool
    sex: str
    birth_date: str
    address: str
    township_code: str = ""


@dataclass(frozen=True, slots=True)
class Link:
    department: str  # Person.key of the department's side
    collected: str  # Person.key of ours
    method: str  # exact_id | probabilistic
    score: float


def _features(uid: int, p: Person) -> dict[str, Any]:
    born = p.birth_date
    return {
        "unique_id": uid,
        "name_key": name_key(p.name) or None,
        "name_py": name_pinyin(p.name) or None,
        "surname_py": surname_pinyin(p.name) or None,
        "birth_date": born or None,
        "birth_year": born[:4] or None,
        "birth_md": born[5:] or None,
        "sex": p.sex or None,
        "address": address_key(p.address) or None,
        "id_number": p.id_number or None,
    }


def _plausible(a: Person, b: Person) -> bool:
    """An exact ID pair is kept unless nothing else about the two agrees."""
    return (
        name_pinyin(a.name) == name_pinyin(b.name)
        or surname_pinyin(a.name) == surname_pinyin(b.name)
        or a.birth_date == b.birth_date
    )


def _settings(pairs_expected: float) -> Any:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    def level(creator: Any, m: float, u: float) -> Any:
        return creator.configure(m_probability=m, u_probability=u)

    name = cl.CustomComparison(
        output_column_name="name",
        comparison_levels=[
            cll.NullLevel("name_key"),
            level(cll.ExactMatchLevel("name_key"), 0.80, 0.0005),
            level(cll.ExactMatchLevel("name_py"), 0.08, 0.001),
            level(cll.JaroWinklerLevel("name_py", 0.9), 0.06, 0.005),
            level(cll.LevenshteinLevel("name_key", 1), 0.04, 0.01),
            level(cll.ElseLevel(), 0.02, 0.9835),
        ],
    )
    birth = cl.CustomComparison(
        output_column_name="birth_date",
        comparison_levels=[
            cll.NullLevel("birth_date"),
            level(cll.ExactMatchLevel("birth_date"), 0.90, 0.00005),
            level(cll.DamerauLevenshteinLevel("birth_date", 1), 0.07, 0.0005),
            level(cll.ExactMatchLevel("birth_year"), 0.02, 0.015),
            level(cll.ElseLevel(), 0.01, 0.98445),
        ],
    )
    sex = cl.CustomComparison(
        output_column_name="sex",
        comparison_levels=[
            cll.NullLevel("sex"),
            level(cll.ExactMatchLevel("sex"), 0.95, 0.6),
            level(cll.ElseLevel(), 0.05, 0.4),
        ],
    )
    address = cl.CustomComparison(
        output_column_name="address",
        comparison_levels=[
            cll.NullLevel("address"),
            level(cll.ExactMatchLevel("address"), 0.75, 0.001),
            level(cll.JaroWinklerLevel("address", 0.85), 0.1, 0.02),
            level(cll.ElseLevel(), 0.15, 0.979),
        ],
    )
    number = cl.CustomComparison(
        output_column_name="id_number",
        comparison_levels=[
            cll.NullLevel("id_number"),
            level(cll.ExactMatchLevel("id_number"), 0.5, 0.00001),
            level(cll.DamerauLevenshteinLevel("id_number", 2), 0.3, 0.0001),
            level(cll.ElseLevel(), 0.2, 0.99989),
        ],
    )
    return SettingsCreator(
        link_type="link_only",
        comparisons=[name, birth, sex, address, number],
        blocking_rules_to_generate_predictions=[
            block_on("name_py", "birth_year"),
            block_on("name_py", "birth_md"),
            block_on("surname_py", "birth_date"),
        ],
        probability_two_random_records_match=pairs_expected,
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


def _db_api(engine: str) -> Any:
    if engine == "duckdb":
        from splink import DuckDBAPI

        return DuckDBAPI()
    if engine == "spark":
        return _spark_api()
    raise ComparisonError(f"--engine 只能是 {'、'.join(ENGINES)} 之一，不是“{engine}”")


def _spark_api() -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ComparisonError(
            "--engine spark 需要 pyspark：请安装（pip install 'pyspark>=4.0'，并需要 Java 17，"
            f"如 Debian 的 openjdk-17-jre-headless，位于 {JAVA_HOME}），或改用默认的 --engine duckdb"
        ) from None
    from splink.backends.spark import SparkAPI, similarity_jar_location

    if "JAVA_HOME" not in os.environ and Path(JAVA_HOME).is_dir():
        os.environ["JAVA_HOME"] = JAVA_HOME
    master = os.environ.get("MUSTER_SPARK_MASTER", "local[2]")
    spark = (
        SparkSession.builder.master(master)
        .appName("muster-compare")
        .config("spark.jars", similarity_jar_location())
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return SparkAPI(spark_session=spark, break_lineage_method="persist")  # type: ignore[no-untyped-call]


def link_people(
    department: Sequence[Person],
    collected: Sequence[Person],
    *,
    engine: str = "duckdb",
    threshold: float = THRESHOLD,
    progress: Callable[[str], None] = lambda step: None,
) -> list[Link]:
    """Links between the two sides, each person at most once, in the department's order."""
    if engine not in ENGINES:
        raise ComparisonError(f"--engine 只能是 {'、'.join(ENGINES)} 之一，不是“{engine}”")
    by_number: dict[str, Person] = {}
    for person in collected:
        if person.id_valid:
            by_number.setdefault(person.id_number, person)
    links: list[Link] = []
    used: set[str] = set()
    left: list[Person] = []
    for person in department:
        ours = by_number.get(person.id_number) if person.id_valid else None
        if ours is not None and ours.key not in used and _plausible(person, ours):
            links.append(Link(person.key, ours.key, "exact_id", 1.0))
            used.add(ours.key)
        else:
            left.append(person)
    progress("exact")
    right = [p for p in collected if p.key not in used]
    if left and right:
        links.extend(_probabilistic(left, right, engine, threshold))
    progress("probabilistic")
    order = {p.key: i for i, p in enumerate(department)}
    return sorted(links, key=lambda link: order[link.department])


def _probabilistic(
    left: Sequence[Person], right: Sequence[Person], engine: str, threshold: float
) -> list[Link]:
    from splink import Linker

    db_api = _db_api(engine)
    # unique ids: the department's side 0..n-1, ours n..n+m-1, so a pair names both at once.
    left_rows = [_features(i, p) for i, p in enumerate(left)]
    right_rows = [_features(len(left) + i, p) for i, p in enumerate(right)]
    columns = [k for k in left_rows[0] if k != "unique_id"]
    if engine == "spark":
        ddl = ", ".join(["unique_id long", *(f"{k} string" for k in columns)])
        tables = [
            db_api.register(db_api.spark.createDataFrame(rows, schema=ddl))
            for rows in (left_rows, right_rows)
        ]
    else:
        import pyarrow as pa  # type: ignore[import-untyped]

        schema = pa.schema([("unique_id", pa.int64()), *((k, pa.string()) for k in columns)])
        tables = [
            db_api.register(pa.Table.from_pylist(rows, schema=schema))
            for rows in (left_rows, right_rows)
        ]
    expected = min(len(left), len(right)) / (len(left) * len(right))
    linker = Linker(tables, _settings(min(expected, 0.5)), log_level=logging.WARNING)
    predictions = linker.inference.predict(
        threshold_match_probability=threshold, warning_mode="never"
    )
    scored = predictions.as_record_list()
    pairs: list[tuple[float, int, int]] = []
    for row in scored:
        a, b = int(row["unique_id_l"]), int(row["unique_id_r"])
        if a >= len(left):  # the pair's sides came the other way round
            a, b = b, a
        # Rounded so both engines' floating point order the same pairs the same way.
        pairs.append((round(float(row["match_probability"]), 9), a, b))
    pairs.sort(key=lambda t: (-t[0], t[1], t[2]))
    taken_left: set[int] = set()
    taken_right: set[int] = set()
    links: list[Link] = []
    for score, a, b in pairs:
        if a in taken_left or b in taken_right:
            continue
        taken_left.add(a)
        taken_right.add(b)
        links.append(Link(left[a].key, right[b - len(left)].key, "probabilistic", score))
    return links
