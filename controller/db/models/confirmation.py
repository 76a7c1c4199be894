"""The annual confirmation: campaigns, their subjects and events, self-service attempts and
throttles, spot checks, hardship cases, the weekly files (``controller.confirmation``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models.base import Base

__all__ = [
    "ConfirmationCampaign",
    "ConfirmationEvent",
    "ConfirmationFaceTemplate",
    "ConfirmationSubject",
    "ConfirmationWeeklyFile",
    "HardshipCase",
    "HardshipFollowUp",
    "SelfServiceAttempt",
    "SelfServiceThrottle",
    "SpotCheck",
]


class ConfirmationCampaign(Base):
    """One year's annual confirmation in one county (S-20..S-23): its phases' dates
    (``muster.confirmation.Phases.to_json``) and who opened it."""

    __tablename__ = "confirmation_campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    year: Mapped[int] = mapped_column(Integer)
    county_code: Mapped[str] = mapped_column(String(6), index=True)
    phases: Mapped[dict[str, Any]] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column()

    __table_args__ = (Index("ux_confirmation_campaign", "year", "county_code", unique=True),)


class ConfirmationSubject(Base):
    """A pension receiver in a campaign (from the payment roll) and where the confirmation stands:
    status, the last confirmation (channel, when, who, device), the notice and stop, the
    restoration with its months owed, a death with its over-payment and what was recovered."""

    __tablename__ = "confirmation_subjects"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("confirmation_campaigns.id"), primary_key=True
    )
    id_number: Mapped[str] = mapped_column(String(18), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    township_code: Mapped[str] = mapped_column(String(12), index=True)
    birth_date: Mapped[str] = mapped_column(String(10))
    age_band: Mapped[str] = mapped_column(String(8))
    category: Mapped[str] = mapped_column(String(32))
    monthly_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="to_confirm", index=True)
    status_at: Mapped[datetime] = mapped_column()
    visit_planned: Mapped[bool] = mapped_column(Boolean, default=False)
    channel: Mapped[str] = mapped_column(String(16), default="")
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    confirmed_by: Mapped[str] = mapped_column(String(64), default="")
    confirmed_device: Mapped[str] = mapped_column(String(40), default="")
    face_result: Mapped[str] = mapped_column(String(12), default="")
    phone: Mapped[str] = mapped_column(String(20), default="")
    noticed_on: Mapped[str | None] = mapped_column(String(10), default=None)
    stop_from: Mapped[str | None] = mapped_column(String(10), default=None)
    restored_on: Mapped[str | None] = mapped_column(String(10), default=None)
    months_owed: Mapped[int] = mapped_column(Integer, default=0)
    death_date: Mapped[str | None] = mapped_column(String(10), default=None)
    death_source: Mapped[str] = mapped_column(String(16), default="")
    overpaid_months: Mapped[int] = mapped_column(Integer, default=0)
    overpaid_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    recovered_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class ConfirmationEvent(Base):
    """Every step of a subject, as it happened: confirmations (channel, who, device, face
    result), notices, contact attempts, stops, restorations, deaths, recoveries."""

    __tablename__ = "confirmation_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    campaign_id: Mapped[int] = mapped_column(ForeignKey("confirmation_campaigns.id"), index=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(20))
    status_from: Mapped[str] = mapped_column(String(16), default="")
    status_to: Mapped[str] = mapped_column(String(16), default="")
    channel: Mapped[str] = mapped_column(String(16), default="")
    actor: Mapped[str] = mapped_column(String(64), default="")
    device_id: Mapped[str] = mapped_column(String(40), default="")
    face_result: Mapped[str] = mapped_column(String(12), default="")
    face_score: Mapped[float | None] = mapped_column(Float, default=None)
    note: Mapped[str] = mapped_column(Text, default="")
    source_id: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)


class SelfServiceAttempt(Base):
    """One try at the online self-service page, accepted or refused: from where, for which
    number as typed, the outcome, and for an accepted one the selfie awaiting its face check."""

    __tablename__ = "self_service_attempts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(index=True)
    address: Mapped[str] = mapped_column(String(64))
    id_number: Mapped[str] = mapped_column(String(32), default="", index=True)
    phone: Mapped[str] = mapped_column(String(20), default="")
    outcome: Mapped[str] = mapped_column(String(24), index=True)
    campaign_id: Mapped[int | None] = mapped_column(Integer, default=None)
    selfie: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    selfie_sha256: Mapped[str] = mapped_column(String(64), default="")
    selfie_type: Mapped[str] = mapped_column(String(16), default="")
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_by: Mapped[str] = mapped_column(String(64), default="")
    resolution: Mapped[str] = mapped_column(String(300), default="")
    # The face check (controller/confirmation/face_check.py): dlib's distance (lower is more
    # alike), the threshold it was judged by, the reason codes, and the reference it used
    # (``record:<id>`` of the photo on file).
    face_score: Mapped[float | None] = mapped_column(Float, default=None)
    face_threshold: Mapped[float | None] = mapped_column(Float, default=None)
    face_reasons: Mapped[str] = mapped_column(String(200), default="", server_default="")
    face_reference: Mapped[str] = mapped_column(String(60), default="", server_default="")


class SelfServiceThrottle(Base):
    """Self-service tries of one address (``addr:IP``) or one ID number (``id:NUMBER``) in the
    current window: in the database so every replica counts the same and a restart forgets
    nothing."""

    __tablename__ = "self_service_throttles"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    window_start: Mapped[datetime] = mapped_column()
    count: Mapped[int] = mapped_column(Integer, default=0)


class SpotCheck(Base):
    """A spot check's random sample: the seed, the population it was drawn from and the people
    drawn, so an auditor can replay the draw."""

    __tablename__ = "confirmation_spot_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("confirmation_campaigns.id"), index=True)
    seed: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(Integer)
    population: Mapped[list[str]] = mapped_column(JSON)
    sample: Mapped[list[str]] = mapped_column(JSON)
    drawn_by: Mapped[str] = mapped_column(String(64), default="")
    drawn_at: Mapped[datetime] = mapped_column()


class HardshipCase(Base):
    """A person still in difficulty after payment (S-23): the measures, who is responsible."""

    __tablename__ = "hardship_cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("confirmation_campaigns.id"), index=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    township_code: Mapped[str] = mapped_column(String(12), index=True)
    situation: Mapped[str] = mapped_column(Text)
    measures: Mapped[str] = mapped_column(Text)
    responsible: Mapped[str] = mapped_column(String(64))
    opened_by: Mapped[str] = mapped_column(String(64), default="")
    opened_at: Mapped[datetime] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column(default=None)


class HardshipFollowUp(Base):
    """A follow-up of a hardship case: when, by whom, what was found or done."""

    __tablename__ = "hardship_follow_ups"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    case_id: Mapped[int] = mapped_column(ForeignKey("hardship_cases.id"), index=True)
    at: Mapped[datetime] = mapped_column()
    by: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)


class ConfirmationWeeklyFile(Base):
    """A Friday's weekly-report workbook written for a campaign: once per campaign and Friday,
    whichever replica's job got there first."""

    __tablename__ = "confirmation_weekly_files"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("confirmation_campaigns.id"), primary_key=True
    )
    friday: Mapped[str] = mapped_column(String(10), primary_key=True)
    path: Mapped[str] = mapped_column(String(500))
    generated_at: Mapped[datetime] = mapped_column()


class ConfirmationFaceTemplate(Base):
    """A subject's face template for the devices' offline check (``muster.face.Template``
    bytes, made at the centre from the photo of the records campaign; the picture itself never
    leaves the centre), or why there is none (``note``: no_photo, no_face, face_too_small,
    unreadable), and the record it came from."""

    __tablename__ = "confirmation_face_templates"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("confirmation_campaigns.id"), primary_key=True
    )
    id_number: Mapped[str] = mapped_column(String(18), primary_key=True)
    template: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    note: Mapped[str] = mapped_column(String(20), default="")
    source: Mapped[str] = mapped_column(String(60), default="")
    computed_at: Mapped[datetime] = mapped_column()
