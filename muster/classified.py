"""The classified-term filter (S-03): unit designations never enter the system.

Service information may say which service or large formation a person served in (陆军, 海军,
武警部队, 北部战区); it may never carry a *designation*: a numbered division, regiment, company
("3师5团2连", "第三十八集团军"), the placeholder pattern ("x师x团x连") or a unit cover number
("66017部队"). Sans-I/O: text in, a finding out; the importer, the console forms and ingest call
it.

How a text is checked, so that spelling games do not get a designation through:

1. **Fold** each character (``fold``): Unicode NFKC (full-width, circled, parenthesised,
   superscript digits), any other numeric character to its digits (❶, Ⅻ, ⅲ, ٣), invisible and
   format characters dropped (categories Cf, Mn, Me, Co, Cn: zero-width spaces, soft hyphens,
   U+180E, joiners, combining marks), traditional and Japanese forms to simplified (師 團 連 營
   軍 隊 艦 ...), placeholders to "×", and every separator (spaces, dashes, dots, slashes,
   brackets, 、 ·) to one space. Sentence punctuation (，。；！？) stays: it ends a phrase.
2. **Mask** the ordinary phrases that look like designations (``ALLOWED_PHRASES``: 新四军,
   二连浩特, 乱成一团 ...).
3. **Match** one compiled pattern: cover numbers, numbered levels with optional arms words
   between (12装甲师, 第5特战旅), chains below them (3师5团2连3排), placeholders (某师某团) and
   the words 番号/部队代号. Numbers are digits, Chinese numerals (三十八, financial 叁拾捌) or
   Roman numerals; the level tables in ``muster.classified_variants`` say which numbers each
   level needs and which following characters make an ordinary word (师范, 团结, 连续).
4. **Quote** what the clerk typed: the folded span is mapped back to the original offsets, so
   the message shows the designation with its zero-width spaces and full-width digits.

The same designations in English or pinyin ("3rd Division", "Unit 66017", "3shi5tuan") are
matched by a second, small pattern, on ASCII text as typed and on folded text.

Fast path (ingest runs this on every free-text field of thousands of records a second): a text
with no character that folds to a level character and no Latin letter is passed without
folding; an ASCII text is only looked at by the Latin pattern, and only when it holds one of
that pattern's words. The list of characters that fold to a level character is checked against
all of Unicode by the tests. A whole payload's scan first asks, without building paths, whether
any of its strings holds a designation; the verdict on a short text is kept.

Over 400 lines because the folding, the patterns built from the variant tables and the findings
mapped back through the fold's offsets are one algorithm: each part's limits are the others'.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from muster import classified_variants as _v

__all__ = [
    "ADVICE",
    "ClassifiedFinding",
    "find_designation",
    "find_designations",
    "fold",
    "holds_designation",
    "scan_fields",
    "scan_text_values",
]

ADVICE = "请只填写军种或大单位名称（如“陆军”“武警部队”），不填写番号"

_SEP = " "
_MASK = "\x00"  # folded text never holds it (controls are dropped), so no pattern matches it

# --- Folding -----------------------------------------------------------------------------------

_FOLD_TABLE: dict[str, str] = {
    **_v.TRADITIONAL,
    **_v.NUMBER_FORMS,
    **_v.PLACEHOLDER_FORMS,
    **dict.fromkeys(_v.INVISIBLE, ""),
}
_DROPPED_CATEGORIES = frozenset({"Mn", "Me", "Cf", "Co", "Cn", "Cs"})


def _is_han(ch: str) -> bool:
    o = ord(ch)
    return (
        0x4E00 <= o <= 0x9FFF
        or 0x3400 <= o <= 0x4DBF
        or 0xF900 <= o <= 0xFAFF
        or 0x20000 <= o <= 0x323AF
        or o == 0x3007
    )


def _fold_char(ch: str) -> str:
    """What one character of the original text becomes in the folded text (maybe nothing)."""
    if ch in _FOLD_TABLE:
        return _FOLD_TABLE[ch]
    if ch.isascii():
        if ch.isalnum() or ch in _v.TERMINATORS:
            return ch
        return _SEP if ch.isprintable() or ch.isspace() else ""
    category = unicodedata.category(ch)
    if category in _DROPPED_CATEGORIES:
        return ""
    if category == "Cc":
        return _SEP if ch.isspace() else ""
    if category[0] == "Z":
        return _SEP
    if not _is_han(ch):
        value = unicodedata.numeric(ch, None)
        if value is not None and value >= 0 and value == int(value):
            return str(int(value))
    nfkc = unicodedata.normalize("NFKC", ch)
    if nfkc != ch:
        return "".join(_fold_char(c) for c in nfkc)
    if ch in _v.TERMINATORS:
        return ch
    if category[0] in "PS":
        return _SEP
    return ch


class _FoldMap(dict[int, str]):
    """``str.translate`` table that folds characters on first sight and remembers them."""

    def __missing__(self, key: int) -> str:
        folded = _fold_char(chr(key))
        if len(self) < 200_000:  # a text made of every code point must not grow it forever
            self[key] = folded
        return folded


_FOLD_MAP = _FoldMap()


def fold(text: str) -> str:
    """``text`` as the patterns see it (see the module docstring); for tests and diagnostics.
    A run of separators is one space, so the patterns need look no further than one."""
    return _SPACES.sub(_SEP, text.translate(_FOLD_MAP))


_SPACES = re.compile(" {2,}")


def _fold_with_offsets(text: str) -> tuple[str, list[int], list[int]]:
    """``fold(text)``, and for each of its characters where its source starts and ends."""
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for i, ch in enumerate(text):
        for c in _FOLD_MAP[ord(ch)]:
            if c == _SEP and out and out[-1] == _SEP:
                ends[-1] = i + 1
                continue
            out.append(c)
            starts.append(i)
            ends.append(i + 1)
    return "".join(out), starts, ends


# --- Patterns ----------------------------------------------------------------------------------


def _alt(words: tuple[str, ...] | list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


def _spaced(words: tuple[str, ...]) -> str:
    """Alternatives for ``words``, longest first, each allowing separators between its
    characters (装·甲, 集 团 军)."""
    return "|".join(" ?".join(map(re.escape, w)) for w in sorted(words, key=len, reverse=True))


def _level(level: _v.Level) -> str:
    word = rf"(?:{_spaced((level.word,))})"
    if level.not_before:
        fragments = sorted(level.not_before, key=len, reverse=True)
        word += rf"(?!{'|'.join(fragments)})"
    return word


def _levels(numbers: str) -> str:
    return "|".join(_level(lv) for lv in _v.LEVELS if lv.numbers == numbers)


def _build() -> re.Pattern[str]:
    s = " ?"  # folded text has at most one space in a row
    dig = "[0-9]"
    # Number runs are possessive (a number is never split to make a match: "1985年" is not
    # "985") and start where the run starts; that, not meaning, is what keeps a clean text fast.
    # A run does not swallow the 两/陆 of an arms word (第五两栖旅, 第五陆航旅).
    han = f"(?:(?!两栖|陆战|陆航)[{_v.HAN_DIGITS}])"
    not_after_han = f"(?<![{_v.HAN_DIGITS}])(?<![{_v.HAN_DIGITS}] )"
    single = f"[{_v.HAN_SINGLE}]"
    roman = r"(?<![A-Za-z])[IVXivx]++(?![A-Za-z])"
    digit_run = rf"(?<![0-9]){dig}++"
    # Chinese numerals may be spaced out (三 十 八 军), digits need not be: 3 8 军 is 8军 anyway.
    han_run = rf"{not_after_han}{han}(?:{s}{han}){{1,}}+"
    strong = rf"(?:第{s}(?:{dig}++|{han}(?:{s}{han})*+|{roman})|{digit_run}|{han_run}|{roman})"
    any_num = rf"(?:{strong}|{single})"
    digits3 = (
        rf"(?:第{s}(?:{dig}++|{han}(?:{s}{han})*+)|(?<![0-9]){dig}{{3,}}+"
        rf"|{not_after_han}{han}(?:{s}{han}){{2,}}+)"
    )
    placeholder = r"(?:(?<![A-Za-z0-9])[xX]++(?![A-Za-z])|(?<![×某])[×某]++)"
    arm = rf"(?:{_spaced(_v.ARMS)})兵?{s}"
    arms = rf"(?:{arm}){{0,3}}+"
    station_arms = rf"(?:(?:{arm}){{0,2}}(?:{_spaced(_v.STATION_ARMS)})兵?{s})"
    by_word = {lv.word: _level(lv) for lv in _v.LEVELS}
    placeholder_levels = "|".join(by_word[w] for w in _v.PLACEHOLDER_LEVELS)
    every_level = "|".join(
        [*(by_word[lv.word] for lv in _v.LEVELS), *map(re.escape, _v.CHAIN_ONLY_LEVELS)]
    )
    head = (
        rf"(?:{any_num}{s}{arms}(?:{_levels('any')})"
        rf"|{strong}{s}{arms}(?:{_levels('strong')})"
        rf"|{digits3}{s}{arms}(?:{_levels('digits3')})"
        rf"|{any_num}{s}{station_arms}(?:{_levels('arms')})"
        rf"|{placeholder}{s}{arms}(?:{placeholder_levels}))"
    )
    tail = rf"(?:{s}(?:{strong}|{han}|{placeholder}){s}{arms}(?:{every_level}))"
    # The letter O for zero too (66O17部队): five of these in a row before 部 are no word.
    cover_digit = f"[0-9{_v.COVER_DIGITS}Oo]"
    cover_head = (
        rf"(?<![0-9{_v.COVER_DIGITS}])(?<![0-9{_v.COVER_DIGITS}] )"
        rf"{cover_digit}(?:{s}{cover_digit}){{4}}"
    )
    cover = (
        rf"{cover_head}{s}部(?:{s}队|(?!{_alt(_v.PART_NOT_BEFORE)}))"
        rf"|代{s}号{s}(?:为|是)?{s}{cover_digit}(?:{s}{cover_digit}){{4}}"
    )
    words = rf"番{s}号|部{s}队{s}代{s}号|单{s}位{s}代{s}号"
    # Every match starts with one of these: a cheap test at each position before the long
    # alternation (it makes a clean text several times faster to scan).
    first = f"[0-9{_v.HAN_DIGITS}{_v.COVER_DIGITS}第xX×某IVXivx代番部单]"
    return re.compile(
        rf"(?={first})(?:(?P<cover_number>{cover})|(?P<designation>{head}{tail}*|{words}))"
    )


def _build_latin() -> re.Pattern[str]:
    """English and pinyin designations, on ASCII text as typed or on folded text."""
    s = r"[\s\-_./()\[\]#:]*+"

    def words(items: tuple[str, ...]) -> str:
        return "|".join(
            s.join(map(re.escape, w.split())) for w in sorted(items, key=len, reverse=True)
        )

    number = r"(?<![A-Za-z0-9])(?:no\.?\s*)?[0-9]++(?:st|nd|rd|th)?"
    english = rf"(?:{words(_v.ENGLISH_LEVELS)})(?![A-Za-z])"
    pinyin = rf"(?:{words(_v.PINYIN_LEVELS)})(?![A-Za-z])"
    cover_words = rf"(?:{words(_v.ENGLISH_COVER_WORDS)})"
    five = r"(?<![0-9])[0-9](?:[\s\-]?[0-9]){4}(?![0-9])"
    cover = (
        rf"(?<![A-Za-z]){cover_words}{s}(?:no\.?{s})?{five}"
        rf"|{five}{s}(?:{cover_words}|bu{s}(?:dui)?)(?![A-Za-z])"
    )
    designation = (
        rf"{number}{s}(?:{english}|{pinyin})"
        rf"|(?<![A-Za-z]){english}{s}(?:no\.?{s})?[0-9]++"
    )
    return re.compile(rf"(?P<cover_number>{cover})|(?P<designation>{designation})", re.IGNORECASE)


_PATTERN = _build()
_LATIN = _build_latin()
_LATIN_HINT = re.compile("[A-Za-z\uff21-\uff3a\uff41-\uff5a]")
# The first three letters of every Latin word the Latin pattern needs: a cheap test that keeps
# ID numbers ending in X, user names and e-mail addresses out of the long pattern.
_PREFIXES = sorted(
    {
        w.replace(" ", "")[:3]
        for w in (*_v.ENGLISH_LEVELS, *_v.ENGLISH_COVER_WORDS, *_v.PINYIN_LEVELS, "bu")
    }
)
_LATIN_WORDS = re.compile(
    f"(?=[{''.join(sorted({p[0] for p in _PREFIXES}))}])(?:{'|'.join(_PREFIXES)})",
    re.IGNORECASE,
)
_ALLOWED = re.compile("|".join(f"(?:{p})" for p, _why in _v.ALLOWED_PHRASES))
_ANCHOR = re.compile(f"[{re.escape(_v.ANCHORS + _v.NFKC_ANCHORS)}]")


def _mask(m: re.Match[str]) -> str:
    return _MASK * (m.end() - m.start())


# --- Findings ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassifiedFinding:
    """Where a designation was found, what it was (as typed) and what to write instead.

    ``start``/``end`` are offsets into the text that was checked, for highlighting.
    """

    field: str
    kind: str  # "designation" or "cover_number"
    text: str
    start: int = 0
    end: int = 0

    @property
    def message(self) -> str:
        what = "部队代号" if self.kind == "cover_number" else "部队番号"
        return f"“{self.field}”中含有{what}“{self.text}”，按保密规定不得录入：{ADVICE}"


def _findings(text: str, field: str) -> Iterator[ClassifiedFinding]:
    if text.isascii():
        if _LATIN_HINT.search(text) and _LATIN_WORDS.search(text):
            for m in _LATIN.finditer(text):
                kind = m.lastgroup or "designation"
                yield ClassifiedFinding(field, kind, m.group(), *m.span())
        return
    han = _ANCHOR.search(text) is not None
    latin = _LATIN_HINT.search(text) is not None
    if not han and not latin:
        return
    folded = fold(text)
    if not (han and _PATTERN.search(_ALLOWED.sub(_mask, folded))) and not (
        latin and _LATIN_WORDS.search(folded) and _LATIN.search(folded)
    ):
        return
    folded, starts, ends = _fold_with_offsets(text)
    masked = _ALLOWED.sub(_mask, folded)
    matches = sorted(
        [*_PATTERN.finditer(masked), *_LATIN.finditer(folded)], key=lambda m: m.start()
    )
    reached = 0
    for m in matches:
        if m.start() < reached:  # the same text matched in both scripts' patterns
            continue
        reached = m.end()
        begin, end = starts[m.start()], ends[m.end() - 1]
        yield ClassifiedFinding(field, m.lastgroup or "designation", text[begin:end], begin, end)


def find_designation(text: str, field: str = "") -> ClassifiedFinding | None:
    """The first designation in ``text``, or None when the text is clean."""
    return next(_findings(text, field), None)


def find_designations(text: str, field: str = "") -> list[ClassifiedFinding]:
    """Every designation in ``text``, in order."""
    return list(_findings(text, field))


# Ingest scans the clerks, notes and change lists of thousands of records a second, and they
# repeat (clerk-a, "entered", a field's key): the verdict on a short text is kept.
_CACHED_TEXT = 200


@functools.lru_cache(maxsize=8192)
def _flagged_cached(text: str) -> bool:
    return next(_findings(text, ""), None) is not None


def _flagged(text: str) -> bool:
    if len(text) <= _CACHED_TEXT:
        return _flagged_cached(text)
    return next(_findings(text, ""), None) is not None


def _holds_finding(obj: object) -> bool:
    """Whether any string ``_strings`` would yield has a designation: the same walk without
    building paths, which only a text with a finding needs."""
    stack: list[object] = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if _flagged(value):
                return True
        elif type(value) is dict or isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(key, str):
                    stack.append(key)
                stack.append(item)
        elif isinstance(value, list | tuple | set | frozenset):
            stack.extend(value)
    return False


def _strings(obj: object, path: str) -> Iterator[tuple[str, str]]:
    """Every string inside ``obj`` with its path, in document order, without recursion."""
    stack: list[tuple[str, object]] = [(path, obj)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            yield where, value
        elif isinstance(value, Mapping):
            children: list[tuple[str, object]] = []
            for key, item in value.items():
                child = f"{where}.{key}" if where else str(key)
                if isinstance(key, str):
                    children.append((child, key))
                children.append((child, item))
            stack.extend(reversed(children))
        elif isinstance(value, list | tuple | set | frozenset):
            items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
            stack.extend(reversed([(f"{where}[{i}]", v) for i, v in enumerate(items)]))


def holds_designation(obj: object) -> bool:
    """Whether any string inside ``obj`` (mappings with their string keys, lists, tuples and
    sets, to any depth) has a designation: ``scan_text_values``'s verdict without its paths and
    messages, for a caller that only builds those when there is something to say."""
    return _holds_finding(obj)


def scan_text_values(obj: object, path: str = "") -> list[ClassifiedFinding]:
    """Every designation in every string inside ``obj``, each with the path of its string.

    Walks mappings (their string keys too: a key can be free text, as in a change list keyed by
    what was typed; a key's finding carries the key's own path), lists, tuples and sets, to any
    depth and without recursion, so a whole record payload — person, form fields, audit notes
    and change lists, entered_by — is scanned in one call. Paths read
    ``record.fields.main_requests``, ``record.audit[2].changes[0]``; other values (numbers,
    None, bytes) are skipped.
    """
    if not _holds_finding(obj):
        return []
    return [f for where, text in _strings(obj, path) for f in _findings(text, where)]


def scan_fields(fields: Mapping[str, object]) -> list[ClassifiedFinding]:
    """The first designation of every text field, nested mappings and lists included."""
    found = (find_designation(text, where) for where, text in _strings(fields, ""))
    return [f for f in found if f is not None]
