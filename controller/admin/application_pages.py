"""S-30 in the admin UI, Chinese with ``?lang=en``: the service-centre mode (a clerk or admin
enters an application with the applicant present, scoped to the admin's region), each
application's tracking with its history, and the department dashboard (what waits on each
department, overdue items first). The form and status are the applicant's own templates
(controller/applications), with the admin session's CSRF token; uploads, being multipart, send
it as the X-CSRF-Token header."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from controller.accounts.admins import AdminIdentity
from controller.admin.access import admin_of
from controller.admin.text import FAMILIES, pick_lang, texts
from controller.applications.form_views import (
    TEMPLATES,
    form_context,
    post_form,
    post_material,
    status_context,
)
from controller.applications.page_text import lang_of, text_for
from controller.applications.status_text import STATE_LABELS
from controller.applications.store import new_application
from controller.applications.tracking import DepartmentLoad, department_loads, waiting_on
from controller.db.models import Application, Department
from muster.clock import Clock
from muster.one_application import MATERIAL_MAX_BYTES, Problem

__all__ = ["application_router"]

_FORM_SLACK = 64 * 1024


def _render(
    request: Request, name: str, words: str, status: int = 200, **context: Any
) -> HTMLResponse:
    admin = admin_of(request)
    page = TEMPLATES.get_template(name).render(
        csrf=getattr(request.state, "csrf_token", ""),
        c=texts(pick_lang(words), "applications"),
        prefix=admin.prefix,
        show_department=True,
        **context,
    )
    return HTMLResponse(page, status)


def _visible(admin: AdminIdentity, application: Application) -> bool:
    if application.township:
        return admin.covers(application.township)
    return application.entered_by == admin.username


def application_router(sessions: sessionmaker[Session], clock: Clock) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def _load(session: Session, request: Request, application_id: str) -> Application:
        application = session.get(Application, application_id[:24])
        if application is None or not _visible(admin_of(request), application):
            raise HTTPException(404, "没有这份申请，或不在您的管辖范围内")
        return application

    @router.get("/one-application", response_class=HTMLResponse)
    def centre(request: Request, lang: str = "zh") -> Response:
        lang = lang_of(lang)
        admin = admin_of(request)
        with sessions() as session:
            rows = session.scalars(
                select(Application)
                .where(
                    or_(
                        Application.township.startswith(admin.prefix, autoescape=True)
                        & (Application.township != ""),
                        Application.entered_by == admin.username,
                    )
                )
                .order_by(Application.updated_at.desc())
                .limit(200)
            ).all()
            return _render(
                request,
                "centre_list.html",
                lang,
                t=text_for(lang),
                lang=lang,
                applications=rows,
                can_apply=admin.can("apply"),
            )

    @router.post("/one-application/new")
    def new(request: Request, lang: str = "zh") -> Response:
        lang = lang_of(lang)
        with sessions.begin() as session:
            app_id, _token = new_application(
                session, now=clock.now(), entered_by=admin_of(request).username
            )
        return RedirectResponse(f"/one-application/{app_id}?lang={lang}", 303)

    @router.get("/one-application/departments", response_class=HTMLResponse)
    def dashboard(request: Request, lang: str = "zh") -> Response:
        return _dashboard(request, lang_of(lang), None)

    @router.get("/one-application/departments/{department_id}", response_class=HTMLResponse)
    def department_page(request: Request, department_id: int, lang: str = "zh") -> Response:
        return _dashboard(request, lang_of(lang), department_id)

    def _dashboard(request: Request, lang: str, department_id: int | None) -> Response:
        admin = admin_of(request)
        now = clock.now()
        with sessions() as session:
            loads = department_loads(session, now, admin.prefix)
            department = session.get(Department, department_id) if department_id else None
            if department_id is not None and (
                department is None or department.id not in {d.id for d in loads}
            ):
                raise HTTPException(404, "没有这个部门，或不在您的管辖范围内")
            waiting = waiting_on(session, department.id, now, admin.prefix) if department else []
            rows = [_load_row(load) for load in loads]
            labels = {k: (en if lang == "en" else zh) for k, (zh, en) in STATE_LABELS.items()}
            return _render(
                request,
                "centre_departments.html",
                lang,
                t=text_for(lang),
                lang=lang,
                loads=rows,
                department=department,
                waiting=waiting,
                labels=labels,
            )

    @router.get("/one-application/{application_id}", response_class=HTMLResponse)
    def one(request: Request, application_id: str, lang: str = "zh") -> Response:
        lang = lang_of(lang)
        with sessions() as session:
            application = _load(session, request, application_id)
            base = f"/one-application/{application.id}"
            if application.state == "draft":
                return _render(
                    request,
                    "apply_form.html",
                    lang,
                    base=base,
                    **form_context(session, application, lang),
                )
            return _render(
                request,
                "apply_status.html",
                lang,
                base=base,
                problems=[],
                notice="",
                **status_context(session, application, lang, clock.now()),
            )

    @router.post("/one-application/{application_id}/form", response_class=HTMLResponse)
    async def save(request: Request, application_id: str, lang: str = "zh") -> Response:
        lang = lang_of(lang)
        posted = await request.form(max_files=0, max_fields=200)
        data = {k: [str(v) for v in posted.getlist(k)] for k in posted}
        admin = admin_of(request)

        def work() -> Response:
            now = clock.now()
            with sessions.begin() as session:
                application = _load(session, request, application_id)
                base = f"/one-application/{application.id}"
                township = (data.get("township") or [""])[-1].strip()
                if township and not admin.covers(township):
                    problem = Problem(
                        "township",
                        "安置地",
                        *FAMILIES["applications"]["outside"],
                    )
                    context = form_context(session, application, lang, problems=[problem])
                    return _render(request, "apply_form.html", lang, 400, base=base, **context)
                problems, submitted, chosen, fields = post_form(session, application, data, now=now)
                if submitted:
                    return RedirectResponse(f"{base}?lang={lang}", 303)
                context = form_context(
                    session,
                    application,
                    lang,
                    problems=problems,
                    posted=fields,
                    chosen=chosen,
                    notice="" if problems else text_for(lang)["saved"],
                )
                return _render(
                    request, "apply_form.html", lang, 400 if problems else 200, base=base, **context
                )

        return await anyio.to_thread.run_sync(work)

    @router.post("/one-application/{application_id}/material", response_class=HTMLResponse)
    async def material(request: Request, application_id: str, lang: str = "zh") -> Response:
        lang = lang_of(lang)
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MATERIAL_MAX_BYTES + _FORM_SLACK:
            raise HTTPException(413, text_for(lang)["too_large"])
        posted = await request.form(max_files=1, max_fields=5)
        key = str(posted.get("key", ""))
        upload = posted.get("file")
        content, declared = b"", ""
        if upload is not None and not isinstance(upload, str):
            content = await upload.read(MATERIAL_MAX_BYTES + 1)
            declared = upload.content_type or ""

        def work() -> Response:
            now = clock.now()
            with sessions.begin() as session:
                application = _load(session, request, application_id)
                base = f"/one-application/{application.id}"
                problems = post_material(session, application, key, content, declared, now=now)
                status = 400 if problems else 200
                if application.state == "draft":
                    context = form_context(session, application, lang, problems=problems)
                    return _render(request, "apply_form.html", lang, status, base=base, **context)
                context = status_context(session, application, lang, now)
                shown = [(p.label, p.en if lang == "en" else p.zh) for p in problems]
                return _render(
                    request,
                    "apply_status.html",
                    lang,
                    status,
                    base=base,
                    problems=shown,
                    notice="",
                    **context,
                )

        return await anyio.to_thread.run_sync(work)

    return router


def _load_row(load: DepartmentLoad) -> dict[str, Any]:
    closed = ("done", "rejected", "failed", "unrouted")
    return {
        "id": load.id,
        "kind": load.kind,
        "name": load.name,
        "enabled": load.enabled,
        "by_state": load.by_state,
        "overdue": load.overdue,
        "pending_deliveries": load.pending_deliveries,
        "waiting": sum(n for s, n in load.by_state.items() if s not in closed),
    }
