"""What a chaos run counts, from the real sources only: the devices' outboxes (what was sealed,
with its content hash), the controller's PostgreSQL (what was stored, how often, under which
hash; the commands' states), and the admin API (which devices read online)."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

__all__ = ["ChaosCounts", "count_database", "count_outboxes", "render"]


@dataclass
class ChaosCounts:
    seed: int
    faults_planned: int
    faults_by_kind: dict[str, int]
    unplanned_exits: dict[str, int]
    records_sealed: int = 0
    records_stored: int = 0
    records_lost: int = 0
    records_doubled: int = 0
    records_rejected: int = 0
    records_pending: int = 0
    content_mismatched: int = 0
    counted_twice: int = 0
    sealed_after_stop: int = 0  # sealed after collection was switched off: must be 0
    # device (or "controllers") -> processes on its directory beside the current ones
    stray_processes: dict[str, int] = field(default_factory=dict)
    commands: dict[str, int] = field(default_factory=dict)
    commands_issue_failed: int = 0
    devices_up_online: int = 0
    devices_up: int = 0
    devices_dead_offline: int = 0
    devices_dead: int = 0
    status_wrong: list[str] = field(default_factory=list)
    recovered: bool = False
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def faults_injected(self) -> int:
        return sum(self.faults_by_kind.values())

    @property
    def ok(self) -> bool:
        return (
            self.records_lost == 0
            and self.records_doubled == 0
            and self.content_mismatched == 0
            and not self.status_wrong
            and self.sealed_after_stop == 0
            and not any(self.stray_processes.values())
        )

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "faults_injected": self.faults_injected, "ok": self.ok}


@dataclass(frozen=True)
class OutboxView:
    hashes: dict[str, str]  # record id -> content hash, every record the device ever sealed
    states: Counter[str]


def count_outboxes(state_dirs: Sequence[Path]) -> dict[Path, OutboxView]:
    views = {}
    for state_dir in state_dirs:
        with sqlite3.connect(state_dir / "outbox.sqlite3", timeout=30) as db:
            rows = db.execute("SELECT record_id, content_hash, state FROM records").fetchall()
        views[state_dir] = OutboxView({r[0]: r[1] for r in rows}, Counter(str(r[2]) for r in rows))
    return views


def count_database(
    counts: ChaosCounts, database_url: str, outboxes: Mapping[Path, OutboxView]
) -> None:
    """Fill the record and command counts: lost = sealed on a device but not stored; doubled =
    stored rows beyond one per record id or per content hash; counted twice = a device's
    received counter above its stored rows."""
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, connect_timeout=10) as conn:
        stored: dict[str, str] = {
            str(r[0]): str(r[1])
            for r in conn.execute("SELECT record_id, content_hash FROM records").fetchall()
        }
        rows = conn.execute("SELECT count(*) FROM records").fetchone()
        (by_hash,) = conn.execute(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM records"
            " GROUP BY content_hash HAVING count(*) > 1) AS d"
        ).fetchone() or (0,)
        over = conn.execute(
            "SELECT coalesce(sum(greatest(d.records_received - coalesce(r.n, 0), 0)), 0)"
            " FROM devices d LEFT JOIN (SELECT device_id, count(*) AS n FROM records"
            " GROUP BY device_id) r ON r.device_id = d.id"
        ).fetchone()
        commands: dict[str, int] = {
            str(r[0]): int(str(r[1]))
            for r in conn.execute("SELECT state, count(*) FROM commands GROUP BY state")
        }
    total_rows = int(rows[0]) if rows else 0
    sealed: dict[str, str] = {}
    for view in outboxes.values():
        sealed.update(view.hashes)
        counts.records_rejected += view.states.get("rejected", 0)
        counts.records_pending += view.states.get("sealed", 0)
    counts.records_sealed = len(sealed)
    counts.records_stored = total_rows
    counts.records_lost = len(set(sealed) - set(stored))
    counts.records_doubled = (total_rows - len(stored)) + int(by_hash)
    counts.content_mismatched = sum(
        1 for rid, digest in sealed.items() if rid in stored and stored[rid] != digest
    )
    counts.counted_twice = int(over[0]) if over else 0
    counts.commands = {str(k): int(v) for k, v in commands.items()}
    counts.commands["issued"] = sum(counts.commands.values())


def render(counts: ChaosCounts, console: Console) -> None:
    table = Table(title=f"chaos run, seed {counts.seed}", show_lines=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for kind, number in sorted(counts.faults_by_kind.items()):
        table.add_row(f"faults: {kind}", str(number))
    table.add_row("faults injected", f"{counts.faults_injected} / {counts.faults_planned}")
    for target, number in sorted(counts.unplanned_exits.items()):
        table.add_row(f"exited unasked: {target}", str(number))
    table.add_section()
    table.add_row("records sealed (outboxes)", str(counts.records_sealed))
    table.add_row("records stored (PostgreSQL)", str(counts.records_stored))
    table.add_row("lost (sealed, not stored)", _flag(counts.records_lost))
    table.add_row("doubled (stored twice)", _flag(counts.records_doubled))
    table.add_row("stored under another hash", _flag(counts.content_mismatched))
    table.add_row("counted twice (device counter)", str(counts.counted_twice))
    table.add_row("rejected by the centre", str(counts.records_rejected))
    table.add_row("still pending on devices", str(counts.records_pending))
    table.add_row("sealed after collection stopped", _flag(counts.sealed_after_stop))
    table.add_row(
        "stray processes (devices, replicas)", _flag(sum(counts.stray_processes.values()))
    )
    table.add_section()
    shown = ("issued", "sent", "acked", "expired", "failed", "pending")
    for state in shown:
        table.add_row(f"commands {state}", str(counts.commands.get(state, 0)))
    for state in sorted(set(counts.commands) - set(shown)):
        table.add_row(f"commands {state}", str(counts.commands[state]))
    table.add_row("commands the API refused to take", str(counts.commands_issue_failed))
    table.add_section()
    table.add_row("devices up, reading online", f"{counts.devices_up_online} / {counts.devices_up}")
    table.add_row(
        "devices left dead, reading offline",
        f"{counts.devices_dead_offline} / {counts.devices_dead}",
    )
    table.add_row("recovered within the timeout", "yes" if counts.recovered else "[red]no[/red]")
    for phase, seconds in counts.seconds.items():
        table.add_row(f"seconds: {phase}", f"{seconds:.0f}")
    console.print(table)


def _flag(number: int) -> str:
    return f"[red]{number}[/red]" if number else "0"
