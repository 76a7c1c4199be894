"""The controller over a PostgreSQL primary and its streaming replica: the read-only admin pages
read the replica, ingest writes the primary, and a primary restart or kill -9 under a burst of
uploads loses and doubles nothing."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, exc, text

from controller.db import make_read_only_engine, migrate
from tests.fixtures.fleet import EdgeProcess, Fleet, wait_until, write_profile
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.postgres_replica import PostgresPair


def record_ids(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [row[0] for row in conn.execute(text("SELECT record_id FROM records"))]
    finally:
        engine.dispose()


def count_records(url: str) -> int:
    return len(record_ids(url))


def test_a_write_through_the_replica_session_fails_loudly(postgres_pair: PostgresPair) -> None:
    """The read-only engine refuses writes on the replica and, because every transaction it
    opens is read-only, even when its URL names the primary by mistake."""
    migrate(postgres_pair.primary_url)
    postgres_pair.wait_caught_up()
    for url in (postgres_pair.replica_url, postgres_pair.primary_url):
        engine = make_read_only_engine(url)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM records")).scalar() == 0
            with (
                pytest.raises(exc.DBAPIError, match="read-only transaction"),
                engine.begin() as conn,
            ):
                conn.execute(text("CREATE TABLE written_by_mistake (x int)"))
        finally:
            engine.dispose()
    assert "written_by_mistake" not in _tables(postgres_pair.primary_url)


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT tablename FROM pg_tables"))
            return {row[0] for row in rows}
    finally:
        engine.dispose()


def test_pages_read_the_replica_and_ingest_writes_the_primary(
    fleet: Fleet,
    mosquitto: MosquittoBroker,
    postgres_pair: PostgresPair,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """While the replica's replay is paused the summary page shows the replica's count, not the
    primary's; once replay has caught up (by LSN) it shows every record the device sealed."""
    monkeypatch.setenv("MUSTER_CONTROLLER_REPLICA_DATABASE_URL", postgres_pair.replica_url)
    controller = fleet.controller(mqtt_url=mosquitto.url, database_url=postgres_pair.primary_url)
    edge = fleet.edge(controller, write_profile(tmp_path / "fast.yaml", records_per_minute=1200))
    primary, replica = postgres_pair.primary_url, postgres_pair.replica_url
    wait_until(lambda: count_records(primary) >= 10, 90, "records on the primary")
    postgres_pair.wait_caught_up()

    postgres_pair.pause_replay()
    frozen = count_records(replica)
    wait_until(lambda: count_records(primary) >= frozen + 10, 60, "ingest while replay is paused")
    shown = controller.summary()["records"]
    assert shown == count_records(replica) == frozen < count_records(primary)

    postgres_pair.resume_replay()
    drain(edge, write_profile(tmp_path / "idle.yaml", records_per_minute=0))
    postgres_pair.wait_caught_up()
    sealed = edge.sealed_ids()
    assert controller.summary()["records"] == count_records(primary) == len(sealed)
    assert sorted(record_ids(replica)) == sorted(sealed)


def drain(edge: EdgeProcess, profile: Path, timeout: float = 180) -> None:
    """Restart the edge with collection off and wait until its outbox is empty."""
    edge.stop()
    edge.start(profile)
    wait_until(
        lambda: edge.outbox_stats().pending == 0,
        timeout,
        f"{edge.state_dir.name} to drain its outbox",
    )


@pytest.mark.parametrize("fault", ["restart_fast", "kill_9"])
def test_primary_restart_under_a_burst_of_uploads_loses_and_doubles_nothing(
    fleet: Fleet,
    mosquitto: MosquittoBroker,
    postgres_pair: PostgresPair,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    tmp_path: Path,
) -> None:
    """Two devices seal and upload fast through the real gRPC ingest while the primary is
    restarted (pg_ctl restart -m fast) or its postmaster killed with SIGKILL and started again,
    three times: once their outboxes have retried and drained, every sealed record is stored
    exactly once, on the primary and on the replica."""
    monkeypatch.setenv("MUSTER_CONTROLLER_REPLICA_DATABASE_URL", postgres_pair.replica_url)
    controller = fleet.controller(mqtt_url=mosquitto.url, database_url=postgres_pair.primary_url)
    fast = write_profile(tmp_path / "fast.yaml", records_per_minute=3000)
    edges = [fleet.edge(controller, fast, t) for t in ("370902001000", "370902002000")]
    primary = postgres_pair.primary_url
    apply: Callable[[], None] = postgres_pair.kill_primary
    if fault == "restart_fast":
        apply = postgres_pair.restart_primary_fast
    rng = random.Random(fault)
    for round_ in range(1, 4):
        # Each fault lands in the middle of real uploads, however slow the machine is today.
        target = max(_try_count(primary), 0) + 40
        wait_until(
            lambda target=target: _try_count(primary) >= target,  # type: ignore[misc]
            120,
            f"round {round_}: uploads under way",
        )
        time.sleep(rng.uniform(0.0, 0.5))
        apply()
    idle = write_profile(tmp_path / "idle.yaml", records_per_minute=0)
    for edge in edges:
        drain(edge, idle)

    ids = record_ids(primary)
    sealed: set[str] = set()
    for edge in edges:
        stats = edge.outbox_stats()
        assert stats.pending == 0 and stats.rejected == 0, stats
        sealed |= edge.sealed_ids()
    assert len(sealed) > 120, "the test must upload a real burst"
    assert len(ids) == len(set(ids)), "a record was stored twice"
    assert set(ids) == sealed, "a sealed record is missing"
    postgres_pair.wait_caught_up()
    assert sorted(record_ids(postgres_pair.replica_url)) == sorted(ids)


def _try_count(url: str) -> int:
    """The primary's record count, or -1 while it is down or recovering."""
    try:
        return count_records(url)
    except exc.OperationalError:
        return -1
