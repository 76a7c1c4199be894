"""S-30 "leaving the army, one application": the ten items, the one form, the materials and the
checks, as tables. Sans-I/O and clock-free (the caller passes ``today``).

One form: every field is asked once (:data:`FIELDS`), whichever items need it; the materials to
upload follow from the items chosen and the service type (:func:`materials_for`), and a material
uploaded once is reused by every item that needs it. Routing is data minimisation written down:
:data:`ITEMS` says, per item, which fields and materials its department receives, and
:func:`payload_for_item` hands over those and nothing else.

The bank account check is Luhn (``stdnum.luhn``) on 16-19 digits: python-stdnum has no rule of
its own for Chinese bank cards, and UnionPay cards issued since the 2000s carry a Luhn check
digit. ID numbers go through :mod:`muster.idnumbers`, townships through :mod:`muster.regions`.

Over 400 lines because the four tables (fields, materials, items, their checks) are one rule and
read best side by side.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from stdnum import luhn

from muster.errors import ConfigError
from muster.idnumbers import birth_date_of, check_id_number
from muster.regions import parse_township

__all__ = [
    "FIELDS",
    "ITEMS",
    "MATERIALS",
    "MATERIAL_MAX_BYTES",
    "ApplicationError",
    "FieldSpec",
    "ItemSpec",
    "MaterialSpec",
    "Problem",
    "check_application",
    "check_material",
    "fields_for",
    "materials_for",
    "payload_for_item",
    "sniff_material_type",
]

MATERIAL_MAX_BYTES: Final = 5 * 1024 * 1024
# Scans and photos from a phone: PDF, JPEG or PNG, told apart by their first bytes.
_MAGIC: Final = ((b"%PDF-", "application/pdf"), (b"\xff\xd8\xff", "image/jpeg"))
_PNG: Final = b"\x89PNG\r\n\x1a\n"


class ApplicationError(ConfigError):
    """An application, a material or a step on it is refused; ``problems`` name each field."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("；".join(f"{p.label}：{p.zh}" for p in self.problems))


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong, about one field or material, in Chinese and English."""

    field: str
    label: str
    zh: str
    en: str


@dataclass(frozen=True, slots=True)
class FieldSpec:
    key: str
    zh: str
    en: str
    kind: str = "text"  # text | date | choice | digits
    choices: tuple[tuple[str, str, str], ...] = ()  # (code, zh, en)
    max_len: int = 60


@dataclass(frozen=True, slots=True)
class MaterialSpec:
    key: str
    zh: str
    en: str


@dataclass(frozen=True, slots=True)
class ItemSpec:
    """One item: which department kind handles it and exactly what that department receives."""

    code: str
    zh: str
    en: str
    agency_zh: str
    fields: tuple[str, ...]
    materials: tuple[str, ...]  # always needed
    conscript_materials: tuple[str, ...] = ()  # when service_type is conscript
    career_materials: tuple[str, ...] = ()  # when service_type is NCO or officer


_SERVICE = (
    ("conscript", "义务兵", "conscript"),
    ("nco", "军士", "non-commissioned officer"),
    ("officer", "军官", "officer"),
)
_PLACEMENT = (
    ("self_employed", "自主就业", "self-employed"),
    ("assigned", "安排工作", "assigned a job"),
    ("retired", "退休", "retired"),
    ("supported", "供养", "supported"),
)
_GRADE = (
    ("60", "60%档", "60% grade"),
    ("100", "100%档", "100% grade"),
    ("200", "200%档", "200% grade"),
)

FIELDS: Final[dict[str, FieldSpec]] = {
    f.key: f
    for f in (
        FieldSpec("name", "姓名", "name", max_len=30),
        FieldSpec("id_number", "公民身份号码", "ID number", max_len=18),
        FieldSpec("phone", "联系电话", "phone", "digits", max_len=11),
        FieldSpec("township", "安置地（乡镇街道代码）", "settlement township (code)", "digits"),
        FieldSpec("address", "居住地址", "home address", max_len=100),
        FieldSpec("service_type", "服役类型", "service type", "choice", _SERVICE),
        FieldSpec("placement", "安置方式", "placement", "choice", _PLACEMENT),
        FieldSpec("enlisted_on", "入伍时间", "enlisted on", "date"),
        FieldSpec("discharged_on", "退役时间", "discharged on", "date"),
        FieldSpec("police_station", "拟落户派出所", "police station to register at"),
        FieldSpec("bank_name", "开户银行", "bank"),
        FieldSpec("bank_account", "银行账号", "bank account number", "digits", max_len=19),
        FieldSpec("job_wish", "就业意向", "wished job", max_len=100),
        FieldSpec("training_wish", "培训意向", "wished training", max_len=100),
        FieldSpec("contribution_grade", "缴费档次", "contribution grade", "choice", _GRADE),
    )
}

MATERIALS: Final[dict[str, MaterialSpec]] = {
    m.key: m
    for m in (
        MaterialSpec("discharge_certificate", "退役证件", "discharge certificate"),
        MaterialSpec("settlement_letter", "退役军人落户介绍信", "settlement letter"),
        MaterialSpec("id_register", "军人身份证号登记表", "military ID number register"),
        MaterialSpec("residence_proof", "落户地材料", "proof of the place of residence"),
        MaterialSpec("photo", "证件照", "ID photo"),
        MaterialSpec("grant_review", "自主就业一次性经济补助审核表", "grant review form"),
        MaterialSpec("pension_transfer", "基本养老保险关系转移接续信息表", "pension transfer form"),
        MaterialSpec("pension_paid", "基本养老保险参保缴费凭证", "pension contribution record"),
        MaterialSpec("annuity_paid", "军人职业年金缴费凭证", "occupational annuity record"),
        MaterialSpec(
            "medical_account", "军人退役医疗保险个人账户转移凭证", "medical account transfer"
        ),
        MaterialSpec(
            "conscript_medical", "义务兵退役医疗保险金转移凭证", "conscript medical transfer"
        ),
    )
}

_PERSON = ("name", "id_number", "phone")
ITEMS: Final[dict[str, ItemSpec]] = {
    i.code: i
    for i in (
        ItemSpec(
            "discharge",
            "军人退役报到登记",
            "discharge registration",
            "退役军人事务局",
            (
                *_PERSON,
                "township",
                "address",
                "service_type",
                "placement",
                "enlisted_on",
                "discharged_on",
            ),
            ("discharge_certificate",),
        ),
        ItemSpec(
            "grant",
            "自主就业退役士兵一次性经济补助金发放",
            "one-off grant (self-employed)",
            "退役军人事务局",
            (*_PERSON, "placement", "discharged_on", "bank_name", "bank_account"),
            ("discharge_certificate", "grant_review"),
        ),
        ItemSpec(
            "employment",
            "退役军人就业和培训",
            "employment and training",
            "退役军人服务中心",
            (*_PERSON, "township", "job_wish", "training_wish"),
            (),
        ),
        ItemSpec(
            "hukou",
            "恢复户口登记",
            "restoring household registration",
            "公安局",
            (*_PERSON, "township", "address", "police_station", "discharged_on"),
            ("discharge_certificate", "settlement_letter", "id_register", "residence_proof"),
        ),
        ItemSpec(
            "idcard",
            "核发居民身份证",
            "ID card issue",
            "公安局",
            (*_PERSON, "police_station"),
            ("photo",),
        ),
        ItemSpec(
            "sscard",
            "社保卡首次申领",
            "first social-security card",
            "人力资源和社会保障局",
            (*_PERSON, "address"),
            ("photo",),
        ),
        ItemSpec(
            "pension",
            "养老保险转移接续",
            "pension transfer",
            "人力资源和社会保障局",
            (*_PERSON, "township", "service_type", "enlisted_on", "discharged_on"),
            ("pension_transfer", "pension_paid"),
            career_materials=("annuity_paid",),
        ),
        ItemSpec(
            "medins",
            "医保参保登记",
            "medical-insurance registration",
            "医疗保障局",
            (*_PERSON, "township", "address"),
            (),
        ),
        ItemSpec(
            "medtransfer",
            "医保关系转移接续",
            "medical-insurance transfer",
            "医疗保障局",
            (*_PERSON, "township", "service_type", "discharged_on"),
            (),
            conscript_materials=("conscript_medical",),
            career_materials=("medical_account",),
        ),
        ItemSpec(
            "contribution",
            "社（医）保缴费",
            "contribution payment",
            "医疗保障局",
            (*_PERSON, "township", "contribution_grade", "bank_name", "bank_account"),
            (),
        ),
    )
}

_DIGITS = re.compile(r"\d+")
_PHONE = re.compile(r"1[3-9]\d{9}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _unknown_items(items: Iterable[str]) -> list[str]:
    return [i for i in items if i not in ITEMS]


def fields_for(items: Iterable[str]) -> tuple[str, ...]:
    """The form's fields for ``items``, each once, in the form's order. The township is always
    asked: it decides which department each item goes to, even where none of them is sent it."""
    wanted = {f for i in items for f in ITEMS[i].fields}
    if wanted:
        wanted.add("township")
    return tuple(f for f in FIELDS if f in wanted)


def materials_for(items: Iterable[str], service_type: str) -> tuple[str, ...]:
    """The materials ``items`` need for this ``service_type``, each once, in the list's order."""
    wanted: set[str] = set()
    for code in items:
        item = ITEMS[code]
        wanted.update(item.materials)
        wanted.update(item.conscript_materials if service_type == "conscript" else ())
        wanted.update(item.career_materials if service_type in ("nco", "officer") else ())
    return tuple(m for m in MATERIALS if m in wanted)


def _item_materials(code: str, service_type: str) -> tuple[str, ...]:
    return materials_for((code,), service_type)


def _problem(key: str, zh: str, en: str) -> Problem:
    spec = FIELDS.get(key) or MATERIALS.get(key)
    label = spec.zh if spec is not None else key
    return Problem(key, label, zh, en)


def _date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _check_field(key: str, value: str, today: dt.date) -> list[Problem]:
    spec = FIELDS[key]
    if _CONTROL.search(value):
        return [_problem(key, "含有不可见的控制字符，请删除后重填", "contains control characters")]
    if len(value) > spec.max_len:
        return [
            _problem(key, f"不能超过 {spec.max_len} 个字", f"at most {spec.max_len} characters")
        ]
    if key == "id_number":
        check = check_id_number(value, today=today)
        return [_problem(key, p.zh, p.en) for p in check.problems]
    if key == "phone" and not _PHONE.fullmatch(value):
        return [_problem(key, "应为 11 位手机号码，以 1 开头", "must be an 11-digit mobile number")]
    if key == "township":
        try:
            parse_township(value)
        except ConfigError:
            return [
                _problem(
                    key, "应为 12 位乡镇（街道）代码，如 371002001000", "a 12-digit township code"
                )
            ]
    if key == "bank_account":
        if not _DIGITS.fullmatch(value) or not 16 <= len(value) <= 19:
            return [_problem(key, "应为 16 至 19 位数字", "must be 16 to 19 digits")]
        if not luhn.is_valid(value):
            return [
                _problem(
                    key,
                    "校验位不对，请对照银行卡逐位核对",
                    "check digit wrong; compare with the card",
                )
            ]
    if spec.kind == "choice" and value not in {c[0] for c in spec.choices}:
        return [_problem(key, "请从列表中选择", "choose one of the list")]
    if spec.kind == "date":
        day = _date(value)
        if day is None:
            return [_problem(key, "日期格式应为 年-月-日，如 2024-09-01", "a date as YYYY-MM-DD")]
        if day > today:
            return [_problem(key, "不能晚于今天", "cannot be after today")]
    return []


def check_application(
    items: Iterable[str], fields: Mapping[str, str], *, today: dt.date, draft: bool = False
) -> tuple[Problem, ...]:
    """Every problem of an application: unknown or no items, unknown fields, each field's rule,
    and the rules between fields. A ``draft`` may leave fields empty; a submission may not."""
    items = tuple(items)
    problems: list[Problem] = []
    unknown = _unknown_items(items)
    if unknown:
        problems.append(
            Problem("items", "办理事项", f"没有这些事项：{'、'.join(unknown)}", "unknown items")
        )
        return tuple(problems)
    if not items and not draft:
        problems.append(Problem("items", "办理事项", "请至少选择一项", "choose at least one item"))
    needed = fields_for(items)
    for key in fields:
        if key not in FIELDS:
            problems.append(Problem(key, key, "表中没有这一栏", "no such field on the form"))
    for key in needed:
        value = fields.get(key, "").strip()
        if not value:
            if not draft:
                problems.append(_problem(key, "必填，请填写", "required"))
            continue
        problems.extend(_check_field(key, value, today))
    problems.extend(_between_fields(items, fields, today))
    return tuple(problems)


def _between_fields(
    items: tuple[str, ...], fields: Mapping[str, str], today: dt.date
) -> list[Problem]:
    out: list[Problem] = []
    enlisted = _date(fields.get("enlisted_on", "").strip())
    discharged = _date(fields.get("discharged_on", "").strip())
    if enlisted and discharged and enlisted >= discharged:
        out.append(_problem("discharged_on", "应晚于入伍时间", "must be after the enlistment date"))
    number = fields.get("id_number", "").strip()
    if enlisted and number and not check_id_number(number, today=today).problems:
        born = birth_date_of(number)
        if (enlisted.year - born.year) - (
            (enlisted.month, enlisted.day) < (born.month, born.day)
        ) < 16:
            out.append(
                _problem(
                    "enlisted_on", "入伍时应年满 16 周岁，请核对入伍时间", "under 16 when enlisted"
                )
            )
    if "grant" in items and fields.get("placement", "") not in ("", "self_employed"):
        out.append(
            _problem(
                "placement",
                "一次性经济补助金只发给自主就业的退役士兵；请改选安置方式或去掉这一事项",
                "the grant is for self-employed soldiers only",
            )
        )
    return out


def sniff_material_type(content: bytes) -> str | None:
    """The content type told by the first bytes, or None if it is none of PDF, JPEG, PNG."""
    if content.startswith(_PNG):
        return "image/png"
    for magic, kind in _MAGIC:
        if content.startswith(magic):
            return kind
    return None


def check_material(key: str, content: bytes, declared_type: str = "") -> str:
    """The content type of a material that may be stored; raises :class:`ApplicationError`
    naming what is wrong (unknown material, empty, oversize, not a PDF/JPEG/PNG, or a type other
    than it says)."""
    if key not in MATERIALS:
        raise ApplicationError([Problem(key, key, "没有这种材料", "no such material")])
    if not content:
        raise ApplicationError([_problem(key, "文件是空的，请重新选择", "the file is empty")])
    if len(content) > MATERIAL_MAX_BYTES:
        mib = MATERIAL_MAX_BYTES // (1024 * 1024)
        raise ApplicationError(
            [_problem(key, f"文件超过 {mib} MB，请压缩或拍得小一些再传", f"larger than {mib} MiB")]
        )
    kind = sniff_material_type(content)
    if kind is None:
        raise ApplicationError(
            [_problem(key, "只收 PDF、JPG 或 PNG 文件", "only PDF, JPEG or PNG files are taken")]
        )
    if declared_type and declared_type.split(";")[0].strip() != kind:
        raise ApplicationError(
            [
                _problem(
                    key,
                    f"文件内容是 {kind}，与声明的 {declared_type} 不符",
                    "content type mismatch",
                )
            ]
        )
    return kind


def payload_for_item(
    code: str, fields: Mapping[str, str], materials: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """What item ``code``'s department receives: its fields and its materials (key → digest)
    and nothing else. A material it needs that is missing is an error, never skipped."""
    item = ITEMS[code]
    sent_fields = {k: fields[k] for k in item.fields if fields.get(k)}
    needed = _item_materials(code, fields.get("service_type", ""))
    missing = [m for m in needed if m not in materials]
    if missing:
        raise ApplicationError([_problem(m, "尚未上传", "not uploaded yet") for m in missing])
    return sent_fields, {m: materials[m] for m in needed}
