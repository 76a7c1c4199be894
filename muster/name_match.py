"""Names, birth dates and addresses put in the shape record linkage compares them in.

A department and a township clerk often write the same person's name with different characters
of the same sound (张伟 / 张玮), in full-width or with a middle dot (阿依古丽·买买提), or with
stray spaces. ``name_key`` removes what is only spelling (Unicode NFKC, spaces, dots);
``name_pinyin`` is the toneless pinyin of that key, so homophones meet; ``surname_pinyin`` is
its first syllable. Sans-I/O; deterministic (pypinyin's dictionary, first reading of a
polyphonic character).
"""

from __future__ import annotations

import functools
import re
import unicodedata

from pypinyin import Style, lazy_pinyin

__all__ = ["address_key", "name_key", "name_pinyin", "surname_pinyin"]

_NOT_NAME = re.compile(r"[\s·•・.．\-_,，]+")
_NOT_ADDRESS = re.compile(r"[\s,，.。·\-_()（）]+")


def name_key(name: str) -> str:
    """The name without what is only spelling: NFKC, no spaces or dots, Latin letters lower."""
    return _NOT_NAME.sub("", unicodedata.normalize("NFKC", name)).lower()


@functools.lru_cache(maxsize=262144)
def _pinyin(key: str) -> tuple[str, ...]:
    return tuple(s.lower() for s in lazy_pinyin(key, style=Style.NORMAL, errors="default"))


def name_pinyin(name: str) -> str:
    """Toneless pinyin of ``name_key(name)``, syllables joined: 张伟 and 张玮 are both zhangwei."""
    return "".join(_pinyin(name_key(name)))


def surname_pinyin(name: str) -> str:
    """The first syllable: a blocking key that survives a mistyped given name."""
    syllables = _pinyin(name_key(name))
    return syllables[0] if syllables else ""


def address_key(address: str) -> str:
    """An address without spacing and punctuation (NFKC), for equality and string distance."""
    return _NOT_ADDRESS.sub("", unicodedata.normalize("NFKC", address))
