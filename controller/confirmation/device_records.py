"""Sealed confirmations from the devices (``muster.confirmation_record``, schema
``confirmation/1``), as ingest hands them over opened: each confirms its person once through
``steps.apply_confirmation`` (the record id is the event's ``source_id``, so a resend or a
replay changes nothing and is answered as a duplicate), or, when the clerk reported a death at
the visit, records the death with its over-payment (``steps.record_death``, source ``visit``).

A record that cannot apply (the campaign is not the device's county's, the person is not on
the roll, a status that forbids it, a failed face check without a manual check) is answered
with a rejection saying why, and writes nothing; the clerk sees it on the device.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.confirmation.steps import ConfirmationReport, apply_confirmation, record_death
from controller.db.models import ConfirmationCampaign, ConfirmationEvent, Device
from muster.clock import campaign_date
from muster.confirmation import Channel, ConfirmationError, FaceResult
from muster.confirmation_record import FaceOutcome, parse_confirmation_record
from muster.errors import NotFoundError
from muster.v1 import data_pb2

__all__ = ["KINDS", "ingest_confirmation"]

Ack = data_pb2.RecordAck


def _reject(record_id: str, code: str, reason: str) -> data_pb2.RecordAck:
    return Ack(record_id=record_id, status=Ack.STATUS_REJECTED, reason_code=code, reason=reason)


def ingest_confirmation(
    session: Session,
    device: Device,
    sealed: data_pb2.SealedRecord,
    plaintext: bytes,
    now: datetime,
) -> data_pb2.RecordAck:
    """Apply one opened confirmation record; the ack to send back."""
    record_id = sealed.record_id
    source = f"record:{record_id}"
    if session.scalar(select(ConfirmationEvent.id).where(ConfirmationEvent.source_id == source)):
        return Ack(record_id=record_id, status=Ack.STATUS_DUPLICATE)
    try:
        record = parse_confirmation_record(plaintext, today=campaign_date(now))
    except ConfirmationError as exc:
        return _reject(record_id, "schema", str(exc))
    if record.record_id != record_id:
        return _reject(record_id, "schema_mismatch", "确认记录编号与封装不符，请重新封存")
    if record.township_code != device.township_code or record.device_id != device.id:
        return _reject(record_id, "wrong_township", "该确认记录不属于本机所在乡镇，不能上传。")
    campaign = session.get(ConfirmationCampaign, record.campaign_id)
    if campaign is None or campaign.county_code != device.township_code[:6]:
        return _reject(
            record_id, "no_campaign", "中心没有这次年度认证（或不属于本县）；请同步初始数据后重做"
        )
    try:
        if record.death is not None:
            target = record_death(
                session,
                campaign,
                record.id_number,
                death_date=record.death.death_date,
                day=campaign_date(record.at),
                at=record.at,
                by=record.clerk,
                source="visit",
            )
            event = session.scalar(
                select(ConfirmationEvent)
                .where(
                    ConfirmationEvent.campaign_id == campaign.id,
                    ConfirmationEvent.id_number == target.id_number,
                    ConfirmationEvent.kind == "death",
                    ConfirmationEvent.source_id.is_(None),
                )
                .order_by(ConfirmationEvent.id.desc())
                .limit(1)
            )
            assert event is not None  # record_death just added it
            event.source_id = source
            event.device_id = device.id
            if record.death.note:
                event.note = f"{event.note}；{record.death.note}"
        else:
            face = record.face
            assert face is not None  # parse_confirmation_record checked it
            apply_confirmation(
                session,
                campaign,
                ConfirmationReport(
                    id_number=record.id_number,
                    channel=Channel(record.channel.value),
                    at=record.at,
                    by=record.clerk,
                    face_result=FaceResult.MATCH
                    if face.outcome is FaceOutcome.MATCH
                    else FaceResult.MANUAL,
                    device_id=device.id,
                    face_score=face.score,
                    manual_reason=face.manual_reason,
                    phone=record.phone,
                    note=record.living_situation[:500],
                    source_id=source,
                ),
            )
    except (ConfirmationError, NotFoundError) as exc:
        return _reject(record_id, "confirmation_refused", str(exc))
    return Ack(record_id=record_id, status=Ack.STATUS_STORED)


KINDS = {"confirmation": ingest_confirmation}
