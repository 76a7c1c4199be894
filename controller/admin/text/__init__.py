"""Every word the admin pages show, in Simplified Chinese (the default) and English (``?lang=en``).

One module per page family holds ``TEXT: {key: (zh, en)}``, so a key without its translation
cannot be written; :func:`texts` gives a page the common words (navigation) and its family's.
A family key never shadows a common one (tests/unit/test_admin_text.py checks both).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Literal

from controller.admin.text import (
    account,
    accounts,
    applications,
    codes,
    common,
    comparison,
    confirmation,
    fleet,
    records,
    releases,
    tasks,
    terms,
)

__all__ = ["FAMILIES", "LANGS", "Family", "other_lang", "pick_lang", "texts"]

LANGS = ("zh", "en")
Family = Literal[
    "common",
    "fleet",
    "records",
    "account",
    "accounts",
    "codes",
    "comparison",
    "tasks",
    "releases",
    "confirmation",
    "applications",
]
FAMILIES: dict[str, Mapping[str, tuple[str, str]]] = {
    "common": common.TEXT,
    "fleet": fleet.TEXT,
    "records": {**records.TEXT, **terms.TEXT},
    "account": account.TEXT,
    "accounts": accounts.TEXT,
    "codes": codes.TEXT,
    "comparison": comparison.TEXT,
    "tasks": tasks.TEXT,
    "releases": releases.TEXT,
    "confirmation": confirmation.TEXT,
    "applications": applications.TEXT,
}


def pick_lang(value: object) -> str:
    """``value`` when it names a language we have, else Chinese: a form field or cookie that
    says anything else falls back quietly, as a page with no choice does."""
    return value if isinstance(value, str) and value in LANGS else "zh"


def other_lang(lang: str) -> str:
    return "en" if lang == "zh" else "zh"


@cache
def texts(lang: str, family: Family = "common") -> Mapping[str, str]:
    """The common words and ``family``'s in ``lang`` (Chinese for anything but ``"en"``)."""
    index = 1 if lang == "en" else 0
    merged = {key: pair[index] for key, pair in common.TEXT.items()}
    if family != "common":
        merged.update({key: pair[index] for key, pair in FAMILIES[family].items()})
    return merged
