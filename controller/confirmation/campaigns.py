"""Opening a campaign for a year and a county, finding it again, and planning the home visits
by township and age band from the quotas of S-21 (``muster.confirmation``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controller.db.models import ConfirmationCampaign, ConfirmationSubject
from muster.clock import Clock
from muster.confirmation import (
    AGE_BANDS,
    AgeBand,
    ConfirmationError,
    Phases,
    Status,
    default_phases,
    visits_required,
)
from muster.errors import NotFoundError

__all__ = [
    "VisitPlanRow",
    "create_campaign",
    "find_campaign",
    "phases_of",
    "plan_visits",
    "visit_list",
]


def _check_county(county: str) -> str:
    if len(county) != 6 or not county.isdigit() or county.endswith("00"):
        raise ConfirmationError(
            f"县级代码“{county[:20]}”应为 6 位数字的区县代码（如 320723），不是省市代码"
        )
    return county


def create_campaign(
    session: Session,
    *,
    year: int,
    county: str,
    clock: Clock,
    by: str = "",
    phases: Phases | None = None,
) -> ConfirmationCampaign:
    """A new campaign; S-22's dates unless ``phases`` says otherwise. One per year and county."""
    county = _check_county(county)
    if not 2000 <= year <= 2200:
        raise ConfirmationError(f"年度 {year} 不合理；请写四位年份，如 2026")
    if find_campaign(session, year, county, missing_ok=True) is not None:
        raise ConfirmationError(f"{year} 年度 {county} 的确认工作已经建立；不必重复建立")
    campaign = ConfirmationCampaign(
        year=year,
        county_code=county,
        phases=(phases or default_phases(year)).to_json(),
        created_by=by,
        created_at=clock.now(),
    )
    session.add(campaign)
    try:
        session.flush()
    except IntegrityError as exc:  # another process opened it meanwhile
        raise ConfirmationError(f"{year} 年度 {county} 的确认工作已经建立") from exc
    return campaign


def find_campaign(
    session: Session, year: int, county: str, *, missing_ok: bool = False
) -> ConfirmationCampaign:
    found = session.scalar(
        select(ConfirmationCampaign).where(
            ConfirmationCampaign.year == year, ConfirmationCampaign.county_code == county
        )
    )
    if found is None and not missing_ok:
        raise NotFoundError(
            f"没有 {year} 年度 {county} 的确认工作；请先运行 "
            f"muster controller confirmation campaign create --year {year} --county {county}"
        )
    return found  # type: ignore[return-value]


def phases_of(campaign: ConfirmationCampaign) -> Phases:
    return Phases.from_json(campaign.phases)


def age_reference_day(campaign: ConfirmationCampaign) -> date:
    """Ages (and so bands) are counted on the first day of the confirmation phase."""
    return phases_of(campaign).confirmation.start


@dataclass(frozen=True, slots=True)
class VisitPlanRow:
    township_code: str
    band: AgeBand
    people: int
    required: int


def plan_visits(session: Session, campaign: ConfirmationCampaign) -> list[VisitPlanRow]:
    """Mark who each township visits at home: everyone of 80 and over, and of the younger bands
    at least the quota's share, the oldest first. Planning again gives the same plan."""
    subjects = session.scalars(
        select(ConfirmationSubject)
        .where(
            ConfirmationSubject.campaign_id == campaign.id,
            ConfirmationSubject.status != Status.DECEASED.value,
        )
        .order_by(
            ConfirmationSubject.township_code,
            ConfirmationSubject.birth_date,
            ConfirmationSubject.id_number,
        )
    ).all()
    groups: dict[tuple[str, AgeBand], list[ConfirmationSubject]] = {}
    for subject in subjects:
        groups.setdefault((subject.township_code, AgeBand(subject.age_band)), []).append(subject)
    plan: list[VisitPlanRow] = []
    for township in sorted({t for t, _ in groups}):
        for band in AGE_BANDS:
            people = groups.get((township, band), [])
            required = visits_required(band, len(people))
            for index, subject in enumerate(people):
                subject.visit_planned = index < required
            if people:
                plan.append(VisitPlanRow(township, band, len(people), required))
    return plan


def visit_list(
    session: Session, campaign: ConfirmationCampaign, township: str
) -> list[ConfirmationSubject]:
    """A township's home visits still to make (what the portable device is to receive)."""
    return list(
        session.scalars(
            select(ConfirmationSubject)
            .where(
                ConfirmationSubject.campaign_id == campaign.id,
                ConfirmationSubject.township_code == township,
                ConfirmationSubject.visit_planned.is_(True),
                ConfirmationSubject.status.in_([Status.TO_CONFIRM.value, Status.UNREACHABLE.value]),
            )
            .order_by(ConfirmationSubject.birth_date, ConfirmationSubject.id_number)
        )
    )
