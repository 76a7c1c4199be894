"""The departments that compare their records with ours (S-10, S-23), the columns of their
extracts, and the rule every row of an extract obeys.

Every extract has the common columns ``姓名`` (required), ``公民身份号码``, ``性别``, ``出生日期``,
``住址`` and, where the department knows it, ``乡镇代码`` (the 12-digit township code of the
person's residence); then the columns of its department (``DEPARTMENTS``). A department's
column that is also a field of our records names that field (``compares_to``), and the
comparison reports a disagreement on it.

Unlike the initial data, an ID number that is missing or wrong does not reject a row: linking
such rows by name, birth date, sex and address is what the comparison is for. It is kept with
``id_valid`` False. A row is rejected (``RowRejected`` with a stable ``code``) when it cannot be
linked at all (no name; neither a valid ID number nor a birth date and sex), when a value cannot
be read (a date, a sex, a choice outside its list), when it carries a classified designation
(S-03), or when it lies outside the extract's region. Sans-I/O: ``today`` is a parameter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from muster.classified import find_designation
from muster.errors import ConfigError, MusterError
from muster.forms import date_rules
from muster.idnumbers import check_id_number, compact
from muster.initial_data import RowRejected, parse_date
from muster.regions import parse_township

__all__ = [
    "COMMON_COLUMNS",
    "DEPARTMENTS",
    "DepartmentPerson",
    "DepartmentSpec",
    "ExtractColumn",
    "ExtractHeaderError",
    "check_headers",
    "department",
    "headers_for",
    "parse_extract_row",
    "region_of",
]


class ExtractHeaderError(ConfigError):
    """An extract's header row is not the one its department writes: a required column is
    missing, a column is unknown, or the columns are another department's. Nothing is read."""


@dataclass(frozen=True, slots=True)
class ExtractColumn:
    key: str
    header: str
    kind: str = "text"  # text | date | choice
    required: bool = False
    choices: tuple[str, ...] = ()
    compares_to: str | None = None  # the field of our records it is compared with


@dataclass(frozen=True, slots=True)
class DepartmentSpec:
    kind: str
    name: str  # the department as operators call it
    columns: tuple[ExtractColumn, ...]  # its own, after the common ones

    @property
    def all_columns(self) -> tuple[ExtractColumn, ...]:
        return COMMON_COLUMNS + self.columns

    @property
    def label(self) -> str:
        return f"{self.name}（{self.kind}）"


COMMON_COLUMNS: tuple[ExtractColumn, ...] = (
    ExtractColumn("name", "姓名", required=True, compares_to="name"),
    ExtractColumn("id_number", "公民身份号码", required=True, compares_to="id_number"),
    ExtractColumn("sex", "性别", required=True, compares_to="sex"),
    ExtractColumn("birth_date", "出生日期", "date", required=True, compares_to="birth_date"),
    ExtractColumn("address", "住址", required=True, compares_to="address"),
    ExtractColumn("township_code", "乡镇代码"),
)
# "required" above means the header must be there; a cell of the ID number, sex, birth date
# or address may still be blank (see parse_extract_row).

_INSURED = ("参保缴费", "暂停缴费", "终止参保")


def _spec(kind: str, name: str, *columns: ExtractColumn) -> DepartmentSpec:
    return DepartmentSpec(kind, name, columns)


DEPARTMENTS: dict[str, DepartmentSpec] = {
    d.kind: d
    for d in (
        _spec(
            "household",
            "公安户籍",
            ExtractColumn("household_number", "户号", required=True),
            ExtractColumn("household_status", "户籍状态", "choice", True, ("正常", "迁出", "注销")),
            ExtractColumn("ethnicity_name", "民族"),
        ),
        _spec(
            "civil_affairs",
            "民政",
            ExtractColumn(
                "assistance_type",
                "救助类型",
                "choice",
                True,
                ("最低生活保障", "特困人员供养", "临时救助", "低保边缘"),
            ),
            ExtractColumn("assistance_since", "救助起始日期", "date"),
        ),
        _spec(
            "social_security",
            "人力资源和社会保障",
            ExtractColumn("insurance_status", "参保状态", "choice", True, _INSURED),
            ExtractColumn(
                "pension_type",
                "养老金类型",
                "choice",
                True,
                ("企业职工基本养老保险", "城乡居民基本养老保险", "机关事业单位养老保险", "无"),
            ),
        ),
        _spec(
            "medical_insurance",
            "医疗保障",
            ExtractColumn("insurance_status", "参保状态", "choice", True, _INSURED),
            ExtractColumn(
                "scheme", "险种", "choice", True, ("职工基本医疗保险", "城乡居民基本医疗保险")
            ),
        ),
        _spec(
            "housing",
            "住房和城乡建设",
            ExtractColumn(
                "housing_support",
                "住房保障类型",
                "choice",
                True,
                ("公租房", "租赁补贴", "棚户区改造", "农村危房改造"),
            ),
            ExtractColumn("property_address", "房屋地址"),
        ),
        _spec(
            "petitions",
            "信访",
            ExtractColumn("petition_number", "信访件编号", required=True),
            ExtractColumn("registered_on", "登记日期", "date", True),
        ),
        _spec(
            "military_service",
            "兵役",
            ExtractColumn(
                "enlistment_date", "入伍时间", "date", True, compares_to="enlistment_date"
            ),
            ExtractColumn("discharge_date", "退役时间", "date", compares_to="discharge_date"),
        ),
        _spec(
            "funeral",
            "民政殡葬",
            ExtractColumn("death_date", "死亡日期", "date", True),
            ExtractColumn("funeral_home", "殡仪馆"),
        ),
    )
}


def department(kind: str) -> DepartmentSpec:
    try:
        return DEPARTMENTS[kind]
    except KeyError:
        raise ConfigError(f"没有“{kind}”这个部门类别：请用 {'、'.join(DEPARTMENTS)} 之一") from None


def _headers_of(spec: DepartmentSpec) -> dict[str, ExtractColumn]:
    return {c.header: c for c in spec.all_columns}


def check_headers(kind: str, headers: Sequence[str], *, where: str = "") -> None:
    """Raise ``ExtractHeaderError`` unless ``headers`` are the department's (in any order)."""
    spec = department(kind)
    mine = _headers_of(spec)
    given = [str(h).strip() for h in headers if h is not None and str(h).strip()]
    prefix = f"{where}：" if where else ""
    repeated = sorted({h for h in given if given.count(h) > 1})
    if repeated:
        raise ExtractHeaderError(
            f"{prefix}表头中的列 {'、'.join(repeated)} 出现多次：每列只能出现一次；未导入任何数据"
        )
    unknown = [h for h in given if h not in mine]
    missing = [c.header for c in spec.all_columns if c.required and c.header not in given]
    if not unknown and not missing:
        return
    own = set(c.header for c in spec.columns)
    others = [
        other
        for other in DEPARTMENTS.values()
        if other.kind != kind
        and {c.header for c in other.columns} - own
        and {c.header for c in other.columns if c.required} - own <= set(given)
    ]
    if others:
        names = "、".join(o.label for o in others)
        raise ExtractHeaderError(
            f"{prefix}这是{names}的列（{'、'.join(unknown)}），不是{spec.label}的数据："
            f"请用 --department {others[0].kind} 导入，或换成{spec.name}的文件；未导入任何数据"
        )
    parts = []
    if missing:
        parts.append(f"缺少必需的列 {'、'.join(missing)}")
    if unknown:
        parts.append(f"有{spec.name}不使用的列 {'、'.join(unknown)}")
    allowed = "、".join(c.header for c in spec.all_columns)
    raise ExtractHeaderError(
        f"{prefix}{spec.label}的表头{'，'.join(parts)}：表头应为 {allowed}"
        "（乡镇代码及非必需列可省略）；未导入任何数据"
    )


@dataclass(frozen=True, slots=True)
class DepartmentPerson:
    """One accepted row of an extract. ``id_number`` is "" when blank; ``sex`` and
    ``birth_date`` come from a valid ID number when the row left them blank."""

    name: str
    id_number: str
    id_valid: bool
    sex: str  # "1" / "2"
    birth_date: str  # ISO date
    address: str
    township_code: str  # "" when the department does not know it
    extra: dict[str, str] = field(default_factory=dict)  # the department's own columns, by key

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "id_number": self.id_number,
            "id_valid": self.id_valid,
            "sex": self.sex,
            "birth_date": self.birth_date,
            "address": self.address,
            "township_code": self.township_code,
            "extra": dict(sorted(self.extra.items())),
        }


def region_of(person: DepartmentPerson) -> str:
    """Where the person lives as far as the row tells: the township, else the county that
    issued a valid ID number, else ""."""
    if person.township_code:
        return person.township_code
    return person.id_number[:6] if person.id_valid else ""


def _text(value: object) -> str:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value if value is not None else "").strip()


def _check_date(column: ExtractColumn, text: str, birth: dt.date | None, today: dt.date) -> str:
    day = parse_date(text, column.header)
    problem = date_rules.not_after_today(column.key, column.header, day, today)
    if problem is None and birth is not None and column.key != "birth_date" and day < birth:
        raise RowRejected("date", f"“{column.header}”{day} 早于出生日期 {birth}：请核对")
    if problem is not None:
        raise RowRejected("date", problem.message)
    return day.isoformat()


def parse_extract_row(
    kind: str, raw: Mapping[str, object], *, today: dt.date, region_prefix: str = ""
) -> DepartmentPerson:
    """Check one row of ``kind``'s extract; raises ``RowRejected`` with the first problem."""
    spec = department(kind)
    by_header = _headers_of(spec)
    row: dict[str, str] = {}
    for header, value in raw.items():
        column = by_header.get(str(header).strip()) if header is not None else None
        if column is not None:
            row[column.key] = _text(value)
    for key, value in row.items():
        finding = find_designation(value, next(c.header for c in spec.all_columns if c.key == key))
        if finding:
            raise RowRejected("classified", finding.message)
    name = row.get("name", "")
    if not name:
        raise RowRejected("missing", "缺少“姓名”：该列必须填写")
    if len(name) > 64:
        raise RowRejected("name", "“姓名”超过64个字符，请核对")
    sex_text = row.get("sex", "")
    sex = {"男": "1", "女": "2", "1": "1", "2": "2"}.get(sex_text, "")
    if sex_text and not sex:
        raise RowRejected("sex", f"“性别”的“{sex_text}”无效：请填写 男 或 女")
    birth_text = row.get("birth_date", "")
    birth = parse_date(birth_text, "出生日期") if birth_text else None
    number = compact(row["id_number"]) if row.get("id_number") else ""
    id_valid = False
    if number:
        checked = check_id_number(number, today=today)
        id_valid = not checked.problems
    if id_valid:
        born = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
        birth = birth or born
        sex = sex or ("1" if int(number[16]) % 2 else "2")
    if birth is None or not sex:
        lacking = "、".join(h for h, v in (("出生日期", birth), ("性别", sex)) if not v)
        raise RowRejected(
            "missing",
            f"没有有效的公民身份号码时必须填写“{lacking}”，否则无法比对：请补齐后重新导入",
        )
    birth_iso = _check_date(COMMON_COLUMNS[3], birth.isoformat(), None, today)
    township = row.get("township_code", "")
    if township:
        try:
            township = parse_township(township).code
        except MusterError:
            raise RowRejected(
                "township", f"“乡镇代码”的“{township}”不是12位乡镇代码：请写成如 370902001000"
            ) from None
    extra: dict[str, str] = {}
    for column in spec.columns:
        value = row.get(column.key, "")
        if not value:
            if column.required:
                raise RowRejected("missing", f"缺少“{column.header}”：{spec.name}的该列必须填写")
            continue
        if column.kind == "date":
            value = _check_date(column, value, birth, today)
        elif column.kind == "choice" and value not in column.choices:
            raise RowRejected(
                column.key,
                f"“{column.header}”的“{value}”无效：请填写 {'、'.join(column.choices)} 之一",
            )
        extra[column.key] = value
    person = DepartmentPerson(
        name=name,
        id_number=number,
        id_valid=id_valid,
        sex=sex,
        birth_date=birth_iso,
        address=row.get("address", ""),
        township_code=township,
        extra=extra,
    )
    _check_region(person, region_prefix)
    return person


def _check_region(person: DepartmentPerson, prefix: str) -> None:
    if not prefix:
        return
    region = region_of(person)
    if not region:
        raise RowRejected(
            "region",
            f"无法确定此人是否在本数据覆盖的区域 {prefix} 内：没有“乡镇代码”，也没有有效的"
            "公民身份号码；请填写乡镇代码",
        )
    if len(region) < len(prefix) and prefix.startswith(region):
        raise RowRejected(
            "region",
            f"只凭公民身份号码（{region}）无法确定此人是否在区域 {prefix} 内：请填写“乡镇代码”",
        )
    if not region.startswith(prefix):
        raise RowRejected(
            "region",
            f"此人在 {region}，不在本数据覆盖的区域 {prefix} 内：请交给该地区比对，或核对乡镇代码",
        )


def headers_for(kind: str) -> list[str]:
    """The header row of ``kind``'s extract, as the simulator writes it."""
    return [c.header for c in department(kind).all_columns]
