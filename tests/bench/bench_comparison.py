"""Cross-comparison with a department's extract: how right and how fast.

A synthetic collected set of ``--people`` people and a household extract derived from it with
planted errors (homophones and typos in names, transposed birth-date digits, missing or wrong
ID numbers, wrong sex, moved addresses, people only on one side). Prints precision and recall of
the problems and of the missing people against the planted truth, and records linked per
second; the baseline, measured in the same run on the same data, is linking on the ID number
alone (what a spreadsheet VLOOKUP does), and the ratios are against it. The 60 M × 60 M figure
is the measured rate extrapolated linearly (the blocking keeps the pairs near-linear).

    python tests/bench/bench_comparison.py [--people N] [--engine duckdb|spark] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from controller.comparison.findings import Findings, find
from controller.comparison.linkage import Link, Person, link_people
from muster.departments import parse_extract_row
from muster.synthetic import townships
from muster.synthetic_extracts import SyntheticComparison, make_comparison

NATIONAL = 60_000_000
TODAY = date(2026, 6, 1)  # fixed: the data set must not change with the day it is run


def sides(
    made: SyntheticComparison, kind: str
) -> tuple[list[Person], list[Person], dict[str, dict[str, str]], dict[str, int], dict[str, int]]:
    theirs: list[Person] = []
    extra: dict[str, dict[str, str]] = {}
    pid_of_line: dict[str, int] = {}
    for i, row in enumerate(made.extract):
        p = parse_extract_row(kind, row, today=TODAY)
        key = f"line:{i}"
        theirs.append(
            Person(
                key,
                p.name,
                p.id_number,
                p.id_valid,
                p.sex,
                p.birth_date,
                p.address,
                p.township_code,
            )
        )
        extra[key] = p.extra
        pid_of_line[key] = int(row["_pid"])
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
    pid_of_number = {r["id_number"]: int(r["_pid"]) for r in made.collected}
    return theirs, ours, extra, pid_of_line, pid_of_number


def exact_only(theirs: list[Person], ours: list[Person]) -> list[Link]:
    by_number = {p.id_number: p for p in ours}
    return [
        Link(p.key, by_number[p.id_number].key, "exact_id", 1.0)
        for p in theirs
        if p.id_number in by_number
    ]


def scores(
    findings: Findings,
    made: SyntheticComparison,
    pid_of_line: dict[str, int],
    pid_of_number: dict[str, int],
) -> dict[str, float]:
    problems = {(pid_of_number[p.id_number], p.field) for p in findings.problems}
    missing = {pid_of_line[m.department_key] for m in findings.missing}

    def pr(got: set[object], truth: set[object]) -> tuple[float, float]:
        hit = len(got & truth)
        return (hit / len(got) if got else 1.0, hit / len(truth) if truth else 1.0)

    p_prec, p_rec = pr(set(problems), set(made.problems))
    m_prec, m_rec = pr(set(missing), set(made.missing))
    return {"problems_p": p_prec, "problems_r": p_rec, "missing_p": m_prec, "missing_r": m_rec}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    kind = "household"
    made = make_comparison(
        args.people,
        kind,
        townships=townships(random.Random(args.seed), 40),
        seed=args.seed,
        today=TODAY,
    )
    theirs, ours, extra, pid_of_line, pid_of_number = sides(made, kind)
    total = len(theirs) + len(ours)
    rows = []
    for label, linker in (
        ("baseline: ID number only", lambda: exact_only(theirs, ours)),
        (
            f"muster: exact + Splink ({args.engine})",
            lambda: link_people(theirs, ours, engine=args.engine),
        ),
    ):
        start = time.perf_counter()
        links = linker()
        elapsed = time.perf_counter() - start
        findings = find(kind, theirs, ours, links, department_extra=extra, collected_fields={})
        rows.append((label, elapsed, scores(findings, made, pid_of_line, pid_of_number)))
    print(
        f"{args.people} collected × {len(theirs)} department rows; planted: "
        f"{len(made.problems)} problems, {len(made.missing)} missing"
    )
    print(
        f"{'linkage':<34} {'seconds':>8} {'rec/s':>9} {'prob P':>7} {'prob R':>7} {'miss P':>7} {'miss R':>7}"
    )
    for label, elapsed, s in rows:
        print(
            f"{label:<34} {elapsed:8.2f} {total / elapsed:9.0f} {s['problems_p']:7.4f} "
            f"{s['problems_r']:7.4f} {s['missing_p']:7.4f} {s['missing_r']:7.4f}"
        )
    (_, base_t, base), (_, t, ours_s) = rows
    print(
        f"ratios vs baseline: time ×{t / base_t:.1f}, problems recall ×{ours_s['problems_r'] / max(base['problems_r'], 1e-9):.2f}, "
        f"missing precision ×{ours_s['missing_p'] / max(base['missing_p'], 1e-9):.2f}"
    )
    rate = total / t
    print(
        f"extrapolated {NATIONAL:,} × {NATIONAL:,} on one machine ({args.engine}): "
        f"{2 * NATIONAL / rate / 3600:.1f} h at {rate:.0f} records/s"
    )
    goal = all(
        ours_s[k] >= g
        for k, g in (
            ("problems_p", 0.98),
            ("missing_p", 0.98),
            ("problems_r", 0.95),
            ("missing_r", 0.95),
        )
    )
    print(f"goal precision ≥ 0.98 and recall ≥ 0.95 on both lists: {'met' if goal else 'NOT met'}")


if __name__ == "__main__":
    main()
