"""The record a device collects and the controller stores (S-01, S-02).

This is the envelope every form shares: who the person is, which of the 12 categories they
belong to, which form version was filled, and who entered and reviewed it. Form fields per
category live in ``fields`` and are checked against their form definition.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from muster.classified import holds_designation, scan_text_values
from muster.errors import MusterError
from muster.forms import PersonFacts, form_for, validate_fields
from muster.idnumbers import check_id_number, compact

__all__ = [
    "ATTACHMENT_MAX_BYTES",
    "ATTACHMENT_MEDIA_TYPES",
    "ATTACHMENT_NAMES",
    "AUDIT_ACTIONS",
    "CATEGORY_NAMES",
    "CLERK_MAX",
    "FAMILY_CATEGORIES",
    "RECORD_ID_PATTERN",
    "RECORD_MAX_BYTES",
    "AttachmentRef",
    "AuditEntry",
    "Category",
    "Person",
    "RecordError",
    "RecordPayload",
    "category_name",
    "cross_check",
    "describe_attachment",
    "parse_record",
]


class Category(StrEnum):
    """The 12 categories of people collected (S-01)."""

    TRANSFERRED_OFFICER = "transferred_officer"
    RETIRED_SOLDIER = "retired_soldier"
    RETIRED_CADRE = "retired_cadre"
    NON_MILITARY_STAFF = "non_military_staff"
    RED_ARMY_VETERAN = "red_army_veteran"
    DEMOBILISED_SOLDIER = "demobilised_soldier"
    DISABLED_SOLDIER = "disabled_soldier"
    DISABLED_MILITIA = "disabled_militia"
    MARTYR_FAMILY = "martyr_family"
    DUTY_DEATH_FAMILY = "duty_death_family"
    ILLNESS_DEATH_FAMILY = "illness_death_family"
    SERVING_SOLDIER_FAMILY = "serving_soldier_family"


CATEGORY_NAMES: dict[Category, str] = {
    Category.TRANSFERRED_OFFICER: "军队转业干部",
    Category.RETIRED_SOLDIER: "退役士兵",
    Category.RETIRED_CADRE: "军队离退休干部和退休士官",
    Category.NON_MILITARY_STAFF: "无军籍退休退职职工",
    Category.RED_ARMY_VETERAN: "红军老战士（含西路军、失散人员）",
    Category.DEMOBILISED_SOLDIER: "复员军人",
    Category.DISABLED_SOLDIER: "残疾军人",
    Category.DISABLED_MILITIA: "伤残民兵民工",
    Category.MARTYR_FAMILY: "烈士遗属",
    Category.DUTY_DEATH_FAMILY: "因公牺牲军人遗属",
    Category.ILLNESS_DEATH_FAMILY: "病故军人遗属",
    Category.SERVING_SOLDIER_FAMILY: "现役军人家属",
}


def category_name(value: str) -> str:
    """The Chinese name of one of the 12 categories; a value that names none shows itself."""
    try:
        return CATEGORY_NAMES[Category(value)]
    except ValueError:
        return value


FAMILY_CATEGORIES = frozenset(
    {
        Category.MARTYR_FAMILY,
        Category.DUTY_DEATH_FAMILY,
        Category.ILLNESS_DEATH_FAMILY,
        Category.SERVING_SOLDIER_FAMILY,
    }
)


class RecordError(MusterError):
    """A record does not satisfy the record model; ``code`` is stable, the message is for clerks."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Person(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    id_number: str = Field(max_length=32)
    sex: str = Field(pattern="^[12]$")  # GB/T 2261.1: 1 male, 2 female
    birth_date: date
    ethnicity: str = Field(default="01", pattern=r"^\d{2}$")  # GB/T 3304 code

    @field_validator("id_number")
    @classmethod
    def _compact_id(cls, value: str) -> str:
        # Only the spelling is normalised here: whether the number is valid depends on the day
        # it is judged, which a model has no way to know (``cross_check`` takes it).
        return compact(value)


# A record id is the UUID the device gave it, in canonical lower-case form: it names files,
# database keys and download headers, so nothing else may pass for one.
RECORD_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
CLERK_MAX = 64
# A record without its attachments is a few KiB; this bounds what one record can make the
# centre parse and store (its audit trail, its change lists) before any rule looks at it.
RECORD_MAX_BYTES = 256 * 1024

AUDIT_ACTIONS = frozenset({"entered", "edited", "reviewed", "returned", "signed", "sealed"})
# Photo, signature and scanned sheet are sealed apart from the record and sent in chunks
# (muster/crypto/sealing.py); the record only names them. 8 MiB is several times a good ID photo
# or a phone scan of an A4 sheet, and bounds what one record can make the centre hold.
ATTACHMENT_MAX_BYTES = 8 * 1024 * 1024
ATTACHMENT_MEDIA_TYPES = {
    "photo.jpg": "image/jpeg",
    "signature.png": "image/png",
    "signed_sheet.jpg": "image/jpeg",
}
ATTACHMENT_NAMES = frozenset(ATTACHMENT_MEDIA_TYPES)


class AttachmentRef(BaseModel):
    """What a record says about one attachment; the bytes travel sealed on their own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    media_type: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


def describe_attachment(name: str, data: bytes) -> AttachmentRef:
    """The descriptor of ``data`` as attachment ``name``; ``RecordError`` when it may not go."""
    if name not in ATTACHMENT_NAMES:
        raise RecordError("attachment", f"附件“{name}”不是照片、签名或签字确认单，不能上传")
    if len(data) > ATTACHMENT_MAX_BYTES:
        raise RecordError(
            "attachment",
            f"附件“{name}”有 {len(data) / 2**20:.1f} MB，超过 "
            f"{ATTACHMENT_MAX_BYTES // 2**20} MB 上限，请重新拍摄或扫描后再封存",
        )
    return AttachmentRef(
        media_type=ATTACHMENT_MEDIA_TYPES[name],
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


class AuditEntry(BaseModel):
    """One step of a record's life on the device (S-07): who did what, when, what changed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: datetime
    clerk: str = Field(max_length=CLERK_MAX)
    action: str = Field(max_length=16)
    # field -> [before, after]; "before" of the first entry is the initial data (S-04). A form
    # has under 60 fields; each value is bounded by the record's size as a whole.
    changes: dict[str, tuple[Any, Any]] = Field(default_factory=dict, max_length=100)
    note: str = Field(default="", max_length=500)


class RecordPayload(BaseModel):
    """What is sealed on the device and opened at the centre."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    record_id: str = Field(pattern=RECORD_ID_PATTERN)
    category: Category
    form_version: str = Field(max_length=16)
    township_code: str = Field(pattern=r"^\d{12}$")
    person: Person
    fields: dict[str, Any] = Field(default_factory=dict, max_length=100)
    collected_at: datetime
    entered_by: str = Field(min_length=1, max_length=CLERK_MAX)
    reviewed_by: str = Field(min_length=1, max_length=CLERK_MAX)
    # family categories: parent / spouse / child / sibling ...
    relation: str | None = Field(default=None, max_length=16)
    audit: tuple[AuditEntry, ...] = Field(default=(), max_length=200)
    attachments: dict[str, AttachmentRef] = Field(default_factory=dict)  # sealed separately

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


def parse_record(plaintext: bytes, *, today: date) -> RecordPayload:
    """Parse and check a record as of ``today`` (the receiver's day: a device clock can be
    wrong, so ``collected_at`` is not trusted for "born in the future"); raises
    ``RecordError`` with a reason a clerk can act on."""
    if len(plaintext) > RECORD_MAX_BYTES:
        raise RecordError(
            "too_large",
            f"记录有 {len(plaintext) // 1024} KiB，超过 {RECORD_MAX_BYTES // 1024} KiB 上限"
            "（附件另行上传，不计在内）：请删减备注或审计说明后重新封存",
        )
    try:
        payload = RecordPayload.model_validate_json(plaintext)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RecordError("schema", f"记录字段 {where} 有误：{first['msg']}") from None
    except (ValueError, json.JSONDecodeError):
        raise RecordError("schema", "记录内容不是有效的 JSON") from None
    cross_check(payload, today=today)
    return payload


def cross_check(payload: RecordPayload, *, today: date) -> None:
    """The rules a record obeys beyond its schema; the first broken one is raised. The ID
    number's codes are the checker's (``id_number`` for the number itself, ``id_birth_date``
    and ``id_sex`` when it disagrees with the person's birth date or sex)."""
    person = payload.person
    checked = check_id_number(
        person.id_number, today=today, birth_date=person.birth_date, sex=person.sex
    )
    if checked.problems:
        first = checked.problems[0]
        code = "id_number" if first.field == "id_number" else first.code
        raise RecordError(code, first.zh)
    if payload.category in FAMILY_CATEGORIES and not payload.relation:
        raise RecordError("relation", "遗属和家属类别必须填写与军人的关系")
    if payload.entered_by == payload.reviewed_by:
        raise RecordError("review", "录入人和审核人不能是同一人")
    _check_audit(payload)
    _check_attachments(payload)
    _check_form(payload, today)
    _check_free_text(payload)


# What a clerk reads in a refusal for each part of the payload that carries free text.
_TEXT_PARTS = {
    "person": "人员信息",
    "entered_by": "录入人",
    "reviewed_by": "审核人",
    "audit": "审计记录",
}


def _check_free_text(payload: RecordPayload) -> None:
    """S-03 over the strings the form check does not see: the person's name, who entered and
    reviewed the record, audit notes and change lists. The form's fields and the relation need
    no second pass: ``_check_form`` already refused unknown keys, scanned every text field and
    held every other value to its code list or format."""
    # One walk over the raw values decides; the parts below, with their paths, are built only
    # for a record that holds a designation (one in many thousands). The audit's ``at`` is
    # left out there too, and its other values are the JSON natives the dump would give.
    audit = [(e.clerk, e.action, e.note, e.changes) for e in payload.audit]
    if not holds_designation((payload.person.name, payload.entered_by, payload.reviewed_by, audit)):
        return
    parts = {
        "person": {"name": payload.person.name},
        "entered_by": payload.entered_by,
        "reviewed_by": payload.reviewed_by,
        "audit": [entry.model_dump(mode="json", exclude={"at"}) for entry in payload.audit],
    }
    for key, value in parts.items():
        findings = scan_text_values(value, _TEXT_PARTS[key])
        if findings:
            raise RecordError("classified", findings[0].message)


def _check_audit(payload: RecordPayload) -> None:
    if not payload.audit:
        return
    for entry in payload.audit:
        if entry.action not in AUDIT_ACTIONS:
            raise RecordError("audit", f"审计记录的操作“{entry.action}”无效，请升级设备软件")
    entered = [e.clerk for e in payload.audit if e.action == "entered"]
    reviewed = [e.clerk for e in payload.audit if e.action == "reviewed"]
    if entered[:1] != [payload.entered_by] or reviewed[-1:] != [payload.reviewed_by]:
        raise RecordError("audit", "审计记录中的录入人或审核人与记录不符，请重新审核后封存")


def _check_attachments(payload: RecordPayload) -> None:
    for name, ref in payload.attachments.items():
        if name not in ATTACHMENT_NAMES:
            raise RecordError("attachment", f"附件“{name}”不是照片、签名或签字确认单，不能上传")
        if ref.size > ATTACHMENT_MAX_BYTES:
            raise RecordError("attachment", f"附件“{name}”过大，请重新拍摄或签名")
        if ref.media_type != ATTACHMENT_MEDIA_TYPES[name]:
            raise RecordError("attachment", f"附件“{name}”的类型不符，请升级设备软件")


def _check_form(payload: RecordPayload, today: date) -> None:
    """The fields against the form version the record names, as the console checked them
    (dates "not after today" by the receiver's day, as the ID number's birth date)."""
    form = form_for(payload.category.value, payload.form_version)
    if form is None:
        raise RecordError(
            "form_unknown",
            f"中心不认识表单 {payload.category.value}/{payload.form_version}，请升级设备软件",
        )
    person = payload.person
    checked = validate_fields(
        form,
        payload.fields,
        person=PersonFacts(person.id_number, person.sex, person.birth_date),
        relation=payload.relation,
        today=today,
    )
    if checked.problems:
        first = checked.problems[0]
        code = "classified" if first.code == "classified" else "form"
        raise RecordError(code, first.message)
