"""The sealed confirmation record (S-21): what a clerk's home visit or station confirmation
seals on the device, sealed and encrypted like a collection record (``edge.sealer``) under the
schema ``confirmation/1``, and opened at the centre, where it confirms the person once.

It says who was confirmed (the ID number, the campaign), how (channel ``home_visit`` or
``station``), what the face check found (the score against the template, the threshold, whether
the liveness challenge passed, or the clerk's manual check with its reason), which of name, ID
number, phone and address the clerk checked, the person's living situation, and a death if one
was reported at the visit (then it confirms nobody: the date of death goes to the deaths path).
The device, the clerk and the time (from the device's clock) come with it.

The rules a record obeys beyond its schema (``check``): a face "match" must be a score within
its threshold with the liveness passed; anything else is a manual check and needs a reason; a
face "no_match" is never sealed (the clerk checks by hand first); a death needs its date.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from muster.confirmation import ConfirmationError
from muster.idnumbers import check_id_number, compact
from muster.records import CLERK_MAX, RECORD_ID_PATTERN

__all__ = [
    "KIND",
    "MAX_BYTES",
    "REASON_MIN",
    "SCHEMA_VERSION",
    "Checked",
    "ConfirmationRecord",
    "DeathReport",
    "FaceCheck",
    "FaceOutcome",
    "SealedChannel",
    "check",
    "parse_confirmation_record",
]

KIND: Final = "confirmation"
SCHEMA_VERSION: Final = "confirmation/1"
MAX_BYTES: Final = 16 * 1024
REASON_MIN: Final = 4  # a manual check's reason says something: "已核对身份证原件"


class SealedChannel(StrEnum):
    HOME_VISIT = "home_visit"
    STATION = "station"


class FaceOutcome(StrEnum):
    MATCH = "match"
    MANUAL = "manual"


class FaceCheck(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: FaceOutcome
    score: float | None = Field(default=None, ge=0.0, le=10.0)
    threshold: float | None = Field(default=None, gt=0.0, le=2.0)
    liveness_passed: bool = False
    liveness_challenge: str = Field(default="", max_length=16)
    frames: int = Field(default=0, ge=0, le=20)
    reasons: tuple[str, ...] = Field(default=(), max_length=20)
    manual_reason: str = Field(default="", max_length=500)


class Checked(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: bool = False
    id_number: bool = False
    phone: bool = False
    address: bool = False


class DeathReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    death_date: date
    note: str = Field(default="", max_length=500)


class ConfirmationRecord(BaseModel):
    """One confirmation as sealed on the device."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    record_id: str = Field(pattern=RECORD_ID_PATTERN)
    campaign_id: int = Field(ge=1)
    year: int = Field(ge=2000, le=2200)
    township_code: str = Field(pattern=r"^\d{12}$")
    channel: SealedChannel
    id_number: str = Field(min_length=15, max_length=18)
    name: str = Field(min_length=1, max_length=64)
    face: FaceCheck | None = None
    checked: Checked = Checked()
    phone: str = Field(default="", max_length=20, pattern=r"^[0-9+\- ]*$")
    address: str = Field(default="", max_length=200)
    living_situation: str = Field(default="", max_length=1000)
    death: DeathReport | None = None
    device_id: str = Field(min_length=1, max_length=64)
    clerk: str = Field(min_length=1, max_length=CLERK_MAX)
    at: datetime

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("the time must carry its time zone")
        return value

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


def check(record: ConfirmationRecord, *, today: date) -> None:
    """The rules beyond the schema; ``ConfirmationError`` names the first one broken."""
    number = check_id_number(record.id_number, today=today)
    if number.problems:
        raise ConfirmationError(f"公民身份号码有误：{number.problems[0].zh}")
    if record.death is not None:
        if record.death.death_date > today:
            raise ConfirmationError(f"死亡日期 {record.death.death_date} 晚于今天；请核对")
        return
    face = record.face
    if face is None:
        raise ConfirmationError("确认记录缺少人脸核验结果；请比对人脸或人工核验后再封存")
    if face.outcome is FaceOutcome.MATCH:
        if face.score is None or face.threshold is None or face.score > face.threshold:
            raise ConfirmationError("人脸比对未达到阈值，不能记为比对通过；请人工核验并写明理由")
        if not face.liveness_passed:
            raise ConfirmationError("活体检测未通过，不能记为比对通过；请人工核验并写明理由")
    elif len(face.manual_reason.strip()) < REASON_MIN:
        raise ConfirmationError(
            "人工核验须写明理由（至少 4 个字，如：人脸比对未通过，已核对身份证原件）"
        )


def parse_confirmation_record(plaintext: bytes, *, today: date) -> ConfirmationRecord:
    """Parse and check a sealed confirmation; ``ConfirmationError`` with what was wrong."""
    if len(plaintext) > MAX_BYTES:
        raise ConfirmationError(f"确认记录超过 {MAX_BYTES // 1024} KiB 上限；请删减情况说明")
    try:
        record = ConfirmationRecord.model_validate_json(plaintext)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfirmationError(f"确认记录字段 {where} 有误：{first['msg']}") from None
    record = record.model_copy(update={"id_number": compact(record.id_number).upper()})
    check(record, today=today)
    return record
