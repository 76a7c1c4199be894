"""The form of each of the 12 categories (S-01, S-02), as data.

A form is a versioned list of fields (type, code list, required or not) and the names of the
cross-field rules that apply to it. A record names its form version; the device's console and
the controller's ingest check the record against the same definition. A new version is a new
entry in ``FORMS``: older versions stay so that records sealed with them still validate.
Sans-I/O data only; checking lives in :mod:`muster.forms.validation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from muster.forms.codelists import CODE_LISTS

__all__ = [
    "CURRENT_VERSION",
    "FORMS",
    "FieldDef",
    "FormDefinition",
    "current_form",
    "form_for",
]

Kind = Literal["text", "textarea", "date", "choice", "multi", "number", "phone"]
CURRENT_VERSION: Final = "1"


@dataclass(frozen=True, slots=True)
class FieldDef:
    key: str
    label: str
    kind: Kind
    section: str
    required: bool = False
    codes: str | None = None  # a key of CODE_LISTS, for choice and multi
    max_length: int = 100
    minimum: float | None = None
    maximum: float | None = None
    hint: str = ""

    @property
    def options(self) -> dict[str, str]:
        return CODE_LISTS[self.codes] if self.codes else {}

    @property
    def free_text(self) -> bool:
        return self.kind in ("text", "textarea")


@dataclass(frozen=True, slots=True)
class FormDefinition:
    category: str
    version: str
    title: str
    fields: tuple[FieldDef, ...]
    relation_required: bool = False
    rules: tuple[str, ...] = ()
    # Red Army soldiers joined as children; everyone else at the legal age.
    min_enlistment_age: int = 16
    by_key: dict[str, FieldDef] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_key", {f.key: f for f in self.fields})

    @property
    def schema_version(self) -> str:
        return f"{self.category}/{self.version}"

    @property
    def sections(self) -> list[tuple[str, list[FieldDef]]]:
        out: dict[str, list[FieldDef]] = {}
        for f in self.fields:
            out.setdefault(f.section, []).append(f)
        return list(out.items())


SECTIONS: Final[dict[str, str]] = {
    "basic": "基本信息",
    "service": "服役情况",
    "category": "类别信息",
    "family": "军人信息",
    "living": "生活状况",
    "benefits": "保障待遇",
    "requests": "困难和诉求",
}

_UNIT_HINT = "只填军种或大单位（如“陆军”“武警部队”），不填番号和部队代号"


def _contact() -> tuple[FieldDef, ...]:
    return (
        FieldDef("political_status", "政治面貌", "choice", "basic", True, "political_status"),
        FieldDef("household_registration", "户籍地", "text", "basic", True, max_length=120),
        FieldDef("address", "现住址", "text", "basic", True, max_length=120),
        FieldDef("phone", "联系电话", "phone", "basic", hint="手机11位或带区号的固定电话"),
    )


def _service(discharge_label: str = "退役时间") -> tuple[FieldDef, ...]:
    return (
        FieldDef("enlistment_date", "入伍时间", "date", "service", True),
        FieldDef("discharge_date", discharge_label, "date", "service", True),
        FieldDef("rank_class", "服役期间级别", "choice", "service", True, "rank_class"),
        FieldDef("service_unit", "服役单位", "text", "service", max_length=60, hint=_UNIT_HINT),
        FieldDef("service_number", "军人证件号", "text", "service", max_length=30),
    )


def _living() -> tuple[FieldDef, ...]:
    return (
        FieldDef("employment_status", "就业状况", "choice", "living", True, "employment_status"),
        FieldDef("employer", "工作单位", "text", "living", max_length=80),
        *_housing(),
    )


def _housing() -> tuple[FieldDef, ...]:
    return (
        FieldDef("housing", "住房情况", "choice", "living", True, "housing"),
        FieldDef("housing_area", "住房面积（平方米）", "number", "living", minimum=1, maximum=2000),
    )


def _benefits() -> tuple[FieldDef, ...]:
    return (
        FieldDef("insurances", "参加社会保险", "multi", "benefits", codes="insurances"),
        FieldDef("benefits", "享受优抚和救助待遇", "multi", "benefits", codes="benefits"),
        FieldDef(
            "monthly_allowance",
            "定期抚恤补助（元/月）",
            "number",
            "benefits",
            minimum=0,
            maximum=100_000,
        ),
    )


def _requests() -> tuple[FieldDef, ...]:
    return (
        FieldDef("difficulties", "困难和问题", "textarea", "requests", max_length=500),
        FieldDef(
            "main_requests",
            "主要诉求",
            "textarea",
            "requests",
            max_length=500,
            hint="用本人的话记录",
        ),
    )


def _disability(certificate: str) -> tuple[FieldDef, ...]:
    return (
        FieldDef("disability_grade", "残疾等级", "choice", "category", True, "disability_grade"),
        FieldDef("disability_nature", "残疾性质", "choice", "category", True, "disability_nature"),
        FieldDef("disability_certificate", certificate, "text", "category", True, max_length=30),
    )


def _soldier(death_label: str | None, certificate: str | None) -> tuple[FieldDef, ...]:
    out = [FieldDef("soldier_name", "军人姓名", "text", "family", True, max_length=64)]
    if death_label:
        out.append(FieldDef("soldier_death_date", death_label, "date", "family", True))
    if certificate:
        out.append(
            FieldDef("death_certificate", certificate, "text", "family", True, max_length=30)
        )
    return tuple(out)


_COMMON_RULES = ("dates_not_future", "employer_when_employed", "housing_area_when_owned")
_SERVICE_RULES = (*_COMMON_RULES, "service_dates_in_order", "enlistment_age")


def _form(
    category: str,
    title: str,
    fields: tuple[FieldDef, ...],
    rules: tuple[str, ...],
    *,
    family: bool = False,
    min_enlistment_age: int = 16,
) -> FormDefinition:
    return FormDefinition(
        category=category,
        version=CURRENT_VERSION,
        title=title,
        fields=fields,
        relation_required=family,
        rules=rules,
        min_enlistment_age=min_enlistment_age,
    )


_V1: Final[tuple[FormDefinition, ...]] = (
    _form(
        "transferred_officer",
        "军队转业干部信息采集表",
        (
            *_contact(),
            *_service("转业时间"),
            FieldDef("transfer_mode", "转业安置方式", "choice", "category", True, "transfer_mode"),
            *_living(),
            *_benefits(),
            *_requests(),
        ),
        _SERVICE_RULES,
    ),
    _form(
        "retired_soldier",
        "退役士兵信息采集表",
        (
            *_contact(),
            *_service(),
            FieldDef(
                "resettlement_mode", "安置方式", "choice", "category", True, "resettlement_mode"
            ),
            *_living(),
            *_benefits(),
            *_requests(),
        ),
        _SERVICE_RULES,
    ),
    _form(
        "retired_cadre",
        "军队离退休干部和退休士官信息采集表",
        (
            *_contact(),
            *_service("离退休时间"),
            FieldDef(
                "retirement_type", "离退休类别", "choice", "category", True, "retirement_type"
            ),
            FieldDef("managing_agency", "安置管理单位", "text", "category", max_length=80),
            *_housing(),
            *_benefits(),
            *_requests(),
        ),
        (*_SERVICE_RULES,),
    ),
    _form(
        "non_military_staff",
        "无军籍退休退职职工信息采集表",
        (
            *_contact(),
            FieldDef("former_employer", "原工作单位", "text", "category", True, max_length=80),
            FieldDef("work_start_date", "参加工作时间", "date", "category"),
            FieldDef("retirement_date", "退休退职时间", "date", "category", True),
            *_housing(),
            *_benefits(),
            *_requests(),
        ),
        (*_COMMON_RULES, "work_dates_in_order"),
    ),
    _form(
        "red_army_veteran",
        "红军老战士信息采集表",
        (
            *_contact(),
            FieldDef("enlistment_date", "参加红军时间", "date", "service", True),
            FieldDef("red_army_group", "人员类别", "choice", "category", True, "red_army_group"),
            FieldDef("service_unit", "服役单位", "text", "service", max_length=60, hint=_UNIT_HINT),
            FieldDef("caregiver", "照料人", "text", "living", max_length=64),
            *_housing(),
            *_benefits(),
            *_requests(),
        ),
        (*_COMMON_RULES, "service_dates_in_order", "enlistment_age"),
        min_enlistment_age=10,
    ),
    _form(
        "demobilised_soldier",
        "复员军人信息采集表",
        (*_contact(), *_service("复员时间"), *_living(), *_benefits(), *_requests()),
        _SERVICE_RULES,
    ),
    _form(
        "disabled_soldier",
        "残疾军人信息采集表",
        (
            *_contact(),
            *_service(),
            *_disability("残疾军人证号"),
            *_living(),
            *_benefits(),
            *_requests(),
        ),
        _SERVICE_RULES,
    ),
    _form(
        "disabled_militia",
        "伤残民兵民工信息采集表",
        (
            *_contact(),
            FieldDef("injury_date", "致残时间", "date", "category", True),
            *_disability("伤残人员证号"),
            *_living(),
            *_benefits(),
            *_requests(),
        ),
        (*_COMMON_RULES, "injury_after_birth"),
    ),
    _form(
        "martyr_family",
        "烈士遗属信息采集表",
        (
            *_contact(),
            *_soldier("牺牲时间", "烈士证明书编号"),
            *_living(),
            *_benefits(),
            *_requests(),
        ),
        _COMMON_RULES,
        family=True,
    ),
    _form(
        "duty_death_family",
        "因公牺牲军人遗属信息采集表",
        (
            *_contact(),
            *_soldier("牺牲时间", "因公牺牲军人证明书编号"),
            *_living(),
            *_benefits(),
            *_requests(),
        ),
        _COMMON_RULES,
        family=True,
    ),
    _form(
        "illness_death_family",
        "病故军人遗属信息采集表",
        (
            *_contact(),
            *_soldier("病故时间", "病故军人证明书编号"),
            *_living(),
            *_benefits(),
            *_requests(),
        ),
        _COMMON_RULES,
        family=True,
    ),
    _form(
        "serving_soldier_family",
        "现役军人家属信息采集表",
        (
            *_contact(),
            *_soldier(None, None),
            FieldDef(
                "soldier_service",
                "军人所在军种",
                "text",
                "family",
                True,
                max_length=30,
                hint=_UNIT_HINT,
            ),
            FieldDef("soldier_enlistment_date", "军人入伍时间", "date", "family"),
            *_living(),
            *_benefits(),
            *_requests(),
        ),
        _COMMON_RULES,
        family=True,
    ),
)

FORMS: Final[dict[tuple[str, str], FormDefinition]] = {(f.category, f.version): f for f in _V1}


def form_for(category: str, version: str) -> FormDefinition | None:
    """The definition a record names, or None when this software does not know it."""
    return FORMS.get((category, version))


def current_form(category: str) -> FormDefinition:
    """The form a clerk fills today for ``category``; KeyError for an unknown category."""
    return FORMS[(category, CURRENT_VERSION)]
