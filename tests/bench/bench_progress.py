"""The progress page and its XLSX export for a whole province on PostgreSQL, against a bare SQL
aggregate of the same numbers measured in the same run (target: the page within 2× of it).

A province (Shandong, 37) of ``--records`` synthetic records over its real counties, ten
townships each, and a slice of people about 5 % larger (so some are missing), bulk-loaded with
COPY. The page is fetched as a province admin through the whole admin app (token check, scope,
queries, template) in-process; the bare aggregate is one hand-written SQL statement giving the
same figures per city: slice, collected, reviewed, approved, missing.

    python tests/bench/bench_progress.py [--records 2000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
from rich.progress import Progress
from sqlalchemy import text

from controller.accounts.admins import add_admin, issue_token
from controller.admin import create_admin_app
from controller.db import make_engine, migrate, session_factory
from muster.clock import SystemClock
from muster.logs import configure_logging
from muster.region_names import current_counties
from tests.fixtures.postgres import PostgresServer

NOW = datetime.now(UTC)
CATEGORIES = (
    "retired_soldier",
    "transferred_officer",
    "demobilised_soldier",
    "martyr_family",
    "serving_soldier_family",
    "disabled_soldier",
)
STATUSES = (("collected", 55), ("approved", 35), ("returned", 5), ("superseded", 5))

BARE = """
WITH people_by AS (
    SELECT substr(township_code, 1, 4) AS child, count(*) AS slice
    FROM people WHERE township_code LIKE '37%' AND NOT removed GROUP BY 1
), records_by AS (
    SELECT substr(township_code, 1, 4) AS child,
           count(*) FILTER (WHERE review_status <> 'superseded') AS collected,
           count(*) FILTER (WHERE review_status IN ('approved', 'returned')) AS reviewed,
           count(*) FILTER (WHERE review_status = 'approved') AS approved
    FROM records WHERE township_code LIKE '37%' GROUP BY 1
), missing_by AS (
    SELECT substr(p.township_code, 1, 4) AS child, count(*) AS missing
    FROM people p
    WHERE p.township_code LIKE '37%' AND NOT p.removed AND NOT EXISTS (
        SELECT 1 FROM records r WHERE r.township_code = p.township_code
        AND r.id_number = p.id_number AND r.review_status <> 'superseded')
    GROUP BY 1
)
SELECT p.child, p.slice, r.collected, r.reviewed, r.approved, m.missing
FROM people_by p LEFT JOIN records_by r USING (child) LEFT JOIN missing_by m USING (child)
"""


def townships() -> list[str]:
    counties = [c for c in current_counties() if c.startswith("37")]
    return [f"{county}{n:03d}000" for county in counties for n in range(1, 11)]


def _copy(conn: object, sql: str, rows: Iterator[str], total: int, label: str) -> None:
    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=total)
        with conn.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[attr-defined]
            buffer = io.StringIO()
            for n, line in enumerate(rows, start=1):
                buffer.write(line)
                if n % 50_000 == 0:
                    copy.write(buffer.getvalue())
                    buffer = io.StringIO()
                    bar.advance(task, 50_000)
            copy.write(buffer.getvalue())
            bar.update(task, completed=total)


def load(url: str, records: int) -> None:
    import psycopg

    rng = random.Random(10)
    codes = townships()
    people = int(records * 1.05)
    weights = [w for _, w in STATUSES]
    names = [s for s, _ in STATUSES]
    stamp = NOW.isoformat()
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO devices (id, township_code, profile, device_model, certificate_pem,"
            " certificate_serial, fingerprint, software_version, enrolled_at, revoked_reason,"
            " online, heartbeat_sequence, outbox_depth, collection_allowed, collection_refusal,"
            " clock_skew_s, records_received, last_heartbeat, state, state_reason, backlog_rising)"
            " VALUES ('bench-dev', '370902001000', 'simulator', '', '-', 'bench', '{}', '',"
            " %s, '', false, 0, 0, true, '', 0, 0, '{}', 'offline', '', 0)",
            (NOW,),
        )

        def person_rows() -> Iterator[str]:
            for i in range(people):
                township = codes[i % len(codes)]
                yield (
                    f"{township}\t{i:018d}\tP{i}\t{CATEGORIES[i % len(CATEGORIES)]}\t{{}}\t"
                    f"h{i}\t1\tf\t{stamp}\n"
                )

        _copy(
            conn,
            "COPY people (township_code, id_number, name, category, details, content_hash,"
            " version, removed, updated_at) FROM STDIN",
            person_rows(),
            people,
            "people",
        )

        def record_rows() -> Iterator[str]:
            for i in range(records):
                township = codes[i % len(codes)]
                status = rng.choices(names, weights)[0]
                level = "county" if status == "approved" else ""
                yield (
                    f"r{i:012d}\tbench-dev\th{i}\tretired_soldier/1\t1\t{township}\t"
                    f"{CATEGORIES[i % len(CATEGORIES)]}\t{stamp}\t{stamp}\t{{}}\t{i:018d}\t"
                    f"{status}\t{level}\n"
                )

        _copy(
            conn,
            "COPY records (record_id, device_id, content_hash, schema_version, key_version,"
            " township_code, category, sealed_at, received_at, payload, id_number,"
            " review_status, approved_level) FROM STDIN",
            record_rows(),
            records,
            "records",
        )
        conn.execute(
            "INSERT INTO township_slices (township_code, version, people, updated_at,"
            " revoked_reason) SELECT township_code, 1, count(*), now(), '' FROM people"
            " GROUP BY township_code"
        )
        conn.execute("ANALYZE")


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm the caches once, as a page someone keeps open is
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args, _unknown = parser.parse_known_args()
    configure_logging("WARNING")
    server = PostgresServer(durable=False)
    server.start()
    try:
        server.create_database("bench_progress")
        url = server.url("bench_progress")
        migrate(url)
        started = time.perf_counter()
        load(url, args.records)
        print(
            f"loaded {args.records:,} records in {time.perf_counter() - started:.0f} s", flush=True
        )
        engine = make_engine(url)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            add_admin(
                session,
                username="shandong",
                role="province",
                region="37",
                password="Bench-passw0rd",
                now=NOW,
            )
            session.flush()
            token = issue_token(session, "shandong", NOW)
        app = create_admin_app(sessions, clock=SystemClock())
        headers = {"Authorization": f"Bearer {token}"}

        def bare() -> object:
            with engine.connect() as conn:
                return conn.execute(text(BARE)).all()

        async def get(path: str) -> bytes:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
                response = await client.get(path, headers=headers, timeout=600)
                response.raise_for_status()
                return response.content

        def page() -> object:
            return asyncio.run(get("/progress?region=37"))

        def api() -> object:
            return asyncio.run(get("/api/v1/progress?region=37"))

        def sheet() -> object:
            return asyncio.run(get("/progress.xlsx?region=37"))

        def county_records() -> object:
            return asyncio.run(get("/approved.xlsx?region=370902"))

        figures = {
            "bare SQL aggregate": timed(bare, args.repeat),
            "progress page (HTML)": timed(page, args.repeat),
            "progress API (JSON)": timed(api, args.repeat),
            "progress sheet (XLSX)": timed(sheet, args.repeat),
            "approved records of one county (XLSX)": timed(county_records, 1),
        }
        base = figures["bare SQL aggregate"]
        print(f"\nprovince 37: {args.records:,} records, {len(townships())} townships, PostgreSQL")
        for name, seconds in figures.items():
            print(f"  {name:40s} {seconds * 1000:9.0f} ms   {seconds / base:5.2f}× bare")
        ratio = figures["progress page (HTML)"] / base
        print(f"\nprogress page / bare aggregate = {ratio:.2f}× (target ≤ 2×)")
        engine.dispose()
    finally:
        server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
