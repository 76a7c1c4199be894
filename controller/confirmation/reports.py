"""What the campaign's pages, CLI and weekly workbook show: progress per township and for the
county by age band and channel with the home-visit quota and whether a band is behind, the
public-notice list with names partly masked, the payment-stop list for finance, over-payments
and their recovery. Read-only queries over one session."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.confirmation.campaigns import phases_of
from controller.db.models import ConfirmationCampaign, ConfirmationSubject
from controller.records.region_tree import region_names
from muster.confirmation import (
    AGE_BANDS,
    CONFIRMED_STATUSES,
    AgeBand,
    Channel,
    Status,
    mask_name,
    quota_behind,
    visits_required,
)

__all__ = [
    "BandProgress",
    "NoticeLine",
    "ProgressRow",
    "StopLine",
    "notice_list",
    "overpayments",
    "progress",
    "stop_list",
]


@dataclass
class BandProgress:
    band: AgeBand
    people: int = 0
    confirmed: int = 0
    by_channel: Counter[str] = field(default_factory=Counter)
    visits_required: int = 0
    behind: bool = False

    @property
    def home_visits(self) -> int:
        return self.by_channel[Channel.HOME_VISIT.value]

    @property
    def percent(self) -> float:
        return round(100 * self.confirmed / self.people, 1) if self.people else 100.0

    @property
    def complete(self) -> bool:
        """Every band must reach 100 % (S-22); the dead count as done, they need no confirming."""
        return self.confirmed >= self.people


@dataclass
class ProgressRow:
    code: str
    name: str
    bands: dict[AgeBand, BandProgress]

    @property
    def behind(self) -> list[AgeBand]:
        return [b for b, p in self.bands.items() if p.behind]

    @property
    def people(self) -> int:
        return sum(p.people for p in self.bands.values())

    @property
    def confirmed(self) -> int:
        return sum(p.confirmed for p in self.bands.values())


def _subjects(
    session: Session, campaign: ConfirmationCampaign, area: str
) -> list[ConfirmationSubject]:
    return list(
        session.scalars(
            select(ConfirmationSubject)
            .where(
                ConfirmationSubject.campaign_id == campaign.id,
                ConfirmationSubject.township_code.startswith(area),
            )
            .order_by(ConfirmationSubject.township_code, ConfirmationSubject.id_number)
        )
    )


def progress(
    session: Session, campaign: ConfirmationCampaign, day: date, area: str = ""
) -> tuple[list[ProgressRow], ProgressRow]:
    """One row per township of the county within ``area``, and the county's total."""
    phase = phases_of(campaign).confirmation
    rows: dict[str, ProgressRow] = {}
    total = ProgressRow(campaign.county_code, "", {b: BandProgress(b) for b in AGE_BANDS})
    for s in _subjects(session, campaign, area or campaign.county_code):
        row = rows.setdefault(
            s.township_code,
            ProgressRow(s.township_code, "", {b: BandProgress(b) for b in AGE_BANDS}),
        )
        band = AgeBand(s.age_band)
        done = s.status in CONFIRMED_STATUSES or s.status == Status.DECEASED.value
        for target in (row.bands[band], total.bands[band]):
            target.people += 1
            if done:
                target.confirmed += 1
                if s.channel:
                    target.by_channel[s.channel] += 1
    names = region_names(session, [campaign.county_code, *rows])
    total.name = names.get(campaign.county_code, campaign.county_code)
    for row in [*rows.values(), total]:
        row.name = row.name or names.get(row.code, row.code)
        for band, p in row.bands.items():
            p.visits_required = visits_required(band, p.people)
            p.behind = quota_behind(p.home_visits, p.visits_required, day, phase) or (
                day > phase.end and not p.complete
            )
    return [rows[c] for c in sorted(rows)], total


@dataclass(frozen=True, slots=True)
class NoticeLine:
    township_code: str
    township: str
    masked_name: str
    category: str
    noticed_on: str
    status: str


def notice_list(
    session: Session, campaign: ConfirmationCampaign, area: str = ""
) -> list[NoticeLine]:
    """The unconfirmed for the notice boards: names partly masked, no ID number."""
    people = [
        s
        for s in _subjects(session, campaign, area or campaign.county_code)
        if s.noticed_on is not None
        and s.status in (Status.UNREACHABLE.value, Status.STOP_PENDING.value, Status.STOPPED.value)
    ]
    names = region_names(session, {s.township_code for s in people})
    return [
        NoticeLine(
            s.township_code,
            names.get(s.township_code, s.township_code),
            mask_name(s.name),
            s.category,
            s.noticed_on or "",
            s.status,
        )
        for s in people
    ]


@dataclass(frozen=True, slots=True)
class StopLine:
    id_number: str
    name: str
    township_code: str
    category: str
    monthly_fen: int
    stop_from: str
    reason: str  # stopped | deceased
    restored_on: str
    months_owed: int


def stop_list(session: Session, campaign: ConfirmationCampaign, area: str = "") -> list[StopLine]:
    """For finance: whose payments stop from which month and why, and who was restored with how
    many months owed."""
    return [
        StopLine(
            s.id_number,
            s.name,
            s.township_code,
            s.category,
            s.monthly_fen,
            s.stop_from or "",
            s.status,
            s.restored_on or "",
            s.months_owed,
        )
        for s in _subjects(session, campaign, area or campaign.county_code)
        if s.stop_from is not None
    ]


def overpayments(
    session: Session, campaign: ConfirmationCampaign, area: str = ""
) -> list[ConfirmationSubject]:
    return [s for s in _subjects(session, campaign, area or campaign.county_code) if s.overpaid_fen]
