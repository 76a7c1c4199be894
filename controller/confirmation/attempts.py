"""The online self-service confirmation at the centre, apart from its page: throttling per
address and per ID number (in the database, on the clock), checking what was typed and sent,
logging every attempt, and resolving an accepted one.

What a person learns is only about what they typed: a malformed number, a phone that is not a
phone, a file that is not a photo, or "too many tries". Whether the number is on a roll, whose
it is and where it stands are never said: every attempt that passes the checks gets the same
answer, so the page cannot be used to find out who receives a pension.

The selfie's face is looked for before the roll is (``live_face``, given by the page): a selfie
with no usable face is answered "retake the photo" whoever the number is, so that answer says
nothing about the roll either. An accepted attempt keeps the selfie as "face check pending"
(``pending_face``); ``face_check.check_attempt`` compares it with the reference photo on file
and confirms the person (``face_match``) or queues it for a clerk (``manual_check``), who
resolves it with a reason (:func:`resolve_attempt`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import cv2
import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controller.confirmation.campaigns import phases_of
from controller.confirmation.steps import ConfirmationReport, apply_confirmation
from controller.db.models import (
    ConfirmationCampaign,
    ConfirmationSubject,
    SelfServiceAttempt,
    SelfServiceThrottle,
)
from muster.clock import Clock, campaign_date
from muster.confirmation import Channel, ConfirmationError, FaceResult, Status
from muster.face import FaceImageError, NoFace, Template
from muster.face.images import MAX_PIXELS, MAX_SIDE, image_size
from muster.idnumbers import check_id_number, compact

__all__ = [
    "ADDRESS_LIMIT",
    "ID_LIMIT",
    "SELFIE_MAX_BYTES",
    "Answer",
    "pending_attempts",
    "resolve_attempt",
    "submit_attempt",
]

SELFIE_MAX_BYTES = 8 * 2**20  # a phone camera's full-size JPEG is 2 to 6 MB
ADDRESS_LIMIT = (20, timedelta(hours=1))  # a family confirming for several elders shares one
ID_LIMIT = (5, timedelta(days=1))
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_MIN_SIDE = 240
_MAGIC = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png"}
_OPEN = (Status.TO_CONFIRM, Status.UNREACHABLE, Status.STOP_PENDING, Status.STOPPED)


@dataclass(frozen=True, slots=True)
class Answer:
    """What the page tells the person: ``ok`` and a message; ``field`` names what to fix."""

    ok: bool
    outcome: str
    message_zh: str
    message_en: str
    field: str = ""
    retry_after_s: int = 0
    attempt_id: int = 0  # for the face check that follows; never shown


LiveFace = Callable[[bytes], Template | NoFace | None]  # None: no slot free, checked later


RECEIVED = (
    "已收到您的年度确认信息。人脸核验完成后确认生效；如信息无法核实，工作人员会按您留下的电话联系您。",
    "Your confirmation has been received. It takes effect once the face check is done; if your "
    "details cannot be verified, staff will call the phone number you gave.",
)


def _throttle(session: Session, key: str, limit: tuple[int, timedelta], now: datetime) -> int:
    """Count one try under ``key``; seconds to wait when it is over the limit, else 0."""
    count, window = limit
    row = session.get(SelfServiceThrottle, key, with_for_update=True)
    if row is None:
        row = SelfServiceThrottle(key=key, window_start=now, count=0)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # another request made it first
            row = session.get(SelfServiceThrottle, key, with_for_update=True)
            assert row is not None
    if now - row.window_start >= window:
        row.window_start, row.count = now, 0
    row.count += 1
    if row.count > count:
        return max(1, int((row.window_start + window - now).total_seconds()))
    return 0


def _image_kind(data: bytes) -> str | None:
    """ "jpeg" or "png" when ``data`` decodes as a photo big enough to show a face, else None."""
    kind = next((k for magic, k in _MAGIC.items() if data.startswith(magic)), None)
    if kind is None:
        return None
    # The header's claimed size is checked before a pixel is decoded (the face module's rule),
    # so a decompression bomb costs nothing.
    try:
        width, height = image_size(data)
    except FaceImageError:
        return None
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        return None
    # Decoded at a quarter of its size: enough to judge it is a real picture, and a file that
    # claims giant dimensions costs a quarter of the memory (OpenCV refuses past 2^30 pixels).
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_4)
    if image is None or min(image.shape[:2]) * 4 < _MIN_SIDE:
        return None
    return kind


def _open_subject(
    session: Session, number: str, today: date
) -> tuple[ConfirmationCampaign, ConfirmationSubject] | None:
    for campaign in session.scalars(select(ConfirmationCampaign)):
        phases = phases_of(campaign)
        if not phases.confirmation.start <= today <= phases.notice.end:
            continue
        found = session.get(ConfirmationSubject, (campaign.id, number))
        if found is not None:
            return campaign, found
    return None


def submit_attempt(
    session: Session,
    *,
    address: str,
    id_number: str,
    phone: str,
    selfie: bytes,
    selfie_too_large: bool = False,
    clock: Clock,
    live_face: LiveFace | None = None,
) -> Answer:
    """Judge one attempt and log it, whatever the outcome (the caller commits). ``live_face``
    describes the selfie once it has passed every check but the roll's."""
    now = clock.now()
    typed = id_number.strip()[:32]
    attempt = SelfServiceAttempt(at=now, address=address[:64], id_number=typed, phone=phone[:20])
    answer = _judge(
        session, attempt, typed, phone.strip(), selfie, selfie_too_large, clock, live_face
    )
    attempt.outcome = answer.outcome
    session.add(attempt)
    session.flush()
    return replace(answer, attempt_id=attempt.id)


def _judge(
    session: Session,
    attempt: SelfServiceAttempt,
    typed: str,
    phone: str,
    selfie: bytes,
    too_large: bool,
    clock: Clock,
    live_face: LiveFace | None,
) -> Answer:
    now = clock.now()
    wait = _throttle(session, f"addr:{attempt.address}", ADDRESS_LIMIT, now)
    if wait:
        return _too_many("rate_address", wait)
    if too_large:  # the body was not read: nothing else of it is known
        return Answer(
            False,
            "selfie_too_large",
            f"照片超过 {SELFIE_MAX_BYTES // 2**20} MB；请直接用手机前置摄像头拍一张",
            f"The photo is over {SELFIE_MAX_BYTES // 2**20} MB; take one with the front camera",
            "selfie",
        )
    check = check_id_number(typed, today=clock.today())
    if not typed or not check.valid:
        problems = check.problems
        return Answer(
            False,
            "bad_id",
            problems[0].zh if problems else "请填写 18 位公民身份号码",
            problems[0].en if problems else "Enter the 18-character ID number",
            "id_number",
        )
    number = compact(typed)
    attempt.id_number = number
    wait = _throttle(session, f"id:{number}", ID_LIMIT, now)
    if wait:
        return _too_many("rate_id", wait)
    if not _MOBILE.fullmatch(phone):
        return Answer(
            False,
            "bad_phone",
            "请填写 11 位手机号码，以便工作人员联系您",
            "Enter an 11-digit mobile number so staff can reach you",
            "phone",
        )
    kind = _image_kind(selfie) if selfie else None
    if kind is None:
        return Answer(
            False,
            "bad_selfie",
            "请用手机摄像头现场拍一张本人正面照片（JPEG 或 PNG）",
            "Take a live photo of your face with the phone camera (JPEG or PNG)",
            "selfie",
        )
    if live_face is not None and isinstance(live_face(selfie), NoFace):
        return Answer(
            False,
            "no_face",
            "照片中没有找到清晰的本人正脸，请在光线充足处正对镜头，重新拍一张",
            "No clear face was found in the photo: face the camera in good light and take it again",
            "selfie",
        )
    found = _open_subject(session, number, campaign_date(now))
    if found is None or Status(found[1].status) not in _OPEN:
        # Not on an open roll, or nothing left to confirm: the same answer as everyone's.
        return Answer(True, "not_open", *RECEIVED)
    campaign, _subject = found
    attempt.campaign_id = campaign.id
    attempt.selfie = selfie
    attempt.selfie_sha256 = hashlib.sha256(selfie).hexdigest()
    attempt.selfie_type = kind
    return Answer(True, "pending_face", *RECEIVED)


def _too_many(outcome: str, wait: int) -> Answer:
    minutes = max(1, -(-wait // 60))
    return Answer(
        False,
        outcome,
        f"尝试次数过多，请 {minutes} 分钟后再试",
        f"Too many tries; try again in {minutes} min",
        retry_after_s=wait,
    )


def pending_attempts(session: Session, area: str = "") -> list[tuple[SelfServiceAttempt, str]]:
    """Accepted attempts waiting for their face check or for a clerk's manual check, with the
    subject's township."""
    rows = session.execute(
        select(SelfServiceAttempt, ConfirmationSubject.township_code)
        .join(
            ConfirmationSubject,
            (ConfirmationSubject.campaign_id == SelfServiceAttempt.campaign_id)
            & (ConfirmationSubject.id_number == SelfServiceAttempt.id_number),
        )
        .where(
            SelfServiceAttempt.outcome.in_(("pending_face", "manual_check")),
            SelfServiceAttempt.resolved_at.is_(None),
            ConfirmationSubject.township_code.startswith(area),
        )
        .order_by(SelfServiceAttempt.at)
    ).all()
    return [(a, t) for a, t in rows]


def resolve_attempt(
    session: Session, attempt_id: int, *, accept: bool, reason: str, by: str, clock: Clock
) -> SelfServiceAttempt:
    """A clerk's manual check of a pending attempt: accepted, it confirms the person by
    self-service with the reason; refused, the person stays to be confirmed."""
    attempt = session.get(SelfServiceAttempt, attempt_id, with_for_update=True)
    waiting = ("pending_face", "manual_check")
    if attempt is None or attempt.outcome not in waiting or attempt.campaign_id is None:
        raise ConfirmationError(f"没有待核验的自助确认 {attempt_id}")
    if attempt.resolved_at is not None:
        raise ConfirmationError(f"自助确认 {attempt_id} 已于 {attempt.resolved_at} 处理")
    if not reason.strip():
        raise ConfirmationError("人工核验须写明理由（如：照片与档案照片一致）")
    now = clock.now()
    if accept:
        campaign = session.get(ConfirmationCampaign, attempt.campaign_id)
        assert campaign is not None
        apply_confirmation(
            session,
            campaign,
            ConfirmationReport(
                id_number=attempt.id_number,
                channel=Channel.SELF_SERVICE,
                at=now,
                by=by,
                face_result=FaceResult.MANUAL,
                face_score=attempt.face_score,
                manual_reason=reason,
                phone=attempt.phone,
                source_id=f"self-service:{attempt.id}",
            ),
        )
    attempt.resolved_at = now
    attempt.resolved_by = by[:64]
    attempt.resolution = ("accepted: " if accept else "refused: ") + reason[:280]
    return attempt
