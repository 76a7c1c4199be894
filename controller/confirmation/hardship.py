"""The hardship register (S-23): people still in difficulty after payment, with the measures
taken, the person responsible and the follow-ups."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.confirmation.steps import subject
from controller.db.models import ConfirmationCampaign, HardshipCase, HardshipFollowUp
from muster.confirmation import ConfirmationError

__all__ = ["add_follow_up", "close_case", "hardship_cases", "open_case"]

_TEXT_MAX = 2000


def _text(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise ConfirmationError(f"请填写{what}")
    if len(value) > _TEXT_MAX:
        raise ConfirmationError(f"{what}最多 {_TEXT_MAX} 字")
    return value


def open_case(
    session: Session,
    campaign: ConfirmationCampaign,
    id_number: str,
    *,
    situation: str,
    measures: str,
    responsible: str,
    at: datetime,
    by: str,
) -> HardshipCase:
    person = subject(session, campaign, id_number)
    case = HardshipCase(
        campaign_id=campaign.id,
        id_number=person.id_number,
        township_code=person.township_code,
        situation=_text(situation, "困难情况"),
        measures=_text(measures, "帮扶措施"),
        responsible=_text(responsible, "责任人")[:64],
        opened_by=by[:64],
        opened_at=at,
    )
    session.add(case)
    session.flush()
    return case


def _case(session: Session, case_id: int) -> HardshipCase:
    case = session.get(HardshipCase, case_id)
    if case is None:
        raise ConfirmationError(f"没有编号为 {case_id} 的困难帮扶档案")
    return case


def add_follow_up(
    session: Session, case_id: int, *, note: str, at: datetime, by: str
) -> HardshipFollowUp:
    case = _case(session, case_id)
    if case.closed_at is not None:
        raise ConfirmationError(f"档案 {case_id} 已结案；如情况反复请新建档案")
    follow = HardshipFollowUp(case_id=case.id, at=at, by=by[:64], note=_text(note, "跟踪情况"))
    session.add(follow)
    return follow


def close_case(session: Session, case_id: int, *, at: datetime) -> HardshipCase:
    case = _case(session, case_id)
    case.closed_at = case.closed_at or at
    return case


def hardship_cases(
    session: Session, campaign: ConfirmationCampaign, area: str = ""
) -> list[tuple[HardshipCase, list[HardshipFollowUp]]]:
    cases = session.scalars(
        select(HardshipCase)
        .where(
            HardshipCase.campaign_id == campaign.id,
            HardshipCase.township_code.startswith(area or campaign.county_code),
        )
        .order_by(HardshipCase.id)
    ).all()
    follows: dict[int, list[HardshipFollowUp]] = {c.id: [] for c in cases}
    if cases:
        for f in session.scalars(
            select(HardshipFollowUp)
            .where(HardshipFollowUp.case_id.in_(list(follows)))
            .order_by(HardshipFollowUp.at, HardshipFollowUp.id)
        ):
            follows[f.case_id].append(f)
    return [(c, follows[c.id]) for c in cases]
