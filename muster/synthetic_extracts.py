"""Synthetic departments' extracts with planted errors, beside the collected people they were
derived from, and the truth of what a comparison should find: for ``muster sim extract``, the
tests and the benchmark. Deterministic for a seed.

The errors are the kinds real extracts have: a homophone or a typo in the name, two digits of
the birth date transposed, the ID number missing or mistyped, the wrong sex, a new address;
some people only on our side, some only on the department's (the missing), and for the funeral
department every row a death.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from muster.departments import department, headers_for
from muster.synthetic import dataset_row

__all__ = ["SyntheticComparison", "make_comparison", "write_table"]

# Characters of one sound: a clerk who hears the name writes another of the same group.
HOMOPHONES = (
    "伟玮炜韦",
    "芳方芬",
    "娜纳",
    "敏民",
    "静晶靖",
    "丽利莉",
    "强墙",
    "军君钧",
    "勇永",
    "杰洁",
    "明鸣铭",
    "华桦",
    "建健剑",
    "国帼",
    "文雯",
    "辉晖徽",
    "鹏朋",
    "玉钰",
    "红宏鸿",
    "梅玫媒",
    "志智",
    "新欣鑫",
    "海亥",
    "波博",
    "宁凝",
    "福富",
    "春纯",
    "生升",
    "德得",
    "山珊",
    "林琳霖",
    "成诚城",
    "忠中",
    "祥翔",
    "荣蓉融",
    "平萍",
    "刚钢",
    "英瑛",
    "兰岚",
)
_GROUP = {ch: group for group in HOMOPHONES for ch in group}
TYPO_CHARS = "一二三大小上下中山水火木金土日月天地人口手足"
VILLAGES = ("幸福村", "东风村", "红星村", "新华村", "和平村", "建设村", "前进村", "光明村")
ERRORS = ("homophone", "typo", "birth_date", "id_missing", "id_wrong", "sex", "address")
FIELD_OF = {
    "homophone": "姓名",
    "typo": "姓名",
    "birth_date": "出生日期",
    "id_wrong": "公民身份号码",
    "sex": "性别",
    "address": "住址",
}


@dataclass
class SyntheticComparison:
    """``collected``: rows of the initial-data format with an address (``住址``) and the key
    ``_pid``; ``extract``: rows under the department's headers with ``_pid``. The truth:
    ``problems`` as (pid, field header), ``missing`` pids, ``deaths`` pids."""

    collected: list[dict[str, str]] = field(default_factory=list)
    extract: list[dict[str, str]] = field(default_factory=list)
    problems: set[tuple[int, str]] = field(default_factory=set)
    missing: set[int] = field(default_factory=set)
    deaths: set[int] = field(default_factory=set)


def _address(rng: random.Random) -> str:
    return f"{rng.choice(VILLAGES)}{rng.randrange(1, 12)}组{rng.randrange(1, 90)}号"


def _homophone(rng: random.Random, name: str) -> str | None:
    spots = [i for i, ch in enumerate(name) if i > 0 and ch in _GROUP]
    if not spots:
        return None
    i = rng.choice(spots)
    other = rng.choice([c for c in _GROUP[name[i]] if c != name[i]])
    return name[:i] + other + name[i + 1 :]


def _typo(rng: random.Random, name: str) -> str:
    i = rng.randrange(1, len(name))
    return name[:i] + rng.choice([c for c in TYPO_CHARS if c != name[i]]) + name[i + 1 :]


def _transposed(rng: random.Random, born: str, today: date) -> str | None:
    digits = born.replace("-", "")
    spots = list(range(len(digits) - 1))
    rng.shuffle(spots)
    for i in spots:
        if digits[i] == digits[i + 1]:
            continue
        swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
        try:
            day = date(int(swapped[:4]), int(swapped[4:6]), int(swapped[6:]))
        except ValueError:
            continue
        if date(1900, 1, 1) < day < today:
            return day.isoformat()
    return None


def _wrong_id(rng: random.Random, number: str) -> str:
    i = rng.randrange(14, 17)  # the sequence digits: the number still reads, its check fails
    return number[:i] + str((int(number[i]) + rng.randrange(1, 10)) % 10) + number[i + 1 :]


def _extra(rng: random.Random, kind: str, born: str, today: date) -> dict[str, str]:
    spec = department(kind)
    out: dict[str, str] = {}
    birth = date.fromisoformat(born)
    for column in spec.columns:
        if column.kind == "choice":
            out[column.header] = rng.choice(column.choices)
        elif column.kind == "date":
            span = max(1, (today - birth).days - 365 * 18)
            out[column.header] = (
                birth + timedelta(days=365 * 18 + rng.randrange(span))
            ).isoformat()
        else:
            out[column.header] = f"{rng.randrange(10**8, 10**9)}"
    if kind == "military_service" and "退役时间" in out and "入伍时间" in out:
        first, last = sorted((out["入伍时间"], out["退役时间"]))
        out["入伍时间"], out["退役时间"] = first, last
    return out


def make_comparison(
    people: int,
    kind: str,
    *,
    townships: Sequence[str],
    seed: int,
    today: date,
    error_rate: float = 0.3,
    only_ours: float = 0.08,
    only_theirs: float = 0.05,
) -> SyntheticComparison:
    """``people`` collected people over ``townships`` and ``kind``'s extract derived from them."""
    department(kind)
    rng = random.Random(seed)
    out = SyntheticComparison()
    for pid in range(people):
        row = dataset_row(rng, rng.choice(list(townships)), today)
        row["address"] = _address(rng)
        out.collected.append({**row, "_pid": str(pid)})
        if rng.random() < only_ours:
            continue
        dept = _department_row(row, kind, rng, today)
        if rng.random() < error_rate:
            error = rng.choice(ERRORS)
            planted = _plant(rng, error, row, dept, today)
            if planted and error in FIELD_OF:
                out.problems.add((pid, FIELD_OF[error]))
        dept["_pid"] = str(pid)
        out.extract.append(dept)
        if kind == "funeral":
            out.deaths.add(pid)
    for n in range(int(people * only_theirs)):
        pid = people + n
        row = dataset_row(rng, rng.choice(list(townships)), today)
        row["address"] = _address(rng)
        dept = _department_row(row, kind, rng, today)
        dept["_pid"] = str(pid)
        out.extract.append(dept)
        if kind != "funeral":
            out.missing.add(pid)
    rng.shuffle(out.extract)
    return out


def _department_row(
    row: dict[str, str], kind: str, rng: random.Random, today: date
) -> dict[str, str]:
    dept = {
        "姓名": row["name"],
        "公民身份号码": row["id_number"],
        "性别": row["sex"],
        "出生日期": row["birth_date"],
        "住址": row["address"],
        "乡镇代码": row["township_code"],
    }
    dept |= _extra(rng, kind, row["birth_date"], today)
    if kind == "military_service" and row.get("enlistment_date"):
        dept["入伍时间"] = row["enlistment_date"]
        dept["退役时间"] = row["discharge_date"]
    return dept


def _plant(
    rng: random.Random, error: str, row: dict[str, str], dept: dict[str, str], today: date
) -> bool:
    """Change ``dept`` by ``error``; False when this person's data leaves no room for it."""
    if error == "homophone":
        name = _homophone(rng, row["name"])
        if name is None:
            return False
        dept["姓名"] = name
    elif error == "typo":
        dept["姓名"] = _typo(rng, row["name"])
    elif error == "birth_date":
        born = _transposed(rng, row["birth_date"], today)
        later = [v for k, v in dept.items() if k.endswith(("日期", "时间")) and k != "出生日期"]
        if born is None or any(v and v < born for v in later):
            return False
        dept["出生日期"] = born
    elif error == "id_missing":
        dept["公民身份号码"] = ""
    elif error == "id_wrong":
        dept["公民身份号码"] = _wrong_id(rng, row["id_number"])
    elif error == "sex":
        dept["性别"] = "女" if row["sex"] == "男" else "男"
    elif error == "address":
        moved = _address(rng)
        while moved == row["address"]:
            moved = _address(rng)
        dept["住址"] = moved
    return True


def write_table(path: Path, headers: Sequence[str], rows: Sequence[dict[str, str]]) -> None:
    """The rows under ``headers`` as a UTF-8 CSV (with BOM, as Excel opens it) or an XLSX."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".xlsx":
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        sheet = book.create_sheet("数据")
        sheet.append(list(headers))
        for row in rows:
            sheet.append([row.get(h, "") for h in headers])
        book.save(path)
        return
    with path.open("w", newline="", encoding="utf-8-sig") as fh:
        writer = csv.writer(fh)
        writer.writerow(headers)
        for row in rows:
            writer.writerow([row.get(h, "") for h in headers])


def extract_headers(kind: str) -> list[str]:
    return headers_for(kind)
