"""The annual confirmation on the device, without the web: the visit list as the slice holds it
(:class:`VisitDesk`), its filters, the offline face check of live frames against the centre's
template (:func:`judge_frames`: comparison and the liveness challenge, in plain Chinese), and the
sealed confirmation record (:func:`confirmation_record`). Nothing here needs the centre: a
device offline for days lists, checks and seals, and the outbox uploads later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from muster.clock import campaign_date
from muster.confirmation import AGE_BANDS, ConfirmationError, status_zh
from muster.confirmation_record import (
    REASON_MIN,
    Checked,
    ConfirmationRecord,
    DeathReport,
    FaceCheck,
    FaceOutcome,
    SealedChannel,
    check,
)
from muster.face import (
    DEFAULT_THRESHOLD,
    REASONS,
    NoFace,
    Template,
    compare,
    decode_image,
    face_template,
    liveness,
)

__all__ = [
    "BAND_NAMES",
    "CHANNEL_NAMES",
    "FRAMES",
    "FRAME_GAP_S",
    "MAX_FRAME_BYTES",
    "FaceView",
    "VisitDesk",
    "confirmation_record",
    "filter_visits",
    "judge_frames",
]

FRAMES: Final = 3  # live frames per check: the liveness challenge needs two at least
# Between the camera's frames: a head turned slowly or a blink shows across ~1 s, not between
# two frames a tenth of a second apart.
FRAME_GAP_S: Final = 0.4
MAX_FRAME_BYTES: Final = 4 * 1024 * 1024
BAND_NAMES: Final = {"80+": "80 岁及以上", "70-79": "70–79 岁", "<70": "70 岁以下"}
CHANNEL_NAMES: Final = {"home_visit": "上门认证", "station": "服务站认证"}
_NOTES: Final = {
    "no_photo": "档案中没有本人照片，无法比对人脸，请人工核验",
    "no_face": "档案照片中未找到人脸，无法比对，请人工核验",
    "face_too_small": "档案照片中人脸太小，无法比对，请人工核验",
    "unreadable": "档案照片无法读取，无法比对，请人工核验",
    "not_prepared": "中心尚未为本人生成人脸模板，无法比对，请人工核验",
}
_LIVENESS: Final = {
    "too_few_frames": "现场照片不足两张，无法做活体检测",
    "no_face_in_frame": "有一张现场照片中没有人脸，请让本人正对镜头后重拍",
    "frames_show_different_people": "几张现场照片不是同一个人，请重拍",
    "no_movement": "没有看到眨眼或转头，请让本人在拍照时缓慢转头或眨眼后重拍",
}


@dataclass
class VisitDesk:
    """The device's parts the confirmation pages drive: the slice's visit list, the local
    marks of what was confirmed here, and the sealer for ``confirmation/1`` records."""

    visits: Callable[[], list[dict[str, Any]]]
    visit: Callable[[str], dict[str, Any] | None]
    mark_done: Callable[[str, dict[str, Any]], None]
    # Sealer.seal_document(record id, schema version, plaintext): LicenceError / StorageError
    seal_document: Callable[[str, str, bytes], object]
    device_id: str


def filter_visits(
    visits: Sequence[dict[str, Any]], *, channel: str = "", band: str = "", status: str = ""
) -> list[dict[str, Any]]:
    """The list as the clerk filters it, oldest first (the 80+ are visited first)."""
    chosen = [
        v
        for v in visits
        if (not channel or (channel == "home_visit") == bool(v["visit_planned"]))
        and (not band or v["age_band"] == band)
        and (
            not status
            or (status == "done" and v["done"] is not None)
            or (status != "done" and v["done"] is None and v["status"] == status)
        )
    ]
    return sorted(chosen, key=lambda v: (v["birth_date"], v["id_number"]))


def band_order() -> list[tuple[str, str]]:
    return [(b.value, BAND_NAMES[b.value]) for b in AGE_BANDS]


def status_name(visit: dict[str, Any]) -> str:
    return "本机已确认（待上传）" if visit.get("done") else status_zh(visit["status"])


@dataclass(frozen=True)
class FaceView:
    """What the face check found, for the page and for the record."""

    passed: bool
    score: float | None
    threshold: float
    live: bool
    challenge: str
    frames: int
    reasons: tuple[str, ...]
    message: str  # plain Chinese for the clerk

    def to_check(self, manual_reason: str = "") -> FaceCheck:
        return FaceCheck(
            outcome=FaceOutcome.MATCH if self.passed and not manual_reason else FaceOutcome.MANUAL,
            score=self.score,
            threshold=self.threshold,
            liveness_passed=self.live,
            liveness_challenge=self.challenge,
            frames=self.frames,
            reasons=self.reasons,
            manual_reason=manual_reason,
        )


def judge_frames(
    template: bytes, note: str, frames: Sequence[bytes], threshold: float = DEFAULT_THRESHOLD
) -> FaceView:
    """Compare the live frames with the centre's template and run the liveness challenge.
    ``FaceImageError`` when a frame is not a usable picture (the page says which)."""
    images = [decode_image(f, what=f"现场照片 {i + 1}") for i, f in enumerate(frames)]
    if not template:
        message = _NOTES.get(note, _NOTES["not_prepared"])
        return FaceView(False, None, threshold, False, "", len(images), (note,), message)
    reference = Template.from_bytes(template)
    # Every frame is compared and the closest counts: a frame caught mid-turn looks less like
    # the photo on file than one facing the camera.
    live_faces = [face_template(image) for image in images]
    found = [t for t in live_faces if isinstance(t, Template)]
    if not found:
        reasons = tuple(
            "face_too_small_live"
            if isinstance(t, NoFace) and "small" in t.reason
            else "no_face_live"
            for t in live_faces[:1]
        )
        text = "现场照片中没有找到人脸：请让本人正对镜头、光线充足后重拍"
        return FaceView(False, None, threshold, False, "", len(images), reasons, text)
    verdict = min((compare(reference, t, threshold) for t in found), key=lambda v: v.score)
    alive = liveness(images, same_person=threshold)
    reasons = (*verdict.reasons, *alive.reasons)
    passed = verdict.match and alive.live
    if passed:
        how = "转头" if alive.challenge == "turn" else "眨眼"
        message = f"人脸比对通过（相似距离 {verdict.score:.2f}，阈值 {threshold}），活体检测通过（看到{how}）"
    elif not verdict.match:
        message = (
            f"人脸比对未通过：与档案照片不像同一人（相似距离 {verdict.score:.2f}，"
            f"超过阈值 {threshold}）。可重拍；仍不通过的，请核对身份证原件后人工核验并写明理由"
        )
    else:
        message = (
            f"人脸比对通过（相似距离 {verdict.score:.2f}），但活体检测未通过："
            f"{_LIVENESS.get(alive.reasons[0], REASONS.get(alive.reasons[0], alive.reasons[0]))}"
        )
    return FaceView(
        passed,
        verdict.score,
        threshold,
        alive.live,
        alive.challenge or "",
        len(images),
        reasons,
        message,
    )


def confirmation_record(
    *,
    record_id: str,
    visit: dict[str, Any],
    township_code: str,
    channel: str,
    face: FaceView | None,
    manual_reason: str,
    checked: Checked,
    phone: str,
    address: str,
    living_situation: str,
    death_date: str,
    death_note: str,
    device_id: str,
    clerk: str,
    now: dt.datetime,
) -> ConfirmationRecord:
    """The record to seal; ``ConfirmationError`` says what is missing (a manual check's reason,
    a face check, a date of death)."""
    death = None
    if death_date.strip():
        try:
            death = DeathReport(
                death_date=dt.date.fromisoformat(death_date.strip()), note=death_note
            )
        except ValueError:
            raise ConfirmationError(f"死亡日期“{death_date}”不是日期，请写成 YYYY-MM-DD") from None
    face_check = None
    if death is None:
        reason = manual_reason.strip()
        if face is None and not reason:
            raise ConfirmationError("请先拍照比对人脸；无法比对的，请人工核验并写明理由")
        if (face is None or not face.passed) and len(reason) < REASON_MIN:
            raise ConfirmationError(
                "人脸比对或活体检测未通过：请核对身份证原件后人工核验，并写明理由（至少 4 个字）"
            )
        if face is None:
            face_check = FaceCheck(outcome=FaceOutcome.MANUAL, manual_reason=reason)
        else:
            face_check = face.to_check(reason if not face.passed else "")
    try:
        record = ConfirmationRecord(
            record_id=record_id,
            campaign_id=visit["campaign_id"],
            year=visit["year"],
            township_code=township_code,
            channel=SealedChannel(channel),
            id_number=visit["id_number"],
            name=visit["name"],
            face=face_check,
            checked=checked,
            phone=phone.strip(),
            address=address.strip(),
            living_situation=living_situation.strip(),
            death=death,
            device_id=device_id,
            clerk=clerk,
            at=now,
        )
    except ValueError as exc:
        raise ConfirmationError(f"确认信息有误：{_first_error(exc)}") from None
    check(record, today=campaign_date(now))
    return record


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}：{first['msg']}"
    return str(exc)
