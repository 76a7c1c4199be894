"""The centre's face check of a self-service selfie (S-21), on ``muster.face`` (dlib).

The reference is the photo collected for the person in the records campaign (the newest stored
record with their ID number that carries ``photo.jpg``, decrypted with the upload keys by
``controller.records.attachment_open.record_attachment``) or a stored template (``Template`` bytes);
the live image is the selfie. A match confirms the person (channel self-service, face result
match with its score); anything else (no match, no usable face in the reference, no reference
on file) puts the attempt in the clerk's manual-check queue with the score and the reasons.

Describing a face costs a CPU core for a few hundred milliseconds, so it runs in a thread and
only while one of a few :class:`FaceSlots` is free: a flood of attempts cannot take the CPU from
the gRPC servers and the telemetry. An attempt that finds no free slot stays "face check
pending" and :class:`FaceCheckJob` (supervised, ``controller/app.py``) checks it later; every
replica may run the job, rows are claimed with ``SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.confirmation.steps import ConfirmationReport, apply_confirmation
from controller.db.models import ConfirmationCampaign, Record, SelfServiceAttempt
from controller.records.attachment_open import record_attachment
from muster.clock import Clock
from muster.confirmation import Channel, ConfirmationError, FaceResult, FaceVerdict
from muster.crypto import UploadPrivateKey
from muster.errors import NotFoundError, SealError
from muster.face import (
    DEFAULT_THRESHOLD,
    FaceImageError,
    NoFace,
    Template,
    compare,
    decode_image,
    face_template,
)
from muster.face.template import TEMPLATE_BYTES, TEMPLATE_MAGIC

__all__ = [
    "NO_REFERENCE",
    "PROCESS_SLOTS",
    "REASON_TEXT",
    "FaceCheckJob",
    "FaceSlots",
    "MusterFaceVerifier",
    "check_attempt",
    "reference_photo",
]

log = structlog.get_logger(__name__)

NO_REFERENCE = "no_reference"  # no photo on file for the person: a clerk checks by hand
REFERENCE_UNREADABLE = "reference_unreadable"
CHECK_FAILED = "face_check_failed"
REASON_TEXT = {
    CHECK_FAILED: "人脸比对出错 / the face check failed on this selfie",
    NO_REFERENCE: "档案中没有本人照片 / no reference photo on file",
    REFERENCE_UNREADABLE: "档案照片无法读取 / the reference photo on file cannot be read",
}
PHOTO = "photo.jpg"
UploadKeys = Callable[[], Mapping[int, UploadPrivateKey]]


class MusterFaceVerifier:
    """``muster.confirmation.FaceVerifier`` on ``muster.face``: the reference as a photo (JPEG
    or PNG) or a template's bytes, the live image as a photo. ``score`` is dlib's distance:
    a match is a score at or *below* the threshold."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold

    def live_face(self, live: bytes) -> Template | NoFace:
        try:
            return face_template(decode_image(live, what="selfie"))
        except FaceImageError:
            return NoFace("no_face")

    def reference_template(self, reference: bytes) -> Template | NoFace:
        if len(reference) == TEMPLATE_BYTES and reference.startswith(TEMPLATE_MAGIC):
            return Template.from_bytes(reference)
        try:
            return face_template(decode_image(reference, what="reference photo"))
        except FaceImageError:
            return NoFace("no_face")

    def judge(self, reference: Template | NoFace, live: Template | NoFace) -> FaceVerdict:
        if isinstance(reference, NoFace):
            code = (
                "face_too_small_reference" if "small" in reference.reason else "no_face_reference"
            )
            return FaceVerdict(False, float("inf"), self.threshold, (code,))
        if isinstance(live, NoFace):
            code = "face_too_small_live" if "small" in live.reason else "no_face_live"
            return FaceVerdict(False, float("inf"), self.threshold, (code,))
        verdict = compare(reference, live, self.threshold)
        return FaceVerdict(verdict.match, verdict.score, verdict.threshold, verdict.reasons)

    def verify(self, reference: bytes, live: bytes) -> FaceVerdict:
        return self.judge(self.reference_template(reference), self.live_face(live))


@dataclass
class FaceSlots:
    """At most ``size`` face checks at once in this process."""

    size: int = 2

    def __post_init__(self) -> None:
        self._semaphore = threading.BoundedSemaphore(self.size)

    @contextmanager
    def slot(self, *, wait: bool) -> Iterator[bool]:
        """True while holding a slot; False (immediately) when none is free and not waiting."""
        held = self._semaphore.acquire(blocking=wait)
        try:
            yield held
        finally:
            if held:
                self._semaphore.release()


PROCESS_SLOTS = FaceSlots(2)  # the page and the job of one process share these


def reference_photo(
    session: Session, id_number: str, keys: Mapping[int, UploadPrivateKey]
) -> tuple[str, bytes] | None:
    """(``record:<id>``, photo bytes) of the newest stored record of the person with a photo;
    None when there is none. A photo that cannot be opened raises ``ConfirmationError``."""
    records = session.scalars(
        select(Record)
        .where(Record.id_number == id_number, Record.review_status != "superseded")
        .order_by(Record.received_at.desc())
    )
    for record in records:
        if PHOTO not in record.payload.get("attachments", {}):
            continue
        try:
            data, _media = record_attachment(session, record.record_id, PHOTO, keys)
        except (NotFoundError, SealError) as exc:
            raise ConfirmationError(str(exc)) from None
        return f"record:{record.record_id}", data
    return None


def check_attempt(
    session: Session,
    attempt_id: int,
    verifier: MusterFaceVerifier,
    keys: Mapping[int, UploadPrivateKey],
    clock: Clock,
    live: Template | NoFace | None = None,
) -> SelfServiceAttempt | None:
    """Face-check one pending attempt (``live`` when the selfie was already described) and
    confirm the person on a match or queue it for a clerk; None when it is no longer pending."""
    attempt = session.get(SelfServiceAttempt, attempt_id, with_for_update=True)
    if attempt is None or attempt.outcome != "pending_face" or attempt.campaign_id is None:
        return None
    if attempt.selfie is None:
        return None
    try:
        found = reference_photo(session, attempt.id_number, keys)
    except ConfirmationError as exc:
        log.warning("reference photo unreadable", attempt=attempt.id, error=str(exc))
        found, attempt.face_reasons = None, REFERENCE_UNREADABLE
    if found is None:
        attempt.outcome = "manual_check"
        attempt.face_reasons = attempt.face_reasons or NO_REFERENCE
        return attempt
    attempt.face_reference = found[0]
    live_face = live if live is not None else verifier.live_face(attempt.selfie)
    verdict = verifier.judge(verifier.reference_template(found[1]), live_face)
    attempt.face_score = verdict.score if verdict.score != float("inf") else None
    attempt.face_threshold = verdict.threshold
    attempt.face_reasons = ",".join(verdict.reasons)[:200]
    if not verdict.match:
        attempt.outcome = "manual_check"
        return attempt
    campaign = session.get(ConfirmationCampaign, attempt.campaign_id)
    assert campaign is not None
    apply_confirmation(
        session,
        campaign,
        ConfirmationReport(
            id_number=attempt.id_number,
            channel=Channel.SELF_SERVICE,
            at=attempt.at,
            by="self",
            face_result=FaceResult.MATCH,
            face_score=verdict.score,
            phone=attempt.phone,
            source_id=f"self-service:{attempt.id}",
        ),
    )
    attempt.outcome = "face_match"
    attempt.resolved_at = clock.now()
    attempt.resolved_by = "face-check"
    attempt.resolution = f"face match: score {verdict.score:.4f} <= {verdict.threshold}"
    return attempt


@dataclass
class FaceCheckJob:
    """The supervised job that checks the attempts left pending (no free slot, or a restart
    between storing the attempt and checking it), a few at a time, every ``every_s``."""

    sessions: sessionmaker[Session]
    verifier: MusterFaceVerifier
    slots: FaceSlots
    upload_keys: UploadKeys
    clock: Clock
    every_s: float = 30.0
    batch: int = 5

    def run_once(self) -> int:
        """Check up to ``batch`` pending attempts; how many were checked."""
        done = 0
        with self.sessions.begin() as session:
            ids = session.scalars(
                select(SelfServiceAttempt.id)
                .where(
                    SelfServiceAttempt.outcome == "pending_face",
                    SelfServiceAttempt.resolved_at.is_(None),
                )
                .order_by(SelfServiceAttempt.at)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            ).all()
            keys = self.upload_keys()
            for attempt_id in ids:
                with self.slots.slot(wait=True):
                    try:
                        with session.begin_nested():
                            checked = check_attempt(
                                session, attempt_id, self.verifier, keys, self.clock
                            )
                    except Exception:
                        # One selfie that breaks the check must not stop every other one behind
                        # it: it goes to a clerk, and the next pass moves on.
                        log.exception("face check failed", attempt=attempt_id)
                        attempt = session.get(SelfServiceAttempt, attempt_id)
                        assert attempt is not None
                        attempt.outcome, attempt.face_reasons = "manual_check", CHECK_FAILED
                        checked = attempt
                    if checked is not None:
                        done += 1
        return done

    async def run(self) -> None:
        while True:
            while await asyncio.to_thread(self.run_once) == self.batch:
                pass  # a backlog: keep going, each batch still waits for a free slot
            await self.clock.sleep(self.every_s)
