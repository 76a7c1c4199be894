"""The payment roll's import: who receives a regular pension or subsidy in the county, in which
category and how much a month. Read by the initial-data import's table reader (CSV in UTF-8 or
GBK, or XLSX; an unreadable file is refused before anything is stored), every row checked, a
rejected row reported with its line and reason in a rejection file and nothing else changed;
idempotent: importing the same roll again changes nothing.

A row is accepted only for a person of the county's initial data (``people``): their name,
township and birth date come from there, never from the roll."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.confirmation.campaigns import age_reference_day
from controller.db.models import ConfirmationCampaign, ConfirmationSubject, PersonRow
from controller.records.initial_import import (
    ImportFileError,
    Rejected,
    check_file,
    read_rows,
)
from muster.clock import Clock
from muster.confirmation import (
    ConfirmationError,
    Status,
    age_band,
    parse_amount_fen,
    parse_category,
)
from muster.errors import ConfigError
from muster.idnumbers import birth_date_of, check_id_number, compact

__all__ = ["ROLL_HEADERS", "RollReport", "check_roll_headers", "import_roll"]

ROLL_HEADERS: dict[str, str] = {
    "公民身份号码": "id_number",
    "身份证号": "id_number",
    "优抚对象类别": "category",
    "月发放金额": "monthly_amount",
    "月发放金额（元）": "monthly_amount",
    "联系电话": "phone",
} | {k: k for k in ("id_number", "category", "monthly_amount", "phone")}
_PHONE = re.compile(r"[0-9][0-9-]{6,19}")


@dataclass
class RollReport:
    rows: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "added": self.added,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "rejected": len(self.rejected),
        }


def check_roll_headers(path: Path, headers: Sequence[str]) -> None:
    known = {ROLL_HEADERS[h.strip()] for h in headers if h and h.strip() in ROLL_HEADERS}
    missing = {"id_number", "category", "monthly_amount"} - known
    if missing:
        names = {
            "id_number": "公民身份号码",
            "category": "优抚对象类别",
            "monthly_amount": "月发放金额",
        }
        raise ImportFileError(
            f"{path}：表头缺少必需的列 {'、'.join(names[m] for m in sorted(missing))}；"
            "发放名册应有“公民身份号码、优抚对象类别、月发放金额”三列（联系电话可选）；未导入任何数据"
        )


def _row(raw: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in raw.items():
        name = ROLL_HEADERS.get((key or "").strip())
        if name is not None:
            out[name] = "" if value is None else str(value).strip()
    return out


class _Refused(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def import_roll(
    sessions: sessionmaker[Session],
    campaign_id: int,
    path: Path,
    *,
    clock: Clock,
    progress: Callable[[int], None] = lambda n: None,
) -> RollReport:
    """Import the roll at ``path`` into the campaign, one transaction for the whole file (a
    county's roll is thousands of rows, and half a roll is worse than none)."""
    checked = check_file(path, check_headers=check_roll_headers)
    report = RollReport()
    today = clock.today()
    now = clock.now()
    seen: set[str] = set()
    with sessions.begin() as session:
        campaign = session.get(ConfirmationCampaign, campaign_id)
        if campaign is None:
            raise ConfigError(f"没有编号为 {campaign_id} 的确认工作")
        reference = age_reference_day(campaign)
        for line, raw in read_rows(
            path, encoding=checked.encoding, check_headers=check_roll_headers
        ):
            report.rows += 1
            row = _row(raw)
            number = row.get("id_number", "")[:32]
            try:
                outcome = _apply(session, campaign, row, seen, today, reference, now)
            except _Refused as refused:
                report.rejected.append(Rejected(line, refused.code, refused.reason, number))
            else:
                setattr(report, outcome, getattr(report, outcome) + 1)
            progress(1)
    return report


def _apply(
    session: Session,
    campaign: ConfirmationCampaign,
    row: dict[str, str],
    seen: set[str],
    today: Any,
    reference: Any,
    now: Any,
) -> str:
    raw_number = row.get("id_number", "")
    if not raw_number:
        raise _Refused("id_missing", "公民身份号码为空；请填写 18 位公民身份号码")
    check = check_id_number(raw_number, today=today)
    if not check.valid:
        raise _Refused("id_invalid", "；".join(p.zh for p in check.problems) or "公民身份号码不对")
    number = compact(raw_number)
    if number in seen:
        raise _Refused("duplicate", f"公民身份号码 {number} 在名册中重复出现；每人只应有一行")
    seen.add(number)
    try:
        category = parse_category(row.get("category", ""))
        monthly = parse_amount_fen(row.get("monthly_amount", ""))
    except ConfirmationError as exc:
        raise _Refused("value", str(exc)) from None
    phone = row.get("phone", "")
    if phone and not _PHONE.fullmatch(phone):
        raise _Refused("phone", f"联系电话“{phone[:24]}”应为 7 至 20 位数字（可含 -），或留空")
    person = session.scalar(
        select(PersonRow).where(
            PersonRow.id_number == number,
            PersonRow.removed.is_(False),
            PersonRow.township_code.startswith(campaign.county_code),
        )
    )
    if person is None:
        raise _Refused(
            "not_in_county",
            f"公民身份号码 {number} 不在 {campaign.county_code} 的初始数据中；"
            "请先导入该人员的初始数据，或核对名册是否属于本县",
        )
    born = birth_date_of(number)
    existing = session.get(ConfirmationSubject, (campaign.id, number))
    values = {
        "name": person.name,
        "township_code": person.township_code,
        "birth_date": born.isoformat(),
        "age_band": age_band(born, reference).value,
        "category": category.value,
        "monthly_fen": monthly,
    }
    if existing is None:
        session.add(
            ConfirmationSubject(
                campaign_id=campaign.id,
                id_number=number,
                status=Status.TO_CONFIRM.value,
                status_at=now,
                phone=phone,
                visit_planned=False,
                **values,
            )
        )
        return "added"
    changed = {k: v for k, v in values.items() if getattr(existing, k) != v}
    if phone and phone != existing.phone:
        changed["phone"] = phone
    for key, value in changed.items():
        setattr(existing, key, value)
    return "changed" if changed else "unchanged"
