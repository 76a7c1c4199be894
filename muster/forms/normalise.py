"""One form field's value in its stored form, or the problem with it (``normalise``), and each
form compiled once into per-field normalisers for ingest (``compiled``). Sans-I/O; the rules
across fields and ``validate_fields`` are in :mod:`muster.forms.validation`."""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from muster.classified import ClassifiedFinding, find_designation
from muster.forms.codelists import code_for
from muster.forms.definitions import FieldDef, FormDefinition
from muster.forms.problems import Problem

__all__ = ["CompiledForm", "Normaliser", "compile_field", "compiled", "normalise"]


_PHONE = re.compile(r"(?:1[3-9]\d{9}|0\d{2,3}-?\d{7,8})")


def normalise(f: FieldDef, raw: object) -> tuple[Any, Problem | None]:
    """One value in its stored form, or the problem with it. Empty is None."""
    if f.kind == "multi":
        if raw is None:
            return None, None
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple):
            return None, Problem(f.key, "type", f"“{f.label}”应为选项列表")
        chosen: set[str] = set()
        for item in items:
            if not isinstance(item, str):
                return None, Problem(f.key, "type", f"“{f.label}”应为选项列表")
            if not item:
                continue
            code = _code(f, item)
            if code is None:
                return None, Problem(f.key, "code", f"“{f.label}”的“{item}”不是可选项")
            chosen.add(code)
        ordered = [c for c in f.options if c in chosen]
        return (ordered or None), None
    if isinstance(raw, bool) or raw is None:
        return None, (Problem(f.key, "type", f"“{f.label}”的值无效") if raw is not None else None)
    if f.kind == "number":
        if isinstance(raw, int | float):
            number: float = raw
        elif isinstance(raw, str):
            if not raw.strip():
                return None, None
            try:
                number = float(raw.strip())
            except ValueError:
                return None, Problem(f.key, "type", f"“{f.label}”应为数字，如 85")
        else:
            return None, Problem(f.key, "type", f"“{f.label}”应为数字")
        # JSON parsers and float() both accept NaN and Infinity; neither is a measurement.
        if not math.isfinite(number):
            return None, Problem(f.key, "type", f"“{f.label}”应为数字，如 85")
        if (f.minimum is not None and number < f.minimum) or (
            f.maximum is not None and number > f.maximum
        ):
            return None, Problem(
                f.key, "range", f"“{f.label}”应在 {f.minimum:g} 到 {f.maximum:g} 之间，请核对"
            )
        return (int(number) if number == int(number) else round(number, 2)), None
    if not isinstance(raw, str):
        if f.kind == "date" and isinstance(raw, dt.date):
            raw = raw.isoformat()
        else:
            return None, Problem(f.key, "type", f"“{f.label}”应为文字")
    text = raw.strip()
    if not text:
        return None, None
    if f.kind == "date":
        try:
            return dt.date.fromisoformat(text.replace("/", "-")).isoformat(), None
        except ValueError:
            return None, Problem(f.key, "type", f"“{f.label}”应写成 YYYY-MM-DD，如 1978-03-01")
    if f.kind == "choice":
        code = _code(f, text)
        if code is None:
            return None, Problem(f.key, "code", f"“{f.label}”的“{text}”不是可选项，请从列表中选择")
        return code, None
    if f.kind == "phone":
        if not _PHONE.fullmatch(text.replace(" ", "")):
            return None, Problem(
                f.key, "type", f"“{f.label}”应为11位手机号或带区号的固定电话，如 0538-8221234"
            )
        return text.replace(" ", ""), None
    if len(text) > f.max_length:
        return None, Problem(f.key, "length", f"“{f.label}”最多 {f.max_length} 个字，请精简")
    finding = _designation(text, f.label)
    if finding is not None:
        return None, Problem(f.key, "classified", finding.message)
    return text, None


def _code(f: FieldDef, value: str) -> str | None:
    return code_for(f.options, value)


# A township's records repeat most of their texts (陆军, the street, the employer): the verdict
# on a short text is kept. Long texts are rarely repeated and would make the cache large.
_CACHED_TEXT = 200
_find_cached = functools.lru_cache(maxsize=8192)(find_designation)


def _designation(text: str, label: str) -> ClassifiedFinding | None:
    if len(text) <= _CACHED_TEXT:
        return _find_cached(text, label)
    return find_designation(text, label)


# --- each form compiled once -------------------------------------------------------------------
#
# Ingest validates thousands of records a second against a handful of forms. Each field gets a
# normaliser made for its kind once; it takes the values a well-formed record carries (a code,
# a label, an ISO date, a clean text, a number in range) straight to their stored form, and
# hands anything else to ``normalise``, the one definition of what a value means and of every
# problem's wording. Fast path and ``normalise`` agree on every value the fast path accepts.

Normaliser = Callable[[object], tuple[Any, Problem | None]]
_UNSET: Final = object()


def _labels_to_codes(options: Mapping[str, str]) -> dict[str, str]:
    """``code_for`` as one dictionary: each code is itself, a label the first code it labels."""
    table: dict[str, str] = {}
    for code, label in options.items():
        table.setdefault(label, code)
    table.update({code: code for code in options})
    table.pop("", None)  # an empty value is no choice: ``normalise`` says what it is
    return table


def compile_field(f: FieldDef) -> Normaliser:
    def slow(raw: object) -> tuple[Any, Problem | None]:
        return normalise(f, raw)

    if f.kind in ("text", "textarea"):
        limit, label = f.max_length, f.label

        def text(raw: object) -> tuple[Any, Problem | None]:
            if type(raw) is not str:
                return normalise(f, raw)
            value = raw.strip()
            if not value:
                return None, None
            if len(value) > limit or _designation(value, label) is not None:
                return normalise(f, raw)
            return value, None

        return text
    if f.kind == "choice":
        codes = _labels_to_codes(f.options)

        def choice(raw: object) -> tuple[Any, Problem | None]:
            if type(raw) is str:
                code = codes.get(raw.strip(), _UNSET)
                if code is not _UNSET:
                    return code, None
            return normalise(f, raw)

        return choice
    if f.kind == "multi":
        codes = _labels_to_codes(f.options)
        order = {code: i for i, code in enumerate(f.options)}

        def multi(raw: object) -> tuple[Any, Problem | None]:
            if type(raw) is list and all(type(item) is str and item in codes for item in raw):
                chosen = {codes[item] for item in raw}
                return (sorted(chosen, key=order.__getitem__) or None), None
            return normalise(f, raw)

        return multi
    if f.kind == "date":

        def date(raw: object) -> tuple[Any, Problem | None]:
            if type(raw) is str and len(raw) == 10 and raw[4] == "-" and raw[7] == "-":
                try:
                    return dt.date.fromisoformat(raw).isoformat(), None
                except ValueError:
                    pass
            return normalise(f, raw)

        return date
    if f.kind == "number" and f.minimum is not None and f.maximum is not None:
        low, high = f.minimum, f.maximum

        def number(raw: object) -> tuple[Any, Problem | None]:
            if type(raw) is int and low <= raw <= high:
                return raw, None
            return normalise(f, raw)

        return number
    return slow


@dataclass(frozen=True, slots=True)
class CompiledForm:
    form: FormDefinition
    fields: tuple[tuple[str, str, bool, Normaliser], ...]  # key, label, required, normaliser
    keys: frozenset[str]


_COMPILED: dict[int, CompiledForm] = {}


def compiled(form: FormDefinition) -> CompiledForm:
    """The form's normalisers, made on its first record (the form is kept to pin its id)."""
    done = _COMPILED.get(id(form))
    if done is not None and done.form is form:
        return done
    done = CompiledForm(
        form,
        tuple((f.key, f.label, f.required, compile_field(f)) for f in form.fields),
        frozenset(form.by_key),
    )
    if len(_COMPILED) > 256:  # forms made on the fly (tests) must not pile up
        _COMPILED.clear()
    _COMPILED[id(form)] = done
    return done
