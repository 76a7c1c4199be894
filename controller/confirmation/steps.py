"""Every step of a subject at the centre, each a transition of ``muster.confirmation``'s table
recorded as a ``ConfirmationEvent`` in the caller's transaction:

- :func:`apply_confirmation`: a confirmation by home visit, at the station or online (who,
  when, which device, the face result). Devices' sealed confirmations, a clerk's manual check
  and a resolved self-service attempt all come through here; ``source_id`` (a record id) makes
  a resend change nothing.
- :func:`publish_notice`, :func:`record_contact`: the unconfirmed go on the public notice;
  contact attempts are kept.
- :func:`propose_stops`, :func:`approve_stop`: after 60 days of notice without contact, the
  county approves and payments stop from the next month.
- :func:`restore`: a stopped person confirmed again is restored, with the months owed.
- :func:`record_death`, :func:`apply_funeral_deaths`, :func:`record_recovery`: a death (found
  in funeral records or reported at a visit) with its over-payment, and what was recovered.

Over 400 lines because each step of a campaign (confirm, notice, stop, restore, death,
over-payment) writes the subject, its event and the audit in one transaction, read together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.confirmation.campaigns import phases_of
from controller.db.models import (
    ConfirmationCampaign,
    ConfirmationEvent,
    ConfirmationSubject,
    DeceasedPerson,
)
from muster.clock import campaign_date
from muster.confirmation import (
    Channel,
    ConfirmationError,
    Event,
    FaceResult,
    Status,
    add_months,
    month_of,
    months_owed,
    overpayment,
    stop_eligible_on,
    stop_from_month,
    transition,
)
from muster.errors import NotFoundError
from muster.idnumbers import compact

__all__ = [
    "ConfirmationReport",
    "apply_confirmation",
    "apply_funeral_deaths",
    "approve_stop",
    "propose_stops",
    "publish_notice",
    "record_contact",
    "record_death",
    "record_recovery",
    "restore",
    "subject",
]


@dataclass(frozen=True, slots=True)
class ConfirmationReport:
    """A confirmation as the channel reports it. ``by`` is the clerk (home visit, station, a
    manual check) or ``self`` for the person online; ``device_id`` the device it was done on;
    ``face_result`` what the face check said, ``manual_reason`` why a clerk confirmed by hand."""

    id_number: str
    channel: Channel
    at: datetime
    by: str
    face_result: FaceResult
    device_id: str = ""
    face_score: float | None = None
    manual_reason: str = ""
    phone: str = ""
    note: str = ""
    source_id: str | None = None


def subject(
    session: Session, campaign: ConfirmationCampaign, id_number: str
) -> ConfirmationSubject:
    found = session.get(ConfirmationSubject, (campaign.id, compact(id_number)[:18]))
    if found is None:
        raise NotFoundError(
            f"{id_number[:18]} 不在 {campaign.year} 年度 {campaign.county_code} 的确认名册中"
        )
    return found


def _event(
    session: Session,
    target: ConfirmationSubject,
    kind: str,
    at: datetime,
    actor: str,
    *,
    before: str = "",
    note: str = "",
    **fields: object,
) -> ConfirmationEvent:
    event = ConfirmationEvent(
        campaign_id=target.campaign_id,
        id_number=target.id_number,
        at=at,
        kind=kind,
        status_from=before,
        status_to=target.status,
        actor=actor[:64],
        note=note,
        channel=str(fields.pop("channel", "")),
        device_id=str(fields.pop("device_id", ""))[:40],
        face_result=str(fields.pop("face_result", "")),
        face_score=fields.pop("face_score", None),
        source_id=fields.pop("source_id", None),
    )
    session.add(event)
    return event


def _move(target: ConfirmationSubject, event: Event, at: datetime) -> str:
    before = target.status
    target.status = transition(Status(before), event).value
    target.status_at = at
    return before


def apply_confirmation(
    session: Session, campaign: ConfirmationCampaign, report: ConfirmationReport
) -> ConfirmationSubject:
    """Confirm a subject. A face that did not match, or a check still pending, confirms nobody
    until a clerk checks by hand and says why; a stopped person is restored instead."""
    if report.source_id is not None:
        seen = session.scalar(
            select(ConfirmationEvent).where(ConfirmationEvent.source_id == report.source_id)
        )
        if seen is not None:
            return subject(session, campaign, seen.id_number)
    if not report.by.strip():
        raise ConfirmationError("确认须写明由谁确认（工作人员用户名，本人自助为 self）")
    if report.channel in (Channel.HOME_VISIT, Channel.STATION) and not report.device_id:
        raise ConfirmationError("上门确认和服务站确认须写明所用设备编号")
    if report.face_result is FaceResult.NO_MATCH:
        raise ConfirmationError(
            "人脸比对未通过，不能据此确认；请工作人员人工核验并写明理由后再确认"
        )
    if report.face_result is FaceResult.PENDING:
        raise ConfirmationError("人脸比对尚未完成，不能确认；请待比对或人工核验后再确认")
    if report.face_result is FaceResult.MANUAL and not report.manual_reason.strip():
        raise ConfirmationError("人工核验须写明理由（如：人脸比对未通过，已核对身份证原件）")
    target = subject(session, campaign, report.id_number)
    if target.status == Status.STOPPED.value:
        return restore(
            session,
            campaign,
            target.id_number,
            day=campaign_date(report.at),
            at=report.at,
            by=report.by,
            reason=report.manual_reason or "停发后重新确认",
            channel=report.channel,
            device_id=report.device_id,
            face_result=report.face_result,
        )
    before = _move(target, Event.CONFIRM, report.at)
    target.channel = report.channel.value
    target.confirmed_at = report.at
    target.confirmed_by = report.by[:64]
    target.confirmed_device = report.device_id[:40]
    target.face_result = report.face_result.value
    if report.phone:
        target.phone = report.phone[:20]
    _event(
        session,
        target,
        "confirm",
        report.at,
        report.by,
        before=before,
        note="；".join(x for x in (report.manual_reason, report.note) if x),
        channel=report.channel.value,
        device_id=report.device_id,
        face_result=report.face_result.value,
        face_score=report.face_score,
        source_id=report.source_id,
    )
    return target


def publish_notice(
    session: Session, campaign: ConfirmationCampaign, *, day: date, at: datetime, by: str
) -> list[ConfirmationSubject]:
    """Put everyone still unconfirmed on the public notice from ``day``: not before the
    confirmation phase has ended."""
    phases = phases_of(campaign)
    if day <= phases.confirmation.end:
        raise ConfirmationError(
            f"具体实施阶段到 {phases.confirmation.end} 才结束，公告自 {phases.notice.start} 起；"
            "请到时再公告未确认人员"
        )
    noticed = list(
        session.scalars(
            select(ConfirmationSubject)
            .where(
                ConfirmationSubject.campaign_id == campaign.id,
                ConfirmationSubject.status == Status.TO_CONFIRM.value,
            )
            .order_by(ConfirmationSubject.township_code, ConfirmationSubject.id_number)
        )
    )
    for target in noticed:
        before = _move(target, Event.NOTICE, at)
        target.noticed_on = day.isoformat()
        _event(session, target, "notice", at, by, before=before)
    return noticed


def record_contact(
    session: Session,
    campaign: ConfirmationCampaign,
    id_number: str,
    *,
    at: datetime,
    by: str,
    note: str,
) -> ConfirmationEvent:
    """A contact attempt with a noticed person or their family (the status does not change)."""
    if not note.strip():
        raise ConfirmationError("请写明联系情况（方式、对象、结果）")
    target = subject(session, campaign, id_number)
    return _event(session, target, "contact", at, by, before=target.status, note=note[:2000])


def propose_stops(
    session: Session, campaign: ConfirmationCampaign, *, day: date, at: datetime, by: str
) -> list[ConfirmationSubject]:
    """Everyone noticed 60 days ago or more and still not reached, put up for the county's
    approval of a stop."""
    proposed = []
    for target in session.scalars(
        select(ConfirmationSubject)
        .where(
            ConfirmationSubject.campaign_id == campaign.id,
            ConfirmationSubject.status == Status.UNREACHABLE.value,
        )
        .order_by(ConfirmationSubject.township_code, ConfirmationSubject.id_number)
    ):
        assert target.noticed_on is not None
        if day >= stop_eligible_on(date.fromisoformat(target.noticed_on)):
            before = _move(target, Event.PROPOSE_STOP, at)
            _event(session, target, "propose_stop", at, by, before=before)
            proposed.append(target)
    return proposed


def approve_stop(
    session: Session,
    campaign: ConfirmationCampaign,
    id_number: str,
    *,
    day: date,
    at: datetime,
    by: str,
) -> ConfirmationSubject:
    """The county approves a proposed stop: payments stop from the month after ``day``."""
    target = subject(session, campaign, id_number)
    if target.status == Status.UNREACHABLE.value:
        assert target.noticed_on is not None
        eligible = stop_eligible_on(date.fromisoformat(target.noticed_on))
        raise ConfirmationError(
            f"{target.id_number} 自 {target.noticed_on} 公告，满 60 日（{eligible}）后才能停发"
        )
    before = _move(target, Event.APPROVE_STOP, at)
    target.stop_from = stop_from_month(day).isoformat()
    _event(session, target, "stop", at, by, before=before, note=f"自 {target.stop_from[:7]} 起停发")
    return target


def restore(
    session: Session,
    campaign: ConfirmationCampaign,
    id_number: str,
    *,
    day: date,
    at: datetime,
    by: str,
    reason: str,
    channel: Channel | None = None,
    device_id: str = "",
    face_result: FaceResult | None = None,
) -> ConfirmationSubject:
    """Restore a stopped person who has been confirmed again: every stopped month up to and
    including this one is owed, regular payment resumes from the next."""
    if not reason.strip():
        raise ConfirmationError("恢复发放须写明依据（如：本人已到服务站确认）")
    target = subject(session, campaign, id_number)
    before = _move(target, Event.RESTORE, at)
    assert target.stop_from is not None
    target.restored_on = day.isoformat()
    target.months_owed = months_owed(date.fromisoformat(target.stop_from), day)
    target.confirmed_at = at
    target.confirmed_by = by[:64]
    if channel is not None:
        target.channel = channel.value
        target.confirmed_device = device_id[:40]
    if face_result is not None:
        target.face_result = face_result.value
    _event(
        session,
        target,
        "restore",
        at,
        by,
        before=before,
        note=f"{reason}；补发 {target.months_owed} 个月",
        channel=channel.value if channel else "",
        device_id=device_id,
        face_result=face_result.value if face_result else "",
    )
    return target


def record_death(
    session: Session,
    campaign: ConfirmationCampaign,
    id_number: str,
    *,
    death_date: date,
    day: date,
    at: datetime,
    by: str,
    source: str,
) -> ConfirmationSubject:
    """Record a death and its over-payment: payments went out up to this month (or up to the
    stop, if one came first) and stop from the next; every month paid after the month of death
    is to be recovered."""
    target = subject(session, campaign, id_number)
    if death_date > day:
        raise ConfirmationError(f"死亡日期 {death_date} 晚于今天 {day}；请核对")
    if death_date.isoformat() < target.birth_date:
        raise ConfirmationError(f"死亡日期 {death_date} 早于出生日期 {target.birth_date}；请核对")
    before = _move(target, Event.DEATH, at)
    paid_through = month_of(day)
    if target.stop_from is not None and before == Status.STOPPED.value:
        paid_through = min(paid_through, add_months(date.fromisoformat(target.stop_from), -1))
    else:
        target.stop_from = stop_from_month(day).isoformat()
    months, fen = overpayment(target.monthly_fen, death_date, paid_through)
    target.death_date = death_date.isoformat()
    target.death_source = source[:16]
    target.overpaid_months = months
    target.overpaid_fen = fen
    _event(
        session,
        target,
        "death",
        at,
        by,
        before=before,
        note=f"死亡日期 {death_date}（{source}）；多发 {months} 个月共 {fen / 100:.2f} 元",
    )
    return target


def apply_funeral_deaths(
    session: Session, campaign: ConfirmationCampaign, *, day: date, at: datetime, by: str
) -> list[ConfirmationSubject]:
    """Subjects the cross-comparison found in funeral records (``deceased_people``), recorded
    dead with the date found there; their payment stop is then marked as done."""
    found = []
    rows = session.execute(
        select(ConfirmationSubject, DeceasedPerson)
        .join(DeceasedPerson, DeceasedPerson.id_number == ConfirmationSubject.id_number)
        .where(
            ConfirmationSubject.campaign_id == campaign.id,
            ConfirmationSubject.status != Status.DECEASED.value,
        )
    ).all()
    for target, deceased in rows:
        try:
            died = date.fromisoformat(deceased.death_date)
        except ValueError:
            continue  # the comparison keeps what the extract said; a bad date is its finding
        record_death(
            session,
            campaign,
            target.id_number,
            death_date=died,
            day=day,
            at=at,
            by=by,
            source="funeral",
        )
        deceased.payment_stop = "stopped"
        found.append(target)
    return found


def record_recovery(
    session: Session,
    campaign: ConfirmationCampaign,
    id_number: str,
    *,
    amount_fen: int,
    at: datetime,
    by: str,
    note: str = "",
) -> ConfirmationSubject:
    """Money recovered of an over-payment; never more than is outstanding."""
    target = subject(session, campaign, id_number)
    outstanding = target.overpaid_fen - target.recovered_fen
    if amount_fen <= 0:
        raise ConfirmationError("追回金额应大于 0")
    if amount_fen > outstanding:
        raise ConfirmationError(
            f"追回 {amount_fen / 100:.2f} 元超过尚未追回的 {outstanding / 100:.2f} 元；请核对"
        )
    target.recovered_fen += amount_fen
    _event(
        session,
        target,
        "recovery",
        at,
        by,
        before=target.status,
        note=f"追回 {amount_fen / 100:.2f} 元 {note}".strip(),
    )
    return target
