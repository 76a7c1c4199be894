"""The annual confirmation of pension receivers (S-20..S-23): the rules, once, for both sides.

Sans-I/O and clock-free: every function takes the dates it judges by. What is here:

- who is in scope: the pension categories of S-20 (:class:`PensionCategory`);
- a person's status as a transition table (:data:`TRANSITIONS`): to confirm → confirmed (how,
  when, by whom, on which device) | unreachable (publicly noticed) → stop pending → stopped →
  restored; a death ends every status;
- age bands and the home-visit quotas of S-21 (100 % of 80+, 80 % of 70–79, 60 % under 70
  confirmed by home visit; every band 100 % confirmed), and whether a band is behind;
- the campaign's phases with their dates (S-22), configurable per campaign;
- the 60-day stop ("payments stop from the next month"), restoration with the months owed,
  and the over-payment after a death (monthly amount × months paid after the month of death);
- names partly masked for notice boards, and the seeded spot-check sample.

Money is in fen (integers); a month is the ``date`` of its first day.

Over 400 lines because it is the campaign's one rule book, pure functions of dates passed in
(statuses, phases, age bands and quotas, the 60-day stop, restoration, over-payment), used by
every channel and the centre alike.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Final, Protocol

from muster.errors import ConfigError

__all__ = [
    "AGE_BANDS",
    "CONFIRMED_STATUSES",
    "HOME_VISIT_QUOTA",
    "NOTICE_DAYS_BEFORE_STOP",
    "PENSION_CATEGORY_NAMES",
    "PHASE_NAMES",
    "PHASE_ZH",
    "TRANSITIONS",
    "AgeBand",
    "Channel",
    "ConfirmationError",
    "Event",
    "FaceResult",
    "FaceVerdict",
    "FaceVerifier",
    "PensionCategory",
    "Phase",
    "Phases",
    "Status",
    "add_months",
    "age_band",
    "age_on",
    "default_phases",
    "expected_by",
    "is_report_day",
    "mask_name",
    "month_of",
    "months_between",
    "months_owed",
    "overpayment",
    "parse_amount_fen",
    "parse_category",
    "quota_behind",
    "spot_sample",
    "status_zh",
    "stop_eligible_on",
    "stop_from_month",
    "transition",
    "visits_required",
]


class ConfirmationError(ConfigError):
    """A confirmation step refused: a transition the status does not allow, a stop before its
    60 days, a bad amount, date or category. The message says what and what to do."""


class PensionCategory(StrEnum):
    """Who receives a regular state pension or subsidy as a beneficiary (S-20)."""

    DISABLED_SOLDIER = "disabled_soldier"
    DISABLED_POLICE = "disabled_police"
    DISABLED_OFFICIAL = "disabled_official"
    DISABLED_FIREFIGHTER = "disabled_firefighter"
    DISABLED_RESERVIST = "disabled_reservist"
    DISABLED_MILITIA = "disabled_militia"
    MARTYR_FAMILY = "martyr_family"
    DUTY_DEATH_FAMILY = "duty_death_family"
    ILLNESS_DEATH_FAMILY = "illness_death_family"
    OLD_DEMOBILISED = "old_demobilised"
    ILL_RETURNED_VETERAN = "ill_returned_veteran"
    WAR_AND_TEST_VETERAN = "war_and_test_veteran"
    RURAL_VETERAN_60 = "rural_veteran_60"
    MARTYR_OLD_CHILD = "martyr_old_child"
    OTHER = "other"


PENSION_CATEGORY_NAMES: Final[dict[PensionCategory, str]] = {
    PensionCategory.DISABLED_SOLDIER: "残疾军人",
    PensionCategory.DISABLED_POLICE: "伤残人民警察",
    PensionCategory.DISABLED_OFFICIAL: "伤残国家机关工作人员",
    PensionCategory.DISABLED_FIREFIGHTER: "残疾消防救援人员",
    PensionCategory.DISABLED_RESERVIST: "伤残预备役人员",
    PensionCategory.DISABLED_MILITIA: "伤残民兵民工",
    PensionCategory.MARTYR_FAMILY: "烈士遗属",
    PensionCategory.DUTY_DEATH_FAMILY: "因公牺牲军人遗属",
    PensionCategory.ILLNESS_DEATH_FAMILY: "病故军人遗属",
    PensionCategory.OLD_DEMOBILISED: "在乡老复员军人",
    PensionCategory.ILL_RETURNED_VETERAN: "带病回乡退伍军人",
    PensionCategory.WAR_AND_TEST_VETERAN: "参战参试退役人员",
    PensionCategory.RURAL_VETERAN_60: "年满60周岁农村籍退役士兵",
    PensionCategory.MARTYR_OLD_CHILD: "烈士老年子女",
    PensionCategory.OTHER: "其他享受国家定期抚恤补助优抚对象",
}
_CATEGORY_BY_NAME: Final = {name: c for c, name in PENSION_CATEGORY_NAMES.items()}


def parse_category(text: str) -> PensionCategory:
    """A category written as its code (``disabled_soldier``) or its Chinese name (残疾军人)."""
    value = text.strip()
    if value in _CATEGORY_BY_NAME:
        return _CATEGORY_BY_NAME[value]
    try:
        return PensionCategory(value)
    except ValueError:
        raise ConfirmationError(
            f"优抚对象类别“{value[:40]}”不在定期抚恤补助范围内；请填写以下之一："
            + "、".join(PENSION_CATEGORY_NAMES.values())
        ) from None


def parse_amount_fen(text: Any) -> int:
    """A monthly amount in yuan (``1234.5``, ``"1,234.50"``) as fen; refused when it is not a
    positive amount with at most two decimals or is over 100,000 yuan a month."""
    raw = str(text if text is not None else "").strip().replace(",", "").replace("，", "")
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        raise ConfirmationError(f"月发放金额“{raw[:20]}”不是数字；请写成元，如 1234.50") from None
    if not amount.is_finite() or amount <= 0 or amount > 100_000:
        raise ConfirmationError(f"月发放金额 {raw[:20]} 应大于 0 且不超过 100000 元")
    fen = amount * 100
    if fen != fen.to_integral_value():
        raise ConfirmationError(f"月发放金额 {raw[:20]} 最多两位小数（到分）")
    return int(fen)


# ---- status machine -------------------------------------------------------------------------


class Status(StrEnum):
    TO_CONFIRM = "to_confirm"
    CONFIRMED = "confirmed"
    UNREACHABLE = "unreachable"  # on the public notice, not yet reached
    STOP_PENDING = "stop_pending"  # 60 days passed; awaiting the county's approval
    STOPPED = "stopped"
    RESTORED = "restored"
    DECEASED = "deceased"


class Event(StrEnum):
    CONFIRM = "confirm"
    NOTICE = "notice"
    PROPOSE_STOP = "propose_stop"
    APPROVE_STOP = "approve_stop"
    RESTORE = "restore"
    DEATH = "death"


class Channel(StrEnum):
    HOME_VISIT = "home_visit"
    STATION = "station"
    SELF_SERVICE = "self_service"


class FaceResult(StrEnum):
    MATCH = "match"
    NO_MATCH = "no_match"
    PENDING = "pending"  # a selfie stored, no face module has judged it yet
    MANUAL = "manual"  # a clerk checked by hand, with a reason


TRANSITIONS: Final[dict[tuple[Status, Event], Status]] = {
    (Status.TO_CONFIRM, Event.CONFIRM): Status.CONFIRMED,
    (Status.TO_CONFIRM, Event.NOTICE): Status.UNREACHABLE,
    (Status.UNREACHABLE, Event.CONFIRM): Status.CONFIRMED,
    (Status.UNREACHABLE, Event.PROPOSE_STOP): Status.STOP_PENDING,
    (Status.STOP_PENDING, Event.CONFIRM): Status.CONFIRMED,
    (Status.STOP_PENDING, Event.APPROVE_STOP): Status.STOPPED,
    (Status.STOPPED, Event.RESTORE): Status.RESTORED,
    # A spot check confirms again; the status stays what it was.
    (Status.CONFIRMED, Event.CONFIRM): Status.CONFIRMED,
    (Status.RESTORED, Event.CONFIRM): Status.RESTORED,
} | {(s, Event.DEATH): Status.DECEASED for s in Status if s is not Status.DECEASED}

_STATUS_ZH: Final = {
    Status.TO_CONFIRM: "待确认",
    Status.CONFIRMED: "已确认",
    Status.UNREACHABLE: "公告中未联系上",
    Status.STOP_PENDING: "待审批停发",
    Status.STOPPED: "已停发",
    Status.RESTORED: "已恢复发放",
    Status.DECEASED: "已去世",
}
_EVENT_ZH: Final = {
    Event.CONFIRM: "确认",
    Event.NOTICE: "公告",
    Event.PROPOSE_STOP: "提请停发",
    Event.APPROVE_STOP: "批准停发",
    Event.RESTORE: "恢复发放",
    Event.DEATH: "登记死亡",
}
CONFIRMED_STATUSES: Final = frozenset({Status.CONFIRMED, Status.RESTORED})


def transition(status: Status, event: Event) -> Status:
    """The status after ``event``; ``ConfirmationError`` naming both when the table forbids it."""
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise ConfirmationError(
            f"状态为“{_STATUS_ZH[status]}”的对象不能{_EVENT_ZH[event]}"
            f" ({event.value} is not allowed from {status.value})"
        ) from None


# ---- ages, bands and quotas -----------------------------------------------------------------


class AgeBand(StrEnum):
    AGE_80_PLUS = "80+"
    AGE_70_79 = "70-79"
    UNDER_70 = "<70"


AGE_BANDS: Final = (AgeBand.AGE_80_PLUS, AgeBand.AGE_70_79, AgeBand.UNDER_70)
HOME_VISIT_QUOTA: Final[dict[AgeBand, float]] = {
    AgeBand.AGE_80_PLUS: 1.0,
    AgeBand.AGE_70_79: 0.8,
    AgeBand.UNDER_70: 0.6,
}


def age_on(birth: date, day: date) -> int:
    """Whole years of age on ``day`` (a 29 February birthday counts from 1 March)."""
    years = day.year - birth.year
    if (day.month, day.day) < (birth.month, birth.day):
        years -= 1
    return years


def age_band(birth: date, day: date) -> AgeBand:
    age = age_on(birth, day)
    if age >= 80:
        return AgeBand.AGE_80_PLUS
    if age >= 70:
        return AgeBand.AGE_70_79
    return AgeBand.UNDER_70


def visits_required(band: AgeBand, people: int) -> int:
    """How many of a band's ``people`` must be confirmed by home visit (rounded up)."""
    # Integer percent arithmetic: 0.8 * 5 must be 4, never 4.000000001 rounded up to 5.
    percent = round(HOME_VISIT_QUOTA[band] * 100)
    return -(-people * percent // 100)


def expected_by(required: int, day: date, phase: Phase) -> int:
    """How many of ``required`` should be done by ``day`` keeping pace through ``phase``
    (序时进度): none before it starts, all from its last day."""
    if day < phase.start:
        return 0
    if day >= phase.end:
        return required
    elapsed = (day - phase.start).days + 1
    return math.ceil(required * elapsed / phase.days)


def quota_behind(done: int, required: int, day: date, phase: Phase) -> bool:
    """A band is behind while what is done is short of the pace through the phase."""
    return done < expected_by(required, day, phase)


# ---- phases ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phase:
    """Days from ``start`` to ``end``, both included."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end


PHASE_NAMES: Final = ("publicity", "confirmation", "notice", "summary")
PHASE_ZH: Final = {
    "publicity": "政策宣传",
    "confirmation": "具体实施",
    "notice": "公告、停发",
    "summary": "总结上报",
}


@dataclass(frozen=True, slots=True)
class Phases:
    publicity: Phase
    confirmation: Phase
    notice: Phase
    summary: Phase

    def __post_init__(self) -> None:
        for name in PHASE_NAMES:
            phase: Phase = getattr(self, name)
            if phase.end < phase.start:
                raise ConfirmationError(f"阶段“{PHASE_ZH[name]}”的结束日早于开始日")
        if not self.publicity.end < self.confirmation.start:
            raise ConfirmationError("政策宣传阶段应在具体实施阶段开始前结束")
        if not self.confirmation.end < self.notice.start:
            raise ConfirmationError("公告阶段应在具体实施阶段结束后开始")
        if self.summary.start < self.confirmation.end:
            raise ConfirmationError("总结上报阶段应在具体实施阶段结束后开始")

    def active(self, day: date) -> tuple[str, ...]:
        """The phases ``day`` falls in (the summary overlaps the notice)."""
        return tuple(n for n in PHASE_NAMES if getattr(self, n).covers(day))

    def to_json(self) -> dict[str, list[str]]:
        return {
            n: [getattr(self, n).start.isoformat(), getattr(self, n).end.isoformat()]
            for n in PHASE_NAMES
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Phases:
        try:
            return cls(
                **{
                    n: Phase(date.fromisoformat(data[n][0]), date.fromisoformat(data[n][1]))
                    for n in PHASE_NAMES
                }
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ConfirmationError(f"阶段日期不完整或格式不对（应为 YYYY-MM-DD）：{exc}") from None

    def with_changes(self, changes: dict[str, tuple[date, date]]) -> Phases:
        unknown = set(changes) - set(PHASE_NAMES)
        if unknown:
            raise ConfirmationError(f"没有阶段 {sorted(unknown)}；阶段为 {list(PHASE_NAMES)}")
        data = {n: getattr(self, n) for n in PHASE_NAMES}
        data.update({n: Phase(*span) for n, span in changes.items()})
        return Phases(**data)


def default_phases(year: int) -> Phases:
    """S-22's calendar for the campaign of ``year``: publicity Oct 10–15, confirmation Oct 16 –
    Nov 30, public notice Dec 1 – Jan 29 of the next year, summary Dec 10–15."""
    return Phases(
        publicity=Phase(date(year, 10, 10), date(year, 10, 15)),
        confirmation=Phase(date(year, 10, 16), date(year, 11, 30)),
        notice=Phase(date(year, 12, 1), date(year + 1, 1, 29)),
        summary=Phase(date(year, 12, 10), date(year, 12, 15)),
    )


# ---- months, stop, restoration, over-payment -----------------------------------------------

NOTICE_DAYS_BEFORE_STOP: Final = 60


def month_of(day: date) -> date:
    return day.replace(day=1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def months_between(first: date, last: date) -> int:
    """Months from the month of ``first`` to the month of ``last`` (negative when before)."""
    return (last.year - first.year) * 12 + last.month - first.month


def stop_eligible_on(noticed_on: date) -> date:
    """The first day a stop may be proposed: 60 days of notice without contact."""
    return noticed_on + timedelta(days=NOTICE_DAYS_BEFORE_STOP)


def stop_from_month(approved_on: date) -> date:
    """Payments stop from the month after the county approves the stop."""
    return add_months(month_of(approved_on), 1)


def months_owed(stop_month: date, restored_on: date) -> int:
    """Months of back pay when payments stopped from ``stop_month`` are restored on
    ``restored_on``: every stopped month up to and including the month of restoration (regular
    payment resumes from the next month). A restoration before the stop took effect owes none."""
    return max(0, months_between(stop_month, restored_on) + 1)


def overpayment(monthly_fen: int, death: date, paid_through: date) -> tuple[int, int]:
    """(months, fen) paid for after the month of ``death`` when payments went out up to and
    including the month of ``paid_through``."""
    months = max(0, months_between(death, paid_through))
    return months, months * monthly_fen


# ---- notice, reports, spot checks -----------------------------------------------------------


def mask_name(name: str) -> str:
    """A name for a notice board: first and last character kept, the rest starred (张*三,
    欧阳**华, 李*); a one-character name is a star."""
    chars = list(name.strip())
    if len(chars) <= 1:
        return "*"
    if len(chars) == 2:
        return chars[0] + "*"
    return chars[0] + "*" * (len(chars) - 2) + chars[-1]


def is_report_day(day: date) -> bool:
    """Progress is published every Friday (S-22)."""
    return day.weekday() == 4


def spot_sample(population: Iterable[str], size: int, seed: int) -> list[str]:
    """A reproducible random sample of ``size`` ids: the same seed over the same population
    always draws the same people, whatever order they were given in, so an auditor can replay
    it from the seed and the stored population."""
    ordered: Sequence[str] = sorted(set(population))
    if size < 1:
        raise ConfirmationError("抽查人数应至少为 1")
    return sorted(random.Random(seed).sample(list(ordered), min(size, len(ordered))))


def status_zh(status: str) -> str:
    """The Chinese word for a status value; an unknown value shows itself."""
    try:
        return _STATUS_ZH[Status(status)]
    except ValueError:
        return status


@dataclass(frozen=True, slots=True)
class FaceVerdict:
    """What a face check says: ``match`` when ``score`` reaches ``threshold``; ``reasons`` say
    why not (no face found, several faces, too dark ...)."""

    match: bool
    score: float
    threshold: float
    reasons: tuple[str, ...] = ()


class FaceVerifier(Protocol):
    """The face module's interface (``muster edge verify-face`` is its command line): compare a
    live image with the reference (a template delivered in the slice, or a reference photo),
    both as the bytes of a JPEG/PNG or a template, offline."""

    def verify(self, reference: bytes, live: bytes) -> FaceVerdict: ...
