"""Import of the initial data (S-04) into the people table, township by township.

Every row is checked (``muster.initial_data.parse_row``); a rejected row is reported with its
line number and the reason and changes nothing. Rows are applied in chunks, one transaction
each, and idempotently: a person whose content is unchanged is left alone, so re-importing the
same file (or resuming after a crash half way) changes nothing. Each chunk that changes a
township moves that township's slice version on by one, and the changed rows carry the new
version: that is what a device's delta is cut from.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import PersonRow, TownshipSlice
from muster.clock import Clock
from muster.errors import ConfigError
from muster.initial_data import HEADERS, InitialPerson, RowRejected, parse_row

__all__ = [
    "ImportReport",
    "Importer",
    "Rejected",
    "count_rows",
    "import_file",
    "read_rows",
    "write_rejections",
]

CHUNK = 2000


@dataclass(frozen=True, slots=True)
class Rejected:
    line: int
    code: str
    reason: str
    id_number: str


@dataclass
class ImportReport:
    rows: int = 0
    added: int = 0
    changed: int = 0
    moved: int = 0
    unchanged: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    townships: set[str] = field(default_factory=set)

    def summary(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "added": self.added,
            "changed": self.changed,
            "moved": self.moved,
            "unchanged": self.unchanged,
            "rejected": len(self.rejected),
            "townships_changed": len(self.townships),
        }


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) from a CSV (UTF-8, with or without BOM) or an XLSX file's first sheet."""
    suffix = path.suffix.lower()
    if not path.exists():
        raise ConfigError(f"导入文件 {path} 不存在")
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            _check_headers(path, reader.fieldnames or [])
            for line, row in enumerate(reader, start=2):
                yield line, dict(row)
    elif suffix == ".xlsx":
        from openpyxl import load_workbook

        book = load_workbook(path, read_only=True, data_only=True)
        try:
            rows = book.worksheets[0].iter_rows(values_only=True)
            header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
            _check_headers(path, header)
            for line, values in enumerate(rows, start=2):
                if all(v is None for v in values):
                    continue
                yield line, dict(zip(header, values, strict=False))
        finally:
            book.close()
    else:
        raise ConfigError(f"{path}: 只能导入 .csv 或 .xlsx 文件 (import a .csv or .xlsx file)")


def _check_headers(path: Path, headers: Iterable[str]) -> None:
    known = {HEADERS[h] for h in headers if h in HEADERS}
    missing = {"township_code", "id_number", "name"} - known
    if missing:
        raise ConfigError(
            f"{path}: 表头缺少必需的列 {sorted(missing)}；请使用 muster sim dataset 生成的模板表头"
        )


def write_rejections(path: Path, rejected: Iterable[Rejected]) -> None:
    with path.open("w", newline="", encoding="utf-8-sig") as fh:
        writer = csv.writer(fh)
        writer.writerow(["行号", "公民身份号码", "原因代码", "原因"])
        for r in rejected:
            writer.writerow([r.line, r.id_number, r.code, r.reason])


class Importer:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Clock,
    ) -> None:
        self._sessions = sessions
        self._clock = clock

    def import_rows(
        self,
        rows: Iterable[tuple[int, dict[str, Any]]],
        *,
        progress: Callable[[int], None] = lambda n: None,
    ) -> ImportReport:
        report = ImportReport()
        today = self._clock.today()
        seen: set[str] = set()
        chunk: list[InitialPerson] = []
        for line, raw in rows:
            report.rows += 1
            try:
                person = parse_row(raw, today=today)
            except RowRejected as exc:
                number = str(raw.get("公民身份号码") or raw.get("id_number") or "")
                report.rejected.append(Rejected(line, exc.code, str(exc), number))
                continue
            if person.id_number in seen:
                report.rejected.append(
                    Rejected(
                        line,
                        "duplicate",
                        "同一公民身份号码在文件中出现多次，只导入第一次出现的行；请合并后重新导入",
                        person.id_number,
                    )
                )
                continue
            seen.add(person.id_number)
            chunk.append(person)
            if len(chunk) >= CHUNK:
                self._apply(chunk, report)
                progress(len(chunk))
                chunk = []
        if chunk:
            self._apply(chunk, report)
            progress(len(chunk))
        return report

    def _apply(self, people: list[InitialPerson], report: ImportReport) -> None:
        now = self._clock.now()
        with self._sessions.begin() as session:
            existing: dict[str, list[PersonRow]] = {}
            for row in session.scalars(
                select(PersonRow).where(PersonRow.id_number.in_([p.id_number for p in people]))
            ):
                existing.setdefault(row.id_number, []).append(row)
            bumped: dict[str, TownshipSlice] = {}

            def version_of(township: str) -> int:
                slice_ = bumped.get(township)
                if slice_ is None:
                    slice_ = session.get(TownshipSlice, township, with_for_update=True)
                    if slice_ is None:
                        slice_ = TownshipSlice(
                            township_code=township, version=0, people=0, updated_at=now
                        )
                        session.add(slice_)
                    slice_.version += 1
                    slice_.updated_at = now
                    bumped[township] = slice_
                return slice_.version

            new_rows: list[dict[str, Any]] = []
            for person in people:
                rows = existing.get(person.id_number, [])
                here = next((r for r in rows if r.township_code == person.township_code), None)
                for other in rows:
                    if other is not here and not other.removed:
                        # Moved to another township: the old one's devices must forget them.
                        other.removed = True
                        other.version = version_of(other.township_code)
                        other.updated_at = now
                        bumped[other.township_code].people -= 1
                        report.moved += 1
                digest = person.content_hash
                if here is None:
                    new_rows.append(
                        {
                            "township_code": person.township_code,
                            "id_number": person.id_number,
                            "name": person.name,
                            "category": person.category,
                            "details": person.details,
                            "content_hash": digest,
                            "version": version_of(person.township_code),
                            "removed": False,
                            "updated_at": now,
                        }
                    )
                    bumped[person.township_code].people += 1
                    report.added += 1
                elif here.content_hash == digest and not here.removed:
                    report.unchanged += 1
                else:
                    version = version_of(person.township_code)
                    if here.removed:  # back after having moved away
                        bumped[person.township_code].people += 1
                        report.added += 1
                    else:
                        report.changed += 1
                    here.name = person.name
                    here.category = person.category
                    here.details = person.details
                    here.content_hash = digest
                    here.removed = False
                    here.version = version
                    here.updated_at = now
            if new_rows:
                session.execute(insert(PersonRow), new_rows)
            report.townships.update(bumped)


def import_file(
    sessions: sessionmaker[Session],
    path: Path,
    *,
    progress: Callable[[int], None] = lambda n: None,
    clock: Clock,
) -> ImportReport:
    return Importer(sessions, clock=clock).import_rows(read_rows(path), progress=progress)


def count_rows(path: Path) -> int:
    """Data rows in the file, for the progress bar (a quick pass; XLSX knows its dimension)."""
    if path.suffix.lower() == ".csv":
        with path.open("rb") as fh:
            return max(0, sum(1 for _ in fh) - 1)
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True)
    try:
        return max(0, (book.worksheets[0].max_row or 1) - 1)
    finally:
        book.close()
