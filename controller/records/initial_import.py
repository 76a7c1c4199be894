"""Import of the initial data (S-04) into the people table, township by township.

Every row is checked (``muster.initial_data.parse_row``); a rejected row is reported with its
line number and the reason and changes nothing. Rows are applied in chunks, one transaction
each, and idempotently: a person whose content is unchanged is left alone, so re-importing the
same file (or resuming after a crash half way) changes nothing. Each chunk that changes a
township moves that township's slice version on by one, and the changed rows carry the new
version: that is what a device's delta is cut from.

Before any row is stored the whole file is read through once (``check_file``): a file that
cannot be read at all (not UTF-8 nor GB18030, a field over the CSV module's limit, a broken
CSV, a "workbook" that is no XLSX) raises ``ImportFileError`` naming the file, the line where
there is one, and the fix, and the database is not touched. A CSV saved by Chinese Excel (GBK)
is read as GB18030 rather than refused.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import PersonRow, TownshipSlice
from muster.clock import Clock
from muster.errors import ConfigError
from muster.initial_data import HEADERS, InitialPerson, RowRejected, parse_row
from muster.spreadsheets import csv_row

__all__ = [
    "CheckedFile",
    "HeaderCheck",
    "ImportFileError",
    "ImportReport",
    "Importer",
    "Rejected",
    "check_file",
    "count_rows",
    "csv_encoding",
    "import_file",
    "read_rows",
    "write_rejections",
]

CHUNK = 2000

# Judges a file's header row before any data row is read; raises ConfigError naming the fix.
HeaderCheck = Callable[[Path, Sequence[str]], None]


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


class ImportFileError(ConfigError):
    """The file cannot be read as initial data at all (its encoding, a broken CSV, a file that
    is not a workbook): nothing was imported. The message names the file, the line where
    there is one, and the fix."""


@dataclass(frozen=True, slots=True)
class CheckedFile:
    """A file that reads from end to end: its data rows and, for a CSV, its encoding."""

    path: Path
    rows: int
    encoding: str | None = None


def _where(path: Path, line: int | None) -> str:
    return f"{path} 第 {line} 行" if line else str(path)


def csv_encoding(path: Path) -> str:
    """``utf-8-sig`` for a UTF-8 file (with or without BOM); ``gb18030`` for a file that is not
    UTF-8 but decodes as GB18030 from end to end (what Chinese Excel saves as "CSV" is GBK, a
    subset); anything else is refused naming the first line that is not UTF-8.

    Lines are split on ``\\n`` before decoding, which is safe for both encodings: neither uses
    the byte 0x0A inside a multi-byte character."""
    first_bad = _first_undecodable_line(path, "utf-8")
    if first_bad is None:
        return "utf-8-sig"
    if _first_undecodable_line(path, "gb18030") is None:
        return "gb18030"
    raise ImportFileError(
        f"{_where(path, first_bad)}：文件不是 UTF-8 编码，请另存为 UTF-8 CSV"
        "（Excel：另存为 → CSV UTF-8（逗号分隔））后重新导入；未导入任何数据"
    )


def _first_undecodable_line(path: Path, encoding: str) -> int | None:
    with path.open("rb") as fh:
        for line, raw in enumerate(fh, start=1):
            if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                raw.decode(encoding)
            except UnicodeDecodeError:
                return line
    return None


def check_file(path: Path, *, check_headers: HeaderCheck | None = None) -> CheckedFile:
    """Read ``path`` from end to end as the importer will, before anything is stored: an
    unreadable file (encoding, a field over the CSV limit, a broken CSV, a file that is not an
    XLSX workbook) raises ``ImportFileError`` and the database is never touched.
    ``check_headers`` judges the header row (default: the initial data's); other importers of
    tables (departments' extracts) pass their own."""
    suffix = path.suffix.lower()
    encoding = csv_encoding(path) if suffix == ".csv" and path.exists() else None
    rows = sum(1 for _ in read_rows(path, encoding=encoding, check_headers=check_headers))
    return CheckedFile(path, rows, encoding)


def read_rows(
    path: Path, *, encoding: str | None = None, check_headers: HeaderCheck | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) from a CSV (UTF-8 with or without BOM, or GB18030/GBK: see
    ``csv_encoding``) or an XLSX file's first sheet. A file that cannot be read raises
    ``ImportFileError``; ``check_file`` finds that before any row is imported."""
    suffix = path.suffix.lower()
    headers = check_headers or _check_headers
    if not path.exists():
        raise ConfigError(f"导入文件 {path} 不存在")
    if suffix == ".csv":
        yield from _csv_rows(path, encoding or csv_encoding(path), headers)
    elif suffix == ".xlsx":
        yield from _xlsx_rows(path, headers)
    else:
        raise ConfigError(f"{path}: 只能导入 .csv 或 .xlsx 文件 (import a .csv or .xlsx file)")


def _csv_rows(
    path: Path, encoding: str, check_headers: HeaderCheck
) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(newline="", encoding=encoding) as fh:
        reader = csv.DictReader(fh)
        try:
            check_headers(path, reader.fieldnames or [])
            for line, row in enumerate(reader, start=2):
                yield line, dict(row)
        except UnicodeDecodeError as exc:  # the file changed after its encoding was checked
            raise ImportFileError(
                f"{path}：文件不是 {encoding} 编码，请另存为 UTF-8 CSV 后重新导入；未导入任何数据"
            ) from exc
        except csv.Error as exc:
            limit = csv.field_size_limit()
            if "field limit" in str(exc):
                why = (
                    f'有一个字段超过 {limit} 个字符，通常是引号没有配对（一个 " 之后的内容都'
                    "被当成了同一格）；请检查该行及其前几行的引号，或删去过长的内容"
                )
            else:
                why = f"不是有效的 CSV（{exc}）；请用 Excel 打开后另存为 CSV UTF-8"
            raise ImportFileError(
                f"{_where(path, reader.reader.line_num)}：{why}；未导入任何数据"
            ) from exc


def _xlsx_rows(path: Path, check_headers: HeaderCheck) -> Iterator[tuple[int, dict[str, Any]]]:
    from openpyxl import load_workbook

    not_a_workbook = (
        f"{path}：不是有效的 Excel 工作簿（.xlsx）——可能是改了扩展名的其他文件或已损坏；"
        "请用 Excel 打开后另存为“Excel 工作簿 (*.xlsx)”或“CSV UTF-8”再导入；未导入任何数据"
    )
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError, XML and its own errors alike
        raise ImportFileError(not_a_workbook) from exc
    try:
        if not book.worksheets:
            raise ImportFileError(not_a_workbook)
        line = 1
        try:
            rows = book.worksheets[0].iter_rows(values_only=True)
            header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
            check_headers(path, header)
            for line, values in enumerate(rows, start=2):
                if all(v is None for v in values):
                    continue
                yield line, dict(zip(header, values, strict=False))
        except ConfigError:
            raise
        except Exception as exc:  # a damaged sheet inside a valid zip fails while iterating
            raise ImportFileError(
                f"{_where(path, line)}：工作表内容已损坏，无法读取；"
                "请用 Excel 打开后另存为新的 .xlsx 或 CSV UTF-8 再导入；未导入任何数据"
            ) from exc
    finally:
        book.close()


def _check_headers(path: Path, headers: Sequence[str]) -> None:
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
            # The number and the reason echo what the file said: never a live formula.
            writer.writerow(csv_row([r.line, r.id_number, r.code, r.reason]))


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
    path: Path | CheckedFile,
    *,
    progress: Callable[[int], None] = lambda n: None,
    clock: Clock,
) -> ImportReport:
    """Import ``path`` after ``check_file`` has read it through (pass its ``CheckedFile`` to
    skip the second reading): a file that cannot be read changes nothing."""
    checked = path if isinstance(path, CheckedFile) else check_file(path)
    return Importer(sessions, clock=clock).import_rows(
        read_rows(checked.path, encoding=checked.encoding), progress=progress
    )


def count_rows(path: Path) -> int:
    """Data rows in the file (reading it through, as ``check_file`` does)."""
    return check_file(path).rows
