"""Progress per region and category against the slice (S-11): how many people the initial data
holds, how many have a record, how many records the county has looked at and approved, and who
is still missing; the phase deadlines and which regions are past them; the weekly report,
with how far each region has closed the tasks the centre sent it (S-10).

Everything is counted in the database with a few GROUP BY queries over the area (no row is
loaded into Python), so a province of millions of records stays a single page view; see
tests/bench/bench_progress.py for the figures against a bare SQL aggregate.

Over 400 lines because the weekly report is built on the progress rows and their queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, func, literal, select, union_all
from sqlalchemy.orm import Session

from controller.db.models import (
    CentreTask,
    ImportedRecord,
    PersonRow,
    PhaseDeadline,
    Record,
    ReviewEvent,
    TownshipDeclaration,
    TownshipSlice,
)
from controller.records.region_tree import region_names
from controller.records.review import APPROVED, RETURNED, SUPERSEDED
from controller.records.tasks import CLOSED, DISPUTED
from muster.errors import ConfigError
from muster.records import CATEGORY_NAMES, Category
from muster.regions import TOWNSHIP, child_length

__all__ = [
    "PHASES",
    "ProgressReport",
    "WeeklyReport",
    "progress",
    "set_deadline",
    "weekly_report",
]

CAMPAIGN_TZ = ZoneInfo("Asia/Shanghai")
PHASES: dict[str, str] = {
    "collection": "采集完成（切片内无遗漏）",
    "declaration": "乡镇申报采集完成",
    "review": "县级逐条审核完毕",
}


@dataclass
class Counts:
    slice: int = 0
    collected: int = 0
    reviewed: int = 0
    approved: int = 0
    missing: int = 0
    townships: int = 0
    declared: int = 0

    @property
    def unreviewed(self) -> int:
        return max(self.collected - self.reviewed, 0)

    @property
    def percent(self) -> float:
        """Share of the slice with a record (100 when the slice is empty and nobody is owed)."""
        if self.slice == 0:
            return 100.0 if self.collected else 0.0
        return round(100.0 * (self.slice - self.missing) / self.slice, 1)

    def add(self, other: Counts) -> None:
        for name in (
            "slice",
            "collected",
            "reviewed",
            "approved",
            "missing",
            "townships",
            "declared",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class RegionProgress:
    code: str
    name: str
    totals: Counts = field(default_factory=Counts)
    by_category: dict[str, Counts] = field(default_factory=dict)
    overdue: list[str] = field(default_factory=list)  # phase keys past their deadline


@dataclass
class ProgressReport:
    area: str
    area_name: str
    level_length: int
    regions: list[RegionProgress]
    totals: Counts
    by_category: dict[str, Counts]
    deadlines: dict[str, datetime]
    now: datetime

    @property
    def categories(self) -> list[tuple[str, str]]:
        return [(c.value, CATEGORY_NAMES[c]) for c in Category]


def _in_area(column: Any, area: str) -> Any:
    return column.startswith(area) if area else literal(True)


def _record_rows(area: str, length: int) -> Any:
    """(child, category, status, count) over the area's own and imported records."""
    # One expression object per query, in SELECT and GROUP BY alike: PostgreSQL matches them
    # only when they render with the same bind parameters.
    child = func.substr(Record.township_code, 1, length)
    own = (
        select(child, Record.category, Record.review_status, func.count())
        .where(_in_area(Record.township_code, area))
        .group_by(child, Record.category, Record.review_status)
    )
    imported_child = func.substr(ImportedRecord.township_code, 1, length)
    imported = (
        select(imported_child, ImportedRecord.category, literal(APPROVED), func.count())
        .where(_in_area(ImportedRecord.township_code, area))
        .group_by(imported_child, ImportedRecord.category)
    )
    return union_all(own, imported)


def _missing_rows(area: str, length: int) -> Any:
    has_record = exists().where(
        and_(
            Record.township_code == PersonRow.township_code,
            Record.id_number == PersonRow.id_number,
            Record.review_status != SUPERSEDED,
        )
    )
    has_imported = exists().where(
        and_(
            ImportedRecord.township_code == PersonRow.township_code,
            ImportedRecord.id_number == PersonRow.id_number,
        )
    )
    child = func.substr(PersonRow.township_code, 1, length)
    return (
        select(child, PersonRow.category, func.count())
        .where(
            _in_area(PersonRow.township_code, area),
            PersonRow.removed.is_(False),
            ~has_record,
            ~has_imported,
        )
        .group_by(child, PersonRow.category)
    )


def deadlines_for(session: Session, area: str) -> dict[str, list[tuple[str, datetime]]]:
    """phase -> [(prefix, due)] of every deadline that can apply inside ``area``."""
    out: dict[str, list[tuple[str, datetime]]] = {}
    for row in session.scalars(select(PhaseDeadline)):
        if row.region_prefix.startswith(area) or area.startswith(row.region_prefix):
            out.setdefault(row.phase, []).append((row.region_prefix, row.due_at))
    for rows in out.values():
        rows.sort(key=lambda item: len(item[0]), reverse=True)
    return out


def _due(
    deadlines: dict[str, list[tuple[str, datetime]]], phase: str, code: str
) -> datetime | None:
    for prefix, due in deadlines.get(phase, []):
        if code.startswith(prefix):
            return due
    return None


def progress(session: Session, area: str, now: datetime) -> ProgressReport:
    """Progress of ``area`` (a region prefix the caller has already checked against the admin's
    scope), one row per child region, with categories and overdue phases."""
    length = child_length(area) or TOWNSHIP.length  # a township shows itself
    regions: dict[str, RegionProgress] = {}

    def region(code: str) -> RegionProgress:
        if code not in regions:
            regions[code] = RegionProgress(code, "")
        return regions[code]

    def cell(code: str, category: str) -> Counts:
        return region(code).by_category.setdefault(category, Counts())

    child = func.substr(PersonRow.township_code, 1, length)
    for code, category, n in session.execute(
        select(child, PersonRow.category, func.count())
        .where(_in_area(PersonRow.township_code, area), PersonRow.removed.is_(False))
        .group_by(child, PersonRow.category)
    ):
        cell(code, category).slice += n
    for code, category, status, n in session.execute(_record_rows(area, length)):
        if status == SUPERSEDED:
            continue
        counts = cell(code, category)
        counts.collected += n
        if status in (APPROVED, RETURNED):
            counts.reviewed += n
        if status == APPROVED:
            counts.approved += n
    for code, category, n in session.execute(_missing_rows(area, length)):
        cell(code, category).missing += n
    slice_child = func.substr(TownshipSlice.township_code, 1, length)
    for code, n in session.execute(
        select(slice_child, func.count())
        .where(_in_area(TownshipSlice.township_code, area), TownshipSlice.people > 0)
        .group_by(slice_child)
    ):
        region(code).totals.townships += n
    declared_child = func.substr(TownshipDeclaration.township_code, 1, length)
    for code, n in session.execute(
        select(declared_child, func.count())
        .where(_in_area(TownshipDeclaration.township_code, area))
        .group_by(declared_child)
    ):
        region(code).totals.declared += n

    deadlines = deadlines_for(session, area)
    names = region_names(session, [*regions, area] if area else list(regions))
    totals = Counts()
    by_category: dict[str, Counts] = {}
    for code, row in regions.items():
        row.name = names.get(code, code)
        townships, declared = row.totals.townships, row.totals.declared
        row.totals = Counts(townships=townships, declared=declared)
        for category, counts in row.by_category.items():
            row.totals.add(counts)
            by_category.setdefault(category, Counts()).add(counts)
        totals.add(row.totals)
        row.overdue = _overdue(row, deadlines, now)
    return ProgressReport(
        area=area,
        area_name=names.get(area, "全国") if area else "全国",
        level_length=length,
        regions=[regions[k] for k in sorted(regions)],
        totals=totals,
        by_category=by_category,
        deadlines={
            phase: due for phase in PHASES if (due := _due(deadlines, phase, area)) is not None
        },
        now=now,
    )


def _overdue(
    row: RegionProgress, deadlines: dict[str, list[tuple[str, datetime]]], now: datetime
) -> list[str]:
    late = []
    unfinished = {
        "collection": row.totals.missing > 0,
        "declaration": row.totals.declared < row.totals.townships,
        "review": row.totals.unreviewed > 0,
    }
    for phase, still_open in unfinished.items():
        due = _due(deadlines, phase, row.code)
        if due is not None and now > due and still_open:
            late.append(phase)
    return late


def set_deadline(
    session: Session, phase: str, region_prefix: str, due: date, set_by: str, now: datetime
) -> PhaseDeadline:
    """The end of ``due`` (midnight, Beijing time) is the deadline of ``phase`` in the region."""
    if phase not in PHASES:
        raise ConfigError(f"未知阶段 {phase!r}；可选：{', '.join(PHASES)}")
    at = datetime.combine(due + timedelta(days=1), time(0, 0), tzinfo=CAMPAIGN_TZ)
    row = session.get(PhaseDeadline, (phase, region_prefix))
    if row is None:
        row = PhaseDeadline(phase=phase, region_prefix=region_prefix, set_at=now, due_at=at)
        session.add(row)
    row.due_at, row.set_by, row.set_at = at, set_by, now
    return row


def list_deadlines(session: Session, area: str) -> list[PhaseDeadline]:
    return [
        row
        for row in session.scalars(
            select(PhaseDeadline).order_by(PhaseDeadline.phase, PhaseDeadline.region_prefix)
        )
        if row.region_prefix.startswith(area) or area.startswith(row.region_prefix)
    ]


@dataclass
class WeekRow:
    code: str
    name: str
    new_records: int = 0
    approved: int = 0
    returned: int = 0
    declared: int = 0
    cumulative: Counts = field(default_factory=Counts)
    overdue: list[str] = field(default_factory=list)
    tasks: int = 0  # tasks from the centre sent to the region so far
    tasks_done: int = 0  # of which closed by a new record or answered "the department is wrong"
    tasks_done_week: int = 0  # closed or answered this week

    @property
    def task_percent(self) -> float:
        """Share of the region's tasks done; 0 when it has none."""
        return round(100 * self.tasks_done / self.tasks, 1) if self.tasks else 0.0


@dataclass
class WeeklyReport:
    area: str
    area_name: str
    week_start: date
    week_end: date  # inclusive
    rows: list[WeekRow]
    total: WeekRow


def week_bounds(day: date) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00, Beijing time, of the week holding ``day``."""
    monday = day - timedelta(days=day.weekday())
    start = datetime.combine(monday, time(0, 0), tzinfo=CAMPAIGN_TZ)
    return start, start + timedelta(days=7)


def weekly_report(session: Session, area: str, day: date, now: datetime) -> WeeklyReport:
    """The week's work per child region beside the cumulative progress (S-11; S-22 asks for
    progress every Friday)."""
    start, end = week_bounds(day)
    base = progress(session, area, now)
    length = base.level_length
    rows = {
        r.code: WeekRow(r.code, r.name, cumulative=r.totals, overdue=r.overdue)
        for r in base.regions
    }

    def row(code: str) -> WeekRow:
        if code not in rows:
            rows[code] = WeekRow(code, code)
        return rows[code]

    child = func.substr(Record.township_code, 1, length)
    for code, n in session.execute(
        select(child, func.count())
        .where(
            _in_area(Record.township_code, area),
            Record.received_at >= start,
            Record.received_at < end,
        )
        .group_by(child)
    ):
        row(code).new_records += n
    event_child = func.substr(ReviewEvent.township_code, 1, length)
    for code, action, n in session.execute(
        select(event_child, ReviewEvent.action, func.count())
        .where(
            _in_area(ReviewEvent.township_code, area),
            ReviewEvent.at >= start,
            ReviewEvent.at < end,
            ReviewEvent.action.in_(("approve", "return", "declare")),
        )
        .group_by(event_child, ReviewEvent.action)
    ):
        target = row(code)
        if action == "approve":
            target.approved += n
        elif action == "return":
            target.returned += n
        else:
            target.declared += n
    task_child = func.substr(CentreTask.township_code, 1, length)
    done = CentreTask.status.in_((CLOSED, DISPUTED))
    for code, finished, n in session.execute(
        select(task_child, done, func.count())
        .where(_in_area(CentreTask.township_code, area))
        .group_by(task_child, done)
    ):
        row(code).tasks += n
        row(code).tasks_done += n if finished else 0
    for code, n in session.execute(
        select(task_child, func.count())
        .where(
            _in_area(CentreTask.township_code, area),
            done,
            CentreTask.closed_at >= start,
            CentreTask.closed_at < end,
        )
        .group_by(task_child)
    ):
        row(code).tasks_done_week += n
    total = WeekRow(area, base.area_name, cumulative=base.totals)
    for r in rows.values():
        total.new_records += r.new_records
        total.approved += r.approved
        total.returned += r.returned
        total.declared += r.declared
        total.tasks += r.tasks
        total.tasks_done += r.tasks_done
        total.tasks_done_week += r.tasks_done_week
    return WeeklyReport(
        area=area,
        area_name=base.area_name,
        week_start=start.date(),
        week_end=(end - timedelta(days=1)).date(),
        rows=[rows[k] for k in sorted(rows)],
        total=total,
    )


def ordered_categories(present: Iterable[str]) -> list[str]:
    known = [c.value for c in Category]
    return [c for c in known if c in set(present)] + sorted(set(present) - set(known))
