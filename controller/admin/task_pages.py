"""Tasks for the townships from the comparisons (S-10): how far their closure has come per region
(sent, closed with a new record, disputed by the township), the tasks of a region with the
township's reason where it disputed, and the button that turns a run's findings into tasks.
Chinese by default, English with ``?lang=en``; the words are ``controller/admin/text/tasks.py``'s."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.admin.access import admin_of
from controller.admin.text import other_lang, texts
from controller.db.models import CentreTask
from controller.records.tasks import make_tasks, runs_in_view, task_id, task_progress
from muster.clock import Clock
from muster.departments import DEPARTMENTS
from muster.errors import ConfigError, NotFoundError

__all__ = ["task_router"]

_REGION = r"^\d{0,12}$"


def _page(lang: str, title: str, body: str) -> HTMLResponse:
    other = other_lang(lang)
    return HTMLResponse(
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head><body><h1>{escape(title)}</h1>"
        f'<p><a href="?lang={other}">{escape(texts(lang)["switch"])}</a></p>{body}'
        "</body></html>"
    )


def _table(heads: list[str], rows: list[list[Any]], ident: str) -> str:
    return (
        f'<table id="{ident}"><thead><tr>'
        + "".join(f"<th>{escape(h)}</th>" for h in heads)
        + "</tr></thead><tbody>"
        + "".join(
            "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
        )
        + "</tbody></table>"
    )


def task_router(sessions: sessionmaker[Session], clock: Clock) -> APIRouter:
    router = APIRouter()

    def progress(area: str) -> list[dict[str, Any]]:
        digits = min(len(area) + 2 if len(area) < 6 else 9 if len(area) < 9 else 12, 12)
        digits = {0: 2, 1: 2, 3: 4, 5: 6, 7: 9, 8: 9, 10: 12, 11: 12}.get(len(area), digits)
        with sessions() as session:
            return [
                {
                    "region": p.region,
                    "sent": p.sent,
                    "closed": p.closed,
                    "disputed": p.disputed,
                    "percent": p.percent,
                }
                for p in task_progress(session, area, digits)
            ]

    def tasks(area: str) -> list[dict[str, Any]]:
        with sessions() as session:
            return [
                {
                    "task_id": task_id(t),
                    "kind": t.kind,
                    "township_code": t.township_code,
                    "name": t.name,
                    "id_number": t.id_number,
                    "department": t.department,
                    "status": t.status,
                    "record_id": t.closed_record_id or "",
                    "reason": t.answer_reason,
                    "created_at": t.created_at.isoformat(timespec="seconds"),
                }
                for t in session.scalars(
                    select(CentreTask)
                    .where(CentreTask.township_code.startswith(area))
                    .order_by(CentreTask.id.desc())
                    .limit(500)
                )
            ]

    @router.get("/api/v1/tasks", tags=["comparison"])
    def api_tasks(request: Request, region: str = Query("", pattern=_REGION)) -> dict[str, Any]:
        """Tasks in your area (newest 500) and their closure per region."""
        area = admin_of(request).narrow(region)
        return {"progress": progress(area), "tasks": tasks(area)}

    def render(request: Request, lang: str, region: str, message: str = "") -> HTMLResponse:
        t = texts(lang, "tasks")
        admin = admin_of(request)
        area = admin.narrow(region)
        rows = progress(area)
        body = f'<p id="made">{escape(message)}</p>' if message else ""
        body += f"<h2>{escape(t['progress'])}</h2>"
        body += (
            _table(
                [t["region"], t["sent"], t["closed"], t["disputed"], t["done"]],
                [
                    [r["region"], r["sent"], r["closed"], r["disputed"], f"{r['percent']} %"]
                    for r in rows
                ],
                "progress",
            )
            if rows
            else f"<p>{escape(t['none'])}</p>"
        )
        listed = tasks(area)
        if listed:
            body += f"<h2>{escape(t['tasks'])}</h2>" + _table(
                [
                    t["task"],
                    t["kind"],
                    t["region"],
                    t["person"],
                    t["department"],
                    t["status"],
                    t["record"],
                ],
                [
                    [
                        x["task_id"],
                        t.get(f"kind_{x['kind']}", x["kind"]),
                        x["township_code"],
                        f"{x['name']} {x['id_number']}",
                        (DEPARTMENTS[x["department"]].label if lang == "zh" else x["department"])
                        if x["department"] in DEPARTMENTS
                        else x["department"],
                        t.get(f"status_{x['status']}", x["status"]),
                        x["record_id"] or x["reason"],
                    ]
                    for x in listed
                ],
                "tasks",
            )
        if admin.can("review"):
            with sessions() as session:
                runs = runs_in_view(session, admin.prefix)
            options = "".join(
                f'<option value="{r.id}">{r.id} · {escape(r.department)} · {escape(r.run_at.isoformat(timespec="minutes"))}</option>'
                for r in runs
            )
            token = escape(str(getattr(request.state, "csrf_token", "")))
            body += (
                f"<h2>{escape(t['make'])}</h2>"
                f'<form method="post" action="/tasks?lang={lang}">'
                f'<input type="hidden" name="csrf_token" value="{token}">'
                f'<label>{escape(t["run"])} <select name="run_id" data-testid="run">{options}</select></label> '
                f'<label>{escape(t["township"])} <input name="township" maxlength="12" pattern="\\d{{12}}"></label> '
                f'<button type="submit" data-testid="make-tasks">{escape(t["make"])}</button></form>'
            )
        return _page(lang, t["title"], body)

    @router.get("/tasks", response_class=HTMLResponse, include_in_schema=False)
    def tasks_page(
        request: Request,
        lang: str = Query("zh", pattern="^(zh|en)$"),
        region: str = Query("", pattern=_REGION),
    ) -> HTMLResponse:
        return render(request, lang, region)

    @router.post("/tasks", response_class=HTMLResponse, include_in_schema=False)
    def make_tasks_page(
        request: Request,
        lang: str = Query("zh", pattern="^(zh|en)$"),
        run_id: int = Form(..., ge=1, le=2**53),
        township: str = Form("", max_length=12),
    ) -> Response:
        admin = admin_of(request)
        try:
            with sessions.begin() as session:
                made = make_tasks(session, run_id, admin, clock.now(), township=township.strip())
        except (ConfigError, NotFoundError) as exc:
            page = render(request, lang, "", str(exc))
            page.status_code = 422 if isinstance(exc, ConfigError) else 404
            return page
        message = texts(lang, "tasks")["made"].format(
            created=made.created,
            findings=made.findings,
            nt=made.without_township,
            ni=made.without_id_number,
        )
        return render(request, lang, "", message)

    return router
