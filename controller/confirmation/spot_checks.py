"""Spot checks (S-22: at least twice a year): a seeded random sample of the confirmed, stored
with its seed and the population it was drawn from so an auditor can replay it, and put back
to be confirmed again (a spot-check confirmation goes through ``steps.apply_confirmation`` and
leaves the status as it was)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import ConfirmationCampaign, ConfirmationSubject, SpotCheck
from muster.clock import Clock
from muster.confirmation import CONFIRMED_STATUSES, ConfirmationError, spot_sample

__all__ = ["draw_spot_check", "replay_spot_check", "spot_checks_in_year"]


def draw_spot_check(
    session: Session,
    campaign: ConfirmationCampaign,
    *,
    seed: int,
    size: int,
    clock: Clock,
    by: str,
) -> SpotCheck:
    population = sorted(
        session.scalars(
            select(ConfirmationSubject.id_number).where(
                ConfirmationSubject.campaign_id == campaign.id,
                ConfirmationSubject.status.in_([s.value for s in CONFIRMED_STATUSES]),
            )
        )
    )
    if not population:
        raise ConfirmationError("尚无已确认的对象可供抽查；请在确认工作开展后再抽查")
    if not 0 <= seed < 2**63:
        raise ConfirmationError("随机种子应为 0 至 2^63-1 之间的整数")
    check = SpotCheck(
        campaign_id=campaign.id,
        seed=seed,
        size=size,
        population=population,
        sample=spot_sample(population, size, seed),
        drawn_by=by,
        drawn_at=clock.now(),
    )
    session.add(check)
    session.flush()
    return check


def replay_spot_check(check: SpotCheck) -> bool:
    """Whether the stored sample is what its seed draws from its stored population."""
    return spot_sample(check.population, check.size, check.seed) == list(check.sample)


def spot_checks_in_year(session: Session, campaign: ConfirmationCampaign, year: int) -> int:
    checks = session.scalars(select(SpotCheck).where(SpotCheck.campaign_id == campaign.id))
    return sum(1 for c in checks if c.drawn_at.year == year)
