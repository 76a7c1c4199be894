"""Import of a department's extract: every row checked by ``muster.departments``, the file read
by the initial-data import's reader (encodings, broken CSV, damaged workbooks, the rejection
file), the accepted rows stored in one transaction.

An extract is named by the SHA-256 of its department, region and accepted rows: importing the
same file again finds it and changes nothing. A file whose header row is not the department's
is refused before any row is read, naming the columns and the department they belong to.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from controller.comparison.errors import ComparisonError
from controller.db.models import DepartmentExtract, DepartmentExtractRow
from controller.records.initial_import import Rejected, check_file, read_rows
from muster.departments import DepartmentPerson, check_headers, department, parse_extract_row
from muster.initial_data import RowRejected
from muster.regions import DRILL_LENGTHS

__all__ = ["ExtractReport", "import_extract", "latest_extract", "read_extract"]


@dataclass
class ExtractReport:
    extract_id: str = ""
    department: str = ""
    rows: int = 0
    accepted: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    already_imported: bool = False

    def summary(self) -> dict[str, object]:
        return {
            "extract_id": self.extract_id,
            "department": self.department,
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": len(self.rejected),
            "already_imported": self.already_imported,
        }


def _check_region(prefix: str) -> str:
    prefix = prefix.strip()
    allowed = (*DRILL_LENGTHS, 12)  # down to one township
    if prefix and (not prefix.isdigit() or len(prefix) not in allowed):
        lengths = "、".join(str(n) for n in allowed)
        raise ComparisonError(f"--region “{prefix}” 不是区划代码前缀：应为 {lengths} 位数字")
    return prefix


def read_extract(
    kind: str,
    path: Path,
    *,
    today: datetime,
    region_prefix: str = "",
    progress: Callable[[int], None] = lambda n: None,
) -> tuple[list[tuple[int, DepartmentPerson]], ExtractReport]:
    """Read and check the whole file; nothing is stored. Raises ``ConfigError`` (an
    ``ImportFileError`` or ``ExtractHeaderError``) for a file that cannot be read as ``kind``."""
    spec = department(kind)
    prefix = _check_region(region_prefix)

    def headers(where: Path, given: Sequence[str]) -> None:
        check_headers(spec.kind, given, where=str(where))

    checked = check_file(path, check_headers=headers)
    report = ExtractReport(department=spec.kind)
    accepted: list[tuple[int, DepartmentPerson]] = []
    seen: dict[str, int] = {}
    day = today.date()
    for i, (line, raw) in enumerate(
        read_rows(checked.path, encoding=checked.encoding, check_headers=headers), 1
    ):
        report.rows += 1
        if i % 1000 == 0:
            progress(1000)
        number = str(raw.get("公民身份号码") or "")
        try:
            person = parse_extract_row(spec.kind, raw, today=day, region_prefix=prefix)
        except RowRejected as exc:
            report.rejected.append(Rejected(line, exc.code, str(exc), number))
            continue
        if person.id_valid:
            first = seen.get(person.id_number)
            if first is not None:
                report.rejected.append(
                    Rejected(
                        line,
                        "duplicate",
                        f"同一公民身份号码已在第 {first} 行出现，只导入第一次出现的行；"
                        "请合并后重新导入",
                        person.id_number,
                    )
                )
                continue
            seen[person.id_number] = line
        accepted.append((line, person))
    progress(report.rows % 1000)
    report.accepted = len(accepted)
    digest = hashlib.sha256(f"{spec.kind}\0{prefix}\0".encode())
    for line, person in accepted:
        digest.update(json.dumps([line, person.as_dict()], ensure_ascii=False).encode() + b"\n")
    report.extract_id = digest.hexdigest()
    return accepted, report


def import_extract(
    sessions: sessionmaker[Session],
    kind: str,
    path: Path,
    *,
    now: datetime,
    imported_by: str,
    region_prefix: str = "",
    progress: Callable[[int], None] = lambda n: None,
) -> ExtractReport:
    """Check ``path`` as ``kind``'s extract and store its accepted rows (one transaction), unless
    the same extract is already held. Rejected rows are in the report, not stored."""
    accepted, report = read_extract(
        kind, path, today=now, region_prefix=region_prefix, progress=progress
    )
    with sessions.begin() as session:
        if session.get(DepartmentExtract, report.extract_id) is not None:
            report.already_imported = True
            return report
        session.add(
            DepartmentExtract(
                extract_id=report.extract_id,
                department=report.department,
                region_prefix=_check_region(region_prefix),
                file_name=path.name[:300],
                rows=report.rows,
                rejected=len(report.rejected),
                imported_by=imported_by[:64],
                imported_at=now,
            )
        )
        session.flush()
        batch = [
            {"extract_id": report.extract_id, "line": line, **person.as_dict()}
            for line, person in accepted
        ]
        for start in range(0, len(batch), 2000):
            session.execute(insert(DepartmentExtractRow), batch[start : start + 2000])
    return report


def latest_extract(session: Session, kind: str, region_prefix: str = "") -> DepartmentExtract:
    """The department's most recently imported extract covering ``region_prefix`` (an extract
    of a wider region covers a narrower one)."""
    spec = department(kind)
    prefix = _check_region(region_prefix)
    candidates = session.scalars(
        select(DepartmentExtract)
        .where(DepartmentExtract.department == spec.kind)
        .order_by(DepartmentExtract.imported_at.desc(), DepartmentExtract.extract_id)
    )
    for extract in candidates:
        if prefix.startswith(extract.region_prefix):
            return extract
    where = f"覆盖区域 {prefix} 的" if prefix else ""
    raise ComparisonError(
        f"还没有{where}{spec.label}数据：请先用 muster controller extract import "
        f"--department {spec.kind} --file 文件 导入"
    )
