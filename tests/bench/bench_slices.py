"""Slice build on the controller: query + serialise + compress + encrypt + sign, for one device.

Two shapes, measured in the same run on SQLite: one township of ``--township-people`` people
(30,000 by default, the size of a large district's township), and ``--townships`` townships
(40,000 by default, the national count) of ``--per-township`` people each. Prints time, size,
people/s, and the extrapolated time of a national build of 60 million people (per-person rate
plus the per-township overhead measured on the many-townships run).

    python tests/bench/bench_slices.py [--township-people N] [--townships T] [--per-township P]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from controller.db import make_engine, migrate, session_factory
from controller.db.models import PersonRow, TownshipSlice
from controller.records.slices import plan_slice, slice_chunks
from muster.crypto import generate_device_key, generate_licence_authority_key
from muster.initial_data import parse_row
from muster.logs import configure_logging
from muster.synthetic import dataset_row, townships
from tests.bench.progress import step

NATIONAL_PEOPLE = 60_000_000
NATIONAL_TOWNSHIPS = 40_000


def load(sessions: sessionmaker[Session], plan: dict[str, int], rng: random.Random) -> None:
    now = datetime.now(UTC)
    today = now.date()
    total = sum(plan.values())
    rows: list[dict[str, Any]] = []
    done = 0
    with step("loading", total) as loading, sessions.begin() as session:
        for township, count in plan.items():
            for _ in range(count):
                person = parse_row(dataset_row(rng, township, today), today=today)
                rows.append(
                    {
                        "township_code": township,
                        "id_number": person.id_number,
                        "name": person.name,
                        "category": person.category,
                        "details": person.details,
                        "content_hash": person.content_hash,
                        "version": 1,
                        "removed": False,
                        "updated_at": now,
                    }
                )
                if len(rows) == 5000:
                    session.execute(insert(PersonRow).prefix_with("OR IGNORE"), rows)
                    done += len(rows)
                    rows = []
                    loading.update(done)
        if rows:
            session.execute(insert(PersonRow).prefix_with("OR IGNORE"), rows)
        session.execute(
            insert(TownshipSlice),
            [
                {
                    "township_code": t,
                    "version": 1,
                    "people": n,
                    "updated_at": now,
                    "revoked_reason": "",
                }
                for t, n in plan.items()
            ],
        )


def build_all(sessions: sessionmaker[Session], codes: list[str]) -> tuple[float, int, int]:
    """(seconds, bytes, people) to build one device's full slice of each township."""
    device = generate_device_key().public_key()
    signer = generate_licence_authority_key()
    now = datetime.now(UTC)
    size = people = 0
    start = time.perf_counter()
    with step("built", len(codes)) as building:
        for i, code in enumerate(codes, 1):
            with sessions() as session:
                plan = plan_slice(session, code, have_version=0, now=now)
            for chunk in slice_chunks(
                sessions,
                plan,
                device_id=f"{code}-BENCH1",
                device_key=device,
                signing_key=signer,
                now=now,
            ):
                size += chunk.ByteSize()
                people += chunk.data.people if chunk.HasField("data") else 0
            building.update(i)
    return time.perf_counter() - start, size, people


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--township-people", type=int, default=30_000)
    parser.add_argument("--townships", type=int, default=40_000)
    parser.add_argument("--per-township", type=int, default=5)
    args = parser.parse_args()
    configure_logging("WARNING")
    rng = random.Random(2018)
    with tempfile.TemporaryDirectory(prefix="muster-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'c.db'}"
        migrate(url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        big = "370902001000"
        many = [t for t in townships(rng, args.townships + 1) if t != big][: args.townships]
        print("loading people…", file=sys.stderr)
        load(sessions, {big: args.township_people}, rng)
        load(sessions, dict.fromkeys(many, args.per_township), rng)
        one_s, one_bytes, one_people = build_all(sessions, [big])
        many_s, many_bytes, many_people = build_all(sessions, many)
        engine.dispose()
    per_person = one_s / one_people
    per_township = max(0.0, (many_s - many_people * per_person) / len(many))
    national_s = NATIONAL_PEOPLE * per_person + NATIONAL_TOWNSHIPS * per_township
    print(f"{'build':<44} {'seconds':>9} {'MB':>8} {'people/s':>10}")
    print(
        f"{f'1 township of {one_people} people':<44} {one_s:>9.2f} {one_bytes / 2**20:>8.2f} {one_people / one_s:>10.0f}"
    )
    print(
        f"{f'{len(many)} townships, {many_people} people':<44} {many_s:>9.2f} {many_bytes / 2**20:>8.2f} {many_people / many_s:>10.0f}"
    )
    print(
        f"per-township overhead {per_township * 1000:.2f} ms; bytes/person {one_bytes / one_people:.0f}"
    )
    print(
        f"national build, 60 M people in 40,000 townships (extrapolated): {national_s / 3600:.2f} h on one process"
    )
    print(
        json.dumps(
            {
                "township_people": one_people,
                "township_s": round(one_s, 3),
                "township_bytes": one_bytes,
                "townships": len(many),
                "townships_people": many_people,
                "townships_s": round(many_s, 3),
                "townships_bytes": many_bytes,
                "per_township_ms": round(per_township * 1000, 3),
                "national_hours": round(national_s / 3600, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
