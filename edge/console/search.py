"""Finding a person in the township's initial data (S-04) by name, ID number or pinyin.

The index is built from the device's slice store (opened in memory only) and rebuilt when the
slice version moves. Pinyin comes from pypinyin: "zhangjianguo", "zjg" and "张建国" all find
张建国. The matching itself is pure: :func:`matches`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pypinyin import Style, lazy_pinyin

MAX_RESULTS = 20


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    id_number: str
    pinyin: str  # "zhangjianguo"
    initials: str  # "zjg"
    details: dict[str, Any]


def entry(details: dict[str, Any]) -> Entry:
    name = str(details.get("name", ""))
    return Entry(
        name=name,
        id_number=str(details.get("id_number", "")),
        pinyin="".join(lazy_pinyin(name)).lower(),
        initials="".join(lazy_pinyin(name, style=Style.FIRST_LETTER)).lower(),
        details=details,
    )


def matches(e: Entry, query: str) -> bool:
    q = query.strip().lower().replace(" ", "")
    if not q:
        return False
    if q[:-1].isdigit() and (q[-1].isdigit() or q[-1] == "x"):
        return len(q) >= 4 and q.upper() in e.id_number
    if q.isascii() and q.isalpha():
        return e.pinyin.startswith(q) or e.initials.startswith(q)
    return q in e.name


class PeopleSearch:
    def __init__(
        self, load: Callable[[], list[dict[str, Any]]], version: Callable[[], int]
    ) -> None:
        self._load = load
        self._version = version
        self._lock = threading.Lock()
        self._index: list[Entry] = []
        self._indexed_version = -1

    def _entries(self) -> list[Entry]:
        with self._lock:
            version = self._version()
            if version != self._indexed_version:
                self._index = sorted((entry(d) for d in self._load()), key=lambda e: e.pinyin)
                self._indexed_version = version
            return self._index

    def search(self, query: str) -> list[Entry]:
        return [e for e in self._entries() if matches(e, query)][:MAX_RESULTS]

    def find(self, id_number: str) -> Entry | None:
        number = id_number.strip().upper()
        return next((e for e in self._entries() if e.id_number == number), None)

    def count(self) -> int:
        return len(self._entries())
