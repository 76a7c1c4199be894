"""One comparison run: the department's extract against the collected records (those stored
at the centre, or an exported file), linked, its findings written out and recorded.

Our side by default is every current record of the region (not superseded: collected,
returned or approved) and the approved records received in data sets; one per ID number, the
latest. With ``collected_file``, the rows of an initial-data file or of the approved-records
workbook (``记录编号`` first) instead.

Recorded in one transaction: the run (who, when, which extract, the counts), each finding as a
row with its township and status ``open`` (what tasks for the township are made from), and for
the funeral department each death in ``deceased_people`` (the person's records stay). A run on a
file records the run and its findings but marks nobody deceased: the file's people are not ours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.comparison.errors import ComparisonError
from controller.comparison.extracts import latest_extract
from controller.comparison.findings import Findings, find, write_outputs
from controller.comparison.linkage import Person, link_people
from controller.db.models import (
    ComparisonFinding,
    ComparisonRun,
    DeceasedPerson,
    DepartmentExtractRow,
    ImportedRecord,
    PersonRow,
    Record,
)
from controller.records.initial_import import check_file, read_rows
from controller.records.review import SUPERSEDED
from muster.departments import department
from muster.idnumbers import check_id_number, compact

__all__ = ["RunResult", "collected_from_file", "collected_from_records", "run_comparison"]


@dataclass(frozen=True, slots=True)
class RunResult:
    run_id: int
    findings: Findings
    files: list[Path]


def _person(key: str, who: dict[str, Any], township: str, address: str, today: Any) -> Person:
    number = compact(str(who.get("id_number") or "")) if who.get("id_number") else ""
    sex = {"男": "1", "女": "2"}.get(str(who.get("sex") or ""), str(who.get("sex") or ""))
    valid = bool(number) and not check_id_number(number, today=today).problems
    return Person(
        key=key,
        name=str(who.get("name") or ""),
        id_number=number,
        id_valid=valid,
        sex=sex if sex in ("1", "2") else "",
        birth_date=str(who.get("birth_date") or "")[:10],
        address=address,
        township_code=township,
    )


def collected_from_records(
    session: Session, region: str, today: Any
) -> tuple[list[Person], dict[str, dict[str, str]]]:
    """Our current records in ``region`` (one per ID number, the latest) and their fields."""
    latest: dict[str, tuple[datetime, str, str, dict[str, Any]]] = {}
    query = (
        select(Record.record_id, Record.township_code, Record.received_at, Record.payload)
        .where(Record.township_code.startswith(region), Record.review_status != SUPERSEDED)
        .execution_options(yield_per=2000)
    )
    for record_id, township, received, payload in session.execute(query):
        number = str(payload.get("person", {}).get("id_number") or record_id)
        held = latest.get(number)
        if held is None or (received, record_id) > (held[0], held[1]):
            latest[number] = (received, record_id, township, payload)
    imported = select(
        ImportedRecord.record_id, ImportedRecord.township_code, ImportedRecord.payload
    ).where(ImportedRecord.township_code.startswith(region))
    for record_id, township, payload in session.execute(imported):
        number = str(payload.get("person", {}).get("id_number") or record_id)
        latest.setdefault(number, (datetime.min, record_id, township, payload))
    people: list[Person] = []
    fields: dict[str, dict[str, str]] = {}
    for _received, record_id, township, payload in sorted(latest.values(), key=lambda t: t[1]):
        form = {k: str(v) for k, v in (payload.get("fields") or {}).items() if v is not None}
        people.append(
            _person(record_id, payload.get("person", {}), township, form.get("address", ""), today)
        )
        fields[record_id] = form
    return people, fields


_FILE_KEYS = {
    "记录编号": "record_id",
    "乡镇代码": "township_code",
    "姓名": "name",
    "公民身份号码": "id_number",
    "性别": "sex",
    "出生日期": "birth_date",
    "住址": "address",
    "现住址": "address",
    "入伍时间": "enlistment_date",
    "退役时间": "discharge_date",
}


def _file_headers(path: Path, headers: Sequence[str]) -> None:
    given = {str(h).strip() for h in headers if h}
    if not {"姓名", "公民身份号码", "乡镇代码"} <= given:
        raise ComparisonError(
            f"{path}：不是初始数据或已通过记录导出的文件（缺少 姓名、公民身份号码、乡镇代码 列）；"
            "请用 muster controller import 的模板或管理页面导出的已通过记录工作簿"
        )


def collected_from_file(
    path: Path, region: str, today: Any
) -> tuple[list[Person], dict[str, dict[str, str]]]:
    """The people of an exported file in ``region``: the initial-data format or the
    approved-records workbook (``记录编号``); rows without a name are skipped."""
    checked = check_file(path, check_headers=_file_headers)
    people: list[Person] = []
    fields: dict[str, dict[str, str]] = {}
    seen: set[str] = set()
    for line, raw in read_rows(
        checked.path, encoding=checked.encoding, check_headers=_file_headers
    ):
        row = {
            _FILE_KEYS[str(k).strip()]: str(v or "").strip()
            for k, v in raw.items()
            if k and str(k).strip() in _FILE_KEYS
        }
        if not row.get("name") or not row.get("township_code", "").startswith(region):
            continue
        key = row.get("record_id") or f"{path.name}:{line}"
        number = compact(row.get("id_number", "")) if row.get("id_number") else ""
        if number and number in seen:
            continue
        seen.add(number)
        people.append(_person(key, row, row["township_code"], row.get("address", ""), today))
        fields[key] = row
    return people, fields


def _department_side(
    session: Session, extract_id: str
) -> tuple[list[Person], dict[str, dict[str, str]]]:
    people: list[Person] = []
    extra: dict[str, dict[str, str]] = {}
    query = (
        select(DepartmentExtractRow)
        .where(DepartmentExtractRow.extract_id == extract_id)
        .order_by(DepartmentExtractRow.line)
    )
    for row in session.scalars(query):
        key = f"line:{row.line}"
        people.append(
            Person(
                key,
                row.name,
                row.id_number,
                row.id_valid,
                row.sex,
                row.birth_date,
                row.address,
                row.township_code,
            )
        )
        extra[key] = {k: str(v) for k, v in row.extra.items()}
    return people, extra


def _townships(session: Session, people: list[Person]) -> dict[str, str]:
    """The township owning each ID number in the initial data (for missing people)."""
    numbers = [p.id_number for p in people if p.id_valid and not p.township_code]
    found: dict[str, str] = {}
    for start in range(0, len(numbers), 1000):
        rows = session.execute(
            select(PersonRow.id_number, PersonRow.township_code).where(
                PersonRow.id_number.in_(numbers[start : start + 1000]), PersonRow.removed.is_(False)
            )
        )
        found.update({n: t for n, t in rows})
    return found


def run_comparison(
    sessions: sessionmaker[Session],
    kind: str,
    *,
    out_dir: Path,
    now: datetime,
    run_by: str,
    region: str = "",
    collected_file: Path | None = None,
    engine: str = "duckdb",
    progress: Callable[[str], None] = lambda step: None,
) -> RunResult:
    spec = department(kind)
    today = now.date()
    with sessions() as session:
        extract = latest_extract(session, spec.kind, region)
        scope = region or extract.region_prefix
        theirs, extra = _department_side(session, extract.extract_id)
        if collected_file is not None:
            ours, fields = collected_from_file(collected_file, scope, today)
            source = f"file:{collected_file.name}"[:300]
        else:
            ours, fields = collected_from_records(session, scope, today)
            source = "centre"
        theirs = [p for p in theirs if _in_scope(p, scope)]
        owners = _townships(session, theirs)
        extract_id = extract.extract_id
    progress("loaded")
    links = link_people(theirs, ours, engine=engine, progress=progress)
    findings = find(spec.kind, theirs, ours, links, department_extra=extra, collected_fields=fields)
    findings.missing = [
        m if m.township_code else _with_township(m, owners.get(m.id_number, ""))
        for m in findings.missing
    ]
    context = {
        "部门数据": extract_id[:16],
        "区域": scope or "全部",
        "采集数据": "中心已存记录" if collected_file is None else str(collected_file.name),
        "比对人": run_by,
        "比对时间": now.isoformat(timespec="seconds"),
        "引擎": engine,
    }
    files = write_outputs(findings, out_dir, context=context)
    progress("written")
    with sessions.begin() as session:
        summary = findings.summary()
        run = ComparisonRun(
            department=spec.kind,
            region_prefix=scope,
            extract_id=extract_id,
            collected_source=source,
            engine=engine,
            run_by=run_by[:64],
            run_at=now,
            out_dir=str(out_dir)[:300],
            **summary,
        )
        session.add(run)
        session.flush()
        session.add_all(_finding_rows(run.id, findings, now))
        if spec.kind == "funeral" and collected_file is None:
            _mark_deceased(session, run.id, findings, now)
        run_id = run.id
    return RunResult(run_id, findings, files)


def _in_scope(person: Person, scope: str) -> bool:
    if not scope:
        return True
    region = person.township_code or (person.id_number[:6] if person.id_valid else "")
    return region.startswith(scope) or (not person.township_code and scope.startswith(region))


def _with_township(m: Any, township: str) -> Any:
    from dataclasses import replace

    return replace(m, township_code=township)


def _finding_rows(run_id: int, findings: Findings, now: datetime) -> Iterator[ComparisonFinding]:
    for p in findings.problems:
        yield ComparisonFinding(
            run_id=run_id,
            kind="problem",
            township_code=p.township_code,
            id_number=p.id_number,
            name=p.name[:64],
            field=p.field,
            collected_value=p.collected,
            department_value=p.department_value,
            department=findings.department,
            match_method=p.method,
            match_score=p.score,
            record_id=p.record_key if ":" not in p.record_key else None,
            status="open",
            status_at=now,
        )
    for m in findings.missing:
        yield ComparisonFinding(
            run_id=run_id,
            kind="missing",
            township_code=m.township_code,
            id_number=m.id_number,
            name=m.name[:64],
            department=findings.department,
            status="open",
            status_at=now,
        )


def _mark_deceased(session: Session, run_id: int, findings: Findings, now: datetime) -> None:
    for death in findings.deaths:
        if not death.id_number:
            continue
        held = session.get(DeceasedPerson, death.id_number)
        if held is None:
            session.add(
                DeceasedPerson(
                    id_number=death.id_number,
                    name=death.name[:64],
                    township_code=death.township_code,
                    death_date=death.death_date,
                    run_id=run_id,
                    recorded_at=now,
                    payment_stop="pending",
                )
            )
        elif held.death_date != death.death_date:
            # A later extract corrects the date; the payment stop keeps where it stands.
            held.death_date = death.death_date
            held.run_id = run_id
            held.recorded_at = now
