"""What the applicant's page and the service centre's page share: the one form's context for
the template, and the handling of a posted form and an uploaded material."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.applications.page_text import text_for
from controller.applications.status_text import STATE_LABELS, applicant_status
from controller.applications.store import save_draft, submit, upload_material
from controller.applications.tracking import items_of
from controller.db.models import Application, ApplicationMaterial
from muster.one_application import (
    FIELDS,
    ITEMS,
    MATERIALS,
    ApplicationError,
    Problem,
    fields_for,
    materials_for,
)

__all__ = ["TEMPLATES", "form_context", "post_form", "post_material", "status_context"]

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _present(session: Session, app_id: str) -> dict[str, ApplicationMaterial]:
    return {
        m.key: m
        for m in session.scalars(
            select(ApplicationMaterial).where(ApplicationMaterial.application_id == app_id)
        )
    }


def form_context(
    session: Session,
    application: Application,
    lang: str,
    *,
    problems: Sequence[Problem] = (),
    posted: Mapping[str, str] | None = None,
    chosen: Sequence[str] | None = None,
    notice: str = "",
) -> dict[str, Any]:
    en = lang == "en"
    items = list(chosen if chosen is not None else application.items)
    values = dict(posted if posted is not None else application.fields)
    present = _present(session, application.id)
    by_field = {p.field: (p.en if en else p.zh) for p in problems}
    return {
        "t": text_for(lang),
        "lang": lang,
        "application": application,
        "items": [
            (code, item.en if en else item.zh, code in items) for code, item in ITEMS.items()
        ],
        "fields": [
            {
                "key": key,
                "label": FIELDS[key].en if en else FIELDS[key].zh,
                "kind": FIELDS[key].kind,
                "choices": [(c, e if en else z) for c, z, e in FIELDS[key].choices],
                "value": values.get(key, ""),
                "problem": by_field.get(key, ""),
                "max_len": FIELDS[key].max_len,
            }
            for key in fields_for(items)
        ],
        "materials": [
            {
                "key": key,
                "label": MATERIALS[key].en if en else MATERIALS[key].zh,
                "uploaded": key in present,
                "problem": by_field.get(key, ""),
            }
            for key in materials_for(items, values.get("service_type", ""))
        ],
        "problems": [(p.label, p.en if en else p.zh) for p in problems],
        "notice": notice,
    }


def post_form(
    session: Session, application: Application, form: Mapping[str, list[str]], *, now: datetime
) -> tuple[tuple[Problem, ...], bool, list[str], dict[str, str]]:
    """Save (and with ``action=submit`` submit) a posted form. Returns the problems, whether it
    was submitted, and the items and fields as posted (to show them again)."""
    if application.state != "draft":  # submitted meanwhile (another tab, the clerk)
        return (), True, list(application.items), dict(application.fields)
    chosen = [i for i in form.get("items", []) if i in ITEMS] or list(application.items)
    unknown_items = [i for i in form.get("items", []) if i not in ITEMS]
    fields = {k: v[-1] for k, v in form.items() if k in FIELDS and v}
    if unknown_items:
        return (
            (Problem("items", "办理事项", "没有这些事项", "unknown items"),),
            False,
            chosen,
            fields,
        )
    action = (form.get("action") or ["save"])[-1]
    # Only the fields of the chosen items are kept; the rest of the page's inputs are dropped.
    needed = set(fields_for(chosen))
    kept = {k: v for k, v in fields.items() if k in needed}
    problems = save_draft(session, application, chosen, kept, now=now)
    if problems or action != "submit":
        return problems, False, chosen, kept
    try:
        submit(session, application, now=now)
    except ApplicationError as exc:
        return exc.problems, False, chosen, kept
    return (), True, chosen, kept


def post_material(
    session: Session,
    application: Application,
    key: str,
    content: bytes,
    declared_type: str,
    *,
    now: datetime,
) -> tuple[Problem, ...]:
    try:
        upload_material(session, application, key, content, declared_type, now=now)
    except ApplicationError as exc:
        return exc.problems
    return ()


def status_context(
    session: Session, application: Application, lang: str, now: datetime
) -> dict[str, Any]:
    en = lang == "en"
    rows = []
    for view in items_of(session, application.id, now):
        zh_label, en_label = STATE_LABELS.get(view.state, (view.state, view.state))
        rows.append(
            {
                "code": view.code,
                "label": ITEMS[view.code].en if en else ITEMS[view.code].zh,
                "state": view.state,
                "state_label": en_label if en else zh_label,
                "plain": applicant_status(
                    view.state,
                    message=view.message,
                    appointment_at=view.appointment_at,
                    place=view.place,
                    bring=view.bring,
                    wanted=view.wanted,
                    lang=lang,
                ),
                "wanted": [
                    (w, MATERIALS[w].en if en else MATERIALS[w].zh)
                    for w in view.wanted
                    if w in MATERIALS
                ],
                "history": view.history,
                "overdue": view.overdue,
                "department": view.department,
                "attempts": view.attempts,
                "last_error": view.last_error,
            }
        )
    return {"t": text_for(lang), "lang": lang, "application": application, "rows": rows}
