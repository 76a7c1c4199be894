"""The classified-term filter (S-03): unit designations never enter the system.

Service information may say which service or large formation a person served in (陆军, 海军,
武警部队, 北部战区); it may never carry a *designation*: a numbered division, regiment, company
("3师5团2连", "第三十八集团军") or a unit cover number ("66017部队"). Sans-I/O: text in, a finding
out; the importer, the console forms and ingest call it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ADVICE", "ClassifiedFinding", "find_designation", "scan_fields"]

ADVICE = "请只填写军种或大单位名称（如“陆军”“武警部队”），不填写番号"

_NUM = r"[0-9０-９一二三四五六七八九十百千零〇两]+"
_LEVELS = (
    r"(?:集团军|军|师|旅|团|营(?!业|房|地|养)|连(?!续|同|带|锁)|排(?!长|除|查)|支队|大队|中队)"
)

# Arms named between the number and the level: "第5航空旅", "12装甲师".
_ARMS = (
    r"(?:航空|装甲|炮兵|工兵|舟桥|通信|防化|坦克|步兵|摩步|机步|高炮|导弹|雷达|海防|边防|守备|特种)"
)

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # Cover numbers: five digits then 部队/部 ("66017部队", "6 6 0 1 7 部").
    ("cover_number", re.compile(r"[0-9０-９](?:\s*[0-9０-９]){4}\s*部(?:队)?")),
    # Cover numbers written with Chinese numerals ("六六零一七部队").
    ("cover_number", re.compile(r"[一二三四五六七八九零〇]{5}部(?:队)?")),
    # Numbered formations: "第38集团军", "3师", "五团", "二连", "x师x团x连".
    ("designation", re.compile(rf"(?:第\s*)?{_NUM}\s*{_ARMS}?{_LEVELS}")),
    # The pattern of S-03 with placeholders left in ("x师x团x连", "某师某团").
    ("designation", re.compile(r"[xX×某]\s*(?:师|旅|团)\s*[xX×某]?\s*(?:团|营|连)?")),
    ("designation", re.compile(r"番号|部队代号")),
)


@dataclass(frozen=True, slots=True)
class ClassifiedFinding:
    """Where a designation was found, what it was and what to write instead."""

    field: str
    kind: str  # "designation" or "cover_number"
    text: str

    @property
    def message(self) -> str:
        what = "部队代号" if self.kind == "cover_number" else "部队番号"
        return f"“{self.field}”中含有{what}“{self.text}”，按保密规定不得录入：{ADVICE}"


def find_designation(text: str, field: str = "") -> ClassifiedFinding | None:
    """The first designation in ``text``, or None when the text is clean."""
    for kind, pattern in _PATTERNS:
        match = pattern.search(text)
        if match:
            return ClassifiedFinding(field=field, kind=kind, text=match.group(0))
    return None


def scan_fields(fields: Mapping[str, object]) -> list[ClassifiedFinding]:
    """Every text field with a designation, nested mappings and lists included."""
    found: list[ClassifiedFinding] = []
    for name, value in fields.items():
        if isinstance(value, str):
            finding = find_designation(value, name)
            if finding:
                found.append(finding)
        elif isinstance(value, Mapping):
            found.extend(scan_fields({f"{name}.{k}": v for k, v in value.items()}))
        elif isinstance(value, list | tuple):
            found.extend(scan_fields({f"{name}[{i}]": v for i, v in enumerate(value)}))
    return found
