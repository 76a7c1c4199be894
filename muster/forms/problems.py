"""What a check of a form or a person says is wrong: one :class:`Problem` per thing."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Problem"]


@dataclass(frozen=True, slots=True)
class Problem:
    field: str  # a field key, or "" for the record as a whole
    code: str  # stable: "required", "type", "code", "range", "length", "classified", a rule name
    message: str  # Simplified Chinese, says what to do
