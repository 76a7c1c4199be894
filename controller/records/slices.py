"""Slices on the controller (S-04): which people a device gets, cut from the people table.

A device gets exactly its own township's people: the township comes from the device's row
(found by its certificate), never from the request. A full slice is every current person of the
township up to the township's version; a delta is every row whose version moved since the
device's, tombstones included. The last chunk of every transfer also carries the township's confirmation
visit list (the newest campaign of the county: its living subjects with status, age band,
planned home visit and face template), re-sent whole each time so the device always holds the
list as the centre has it; those entries are the people's current rows with the visit attached.
Pages are cut by ID number so an interrupted transfer resumes
after the last entry the device applied, as long as the township has not moved on meanwhile
(then the transfer simply starts again; applying entries twice is harmless).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import (
    ConfirmationCampaign,
    ConfirmationFaceTemplate,
    ConfirmationSubject,
    Device,
    PersonRow,
    TownshipSlice,
)
from muster.crypto import DevicePublicKey, LicenceAuthorityKey
from muster.errors import ConfigError
from muster.regions import parse_township
from muster.slices import CHUNK_PEOPLE, SliceWriter
from muster.v1 import data_pb2

__all__ = [
    "SlicePlan",
    "device_slice_status",
    "plan_slice",
    "set_slice_state",
    "slice_chunks",
    "slice_state",
]


@dataclass(frozen=True, slots=True)
class SlicePlan:
    township_code: str
    base_version: int
    version: int
    resume_after: str
    revoked: bool
    not_after: datetime | None


def slice_state(session: Session, township: str) -> TownshipSlice | None:
    return session.get(TownshipSlice, township)


def device_slice_status(session: Session, device_id: str, now: datetime) -> tuple[int, bool]:
    """(current version, withdrawn) of the slice of the device's township, for Health."""
    township = session.scalar(select(Device.township_code).where(Device.id == device_id))
    state = session.get(TownshipSlice, township) if township else None
    if state is None:
        return 0, False
    withdrawn = state.revoked_at is not None or (
        state.not_after is not None and state.not_after <= now
    )
    return state.version, withdrawn


def plan_slice(
    session: Session,
    township: str,
    *,
    have_version: int,
    resume_version: int = 0,
    resume_after: str = "",
    now: datetime,
) -> SlicePlan:
    state = slice_state(session, township)
    version = state.version if state is not None else 0
    not_after = state.not_after if state is not None else None
    revoked = state is not None and (
        state.revoked_at is not None or (not_after is not None and not_after <= now)
    )
    base = have_version if 0 < have_version <= version else 0
    if resume_version != version or not resume_after:
        resume_after = ""
    return SlicePlan(township, base, version, resume_after, revoked, not_after)


def _page(
    session: Session, plan: SlicePlan, after: str, limit: int
) -> list[tuple[str, bool, dict[str, object]]]:
    query = (
        select(PersonRow.id_number, PersonRow.removed, PersonRow.details)
        .where(PersonRow.township_code == plan.township_code)
        .where(PersonRow.version <= plan.version)
        .where(PersonRow.id_number > after)
        .order_by(PersonRow.id_number)
        .limit(limit)
    )
    if plan.base_version == 0:
        query = query.where(PersonRow.removed.is_(False))
    else:
        query = query.where(PersonRow.version > plan.base_version)
    return [(n, bool(r), d) for n, r, d in session.execute(query)]


def _visits(session: Session, plan: SlicePlan) -> list[data_pb2.SlicePerson]:
    """The township's visit list as slice entries (the person's row with its visit attached)."""
    campaign = session.scalar(
        select(ConfirmationCampaign)
        .where(ConfirmationCampaign.county_code == plan.township_code[:6])
        .order_by(ConfirmationCampaign.year.desc())
        .limit(1)
    )
    if campaign is None:
        return []
    rows = session.execute(
        select(ConfirmationSubject, PersonRow.details, ConfirmationFaceTemplate)
        .join(
            PersonRow,
            (PersonRow.township_code == ConfirmationSubject.township_code)
            & (PersonRow.id_number == ConfirmationSubject.id_number),
        )
        .outerjoin(
            ConfirmationFaceTemplate,
            (ConfirmationFaceTemplate.campaign_id == ConfirmationSubject.campaign_id)
            & (ConfirmationFaceTemplate.id_number == ConfirmationSubject.id_number),
        )
        .where(
            ConfirmationSubject.campaign_id == campaign.id,
            ConfirmationSubject.township_code == plan.township_code,
            ConfirmationSubject.status != "deceased",
            PersonRow.removed.is_(False),
            PersonRow.version <= plan.version,
        )
        .order_by(ConfirmationSubject.id_number)
    ).all()
    return [
        data_pb2.SlicePerson(
            id_number=subject.id_number,
            details=json.dumps(details, ensure_ascii=False).encode(),
            confirmation=data_pb2.ConfirmationVisit(
                campaign_id=campaign.id,
                year=campaign.year,
                status=subject.status,
                age_band=subject.age_band,
                visit_planned=subject.visit_planned,
                name=subject.name,
                category=subject.category,
                birth_date=subject.birth_date,
                face_template=(face.template or b"") if face is not None else b"",
                face_note=face.note if face is not None else "not_prepared",
            ),
        )
        for subject, details, face in rows
    ]


def slice_chunks(
    sessions: sessionmaker[Session],
    plan: SlicePlan,
    *,
    device_id: str,
    device_key: DevicePublicKey,
    signing_key: LicenceAuthorityKey,
    now: datetime,
    chunk_people: int = CHUNK_PEOPLE,
) -> Iterator[data_pb2.SliceChunk]:
    """The messages of one transfer: the signed manifest, then the encrypted chunks."""
    writer = SliceWriter(
        township_code=plan.township_code,
        device_id=device_id,
        device_key=device_key,
        base_version=plan.base_version,
        version=plan.version,
        signing_key=signing_key,
        now=now,
        not_after=plan.not_after,
        revoked=plan.revoked,
        resume_after=plan.resume_after,
    )
    yield writer.manifest_chunk()
    if plan.revoked:
        return
    after = plan.resume_after
    with sessions() as session:
        page = _page(session, plan, after, chunk_people)
        while True:
            following = (
                _page(session, plan, page[-1][0], chunk_people) if len(page) == chunk_people else []
            )
            if not following:
                visits = _visits(session, plan)
            people = [
                data_pb2.SlicePerson(
                    id_number=number,
                    removed=removed,
                    details=b"" if removed else json.dumps(details, ensure_ascii=False).encode(),
                )
                for number, removed, details in page
            ]
            if not following:
                people += visits
            yield writer.data_chunk(people, last=not following)
            if not following:
                return
            page = following


def set_slice_state(
    sessions: sessionmaker[Session],
    township: str,
    *,
    revoke: bool = False,
    restore: bool = False,
    expires: str | None = None,
    reason: str = "",
    now: datetime,
) -> str:
    """Withdraw, restore or set the expiry of a township's slice; returns a one-line state."""
    code = parse_township(township).code
    if revoke and restore:
        raise ConfigError("--revoke 和 --restore 不能同时使用")
    with sessions.begin() as session:
        state = session.get(TownshipSlice, code, with_for_update=True)
        if state is None:
            if not (revoke or restore or expires):
                return f"乡镇 {code} 尚无初始数据（未导入）"
            state = TownshipSlice(township_code=code, version=0, people=0, updated_at=now)
            session.add(state)
        if revoke:
            state.revoked_at = now
            state.revoked_reason = reason or "中心撤回"
        if restore:
            state.revoked_at = None
            state.revoked_reason = ""
        if expires:
            try:
                day = dt.date.fromisoformat(expires)
            except ValueError:
                raise ConfigError(f"--expires {expires!r} 不是日期，请写成 YYYY-MM-DD") from None
            state.not_after = datetime(day.year, day.month, day.day, tzinfo=UTC)
        withdrawn = "已撤回" if state.revoked_at else "有效"
        until = f"，{state.not_after:%Y-%m-%d} 到期" if state.not_after else ""
        return f"乡镇 {code}：第 {state.version} 版，{state.people} 人，{withdrawn}{until}"
