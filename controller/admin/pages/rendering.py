"""What every page router shares: the one template environment (with its filters), rendering a
page with the admin's words and language, reading and writing in a session, the form body of a
POST, the query patterns, and streaming an XLSX file built on disk."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import FileResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from sqlalchemy.orm import Session, sessionmaker
from starlette.background import BackgroundTask

from controller.admin.reader_time import reader_time
from controller.admin.text import Family, other_lang, pick_lang, texts

__all__ = [
    "LANG",
    "REGION",
    "TEMPLATES",
    "XLSX",
    "Store",
    "fmt_age",
    "fmt_bytes",
    "form_body",
    "form_lang",
    "render",
    "xlsx_response",
]

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")
REGION = r"^\d{0,12}$"
LANG = "^(zh|en)$"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
T = TypeVar("T")


@pass_context
def _time_filter(context: Context, value: datetime | None, seconds: bool = False) -> str:
    return reader_time(value, str(context.get("lang", "zh")), seconds=seconds)


@pass_context
def _moment_filter(context: Context, value: Any) -> str:
    """A moment that arrives as text (a heartbeat's ISO timestamp) read as the ``time`` filter
    reads a datetime; text that is no timestamp is shown as it is."""
    if value in (None, ""):
        return "—"
    if isinstance(value, datetime):
        return _time_filter(context, value)
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return reader_time(moment, str(context.get("lang", "zh")))


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def fmt_bytes(value: Any) -> str:
    if value in (None, ""):
        return "—"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


TEMPLATES.env.filters["time"] = _time_filter
TEMPLATES.env.filters["moment"] = _moment_filter
TEMPLATES.env.filters["age"] = fmt_age
TEMPLATES.env.filters["bytes"] = fmt_bytes


def render(
    request: Request,
    template: str,
    lang: str,
    family: Family,
    *,
    status_code: int = 200,
    **context: Any,
) -> Response:
    """``template`` with ``t`` (the words of ``family`` in ``lang``), the language switch link
    and ``context``."""
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "t": texts(lang, family),
            "lang": lang,
            "path": request.url.path,
            "switch_url": str(request.url.include_query_params(lang=other_lang(lang))),
            **context,
        },
        status_code=status_code,
    )


class Store:
    """Reads in a session, writes in a transaction: one per router factory."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def read(self, fn: Callable[[Session], T]) -> T:
        with self.sessions() as session:
            return fn(session)

    def write(self, fn: Callable[[Session], T]) -> T:
        with self.sessions.begin() as session:
            return fn(session)


def form_body(body: bytes) -> dict[str, str]:
    """A urlencoded form, the last value of each field (an undecodable byte becomes U+FFFD)."""
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def form_lang(form: dict[str, str]) -> str:
    return pick_lang(form.get("lang"))


def xlsx_response(build: Callable[[Path], Any], name: str) -> Response:
    """Build a workbook into a temp file and send it; the file goes once it is sent."""
    handle = tempfile.NamedTemporaryFile(suffix=".xlsx", delete=False)  # noqa: SIM115
    handle.close()
    path = Path(handle.name)
    build(path)
    return FileResponse(
        path,
        media_type=XLSX,
        filename=name,
        background=BackgroundTask(path.unlink, missing_ok=True),
    )
