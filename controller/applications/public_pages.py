"""The applicant's pages, mobile-friendly, Chinese (English with ``?lang=en``): start an
application, fill the one form, upload each material once, submit, follow each item.

The applicant holds the application by a random token in an HttpOnly, SameSite=Strict cookie
(only its hash is stored); a state-changing request whose Origin or Referer names another site
is refused. Uploads larger than the material limit are refused from their Content-Length before
the body is read."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from controller.applications.form_views import (
    TEMPLATES,
    form_context,
    post_form,
    post_material,
    status_context,
)
from controller.applications.page_text import lang_of, text_for
from controller.applications.store import application_by_token, new_application
from controller.db.models import Application
from muster.clock import Clock
from muster.errors import NotFoundError
from muster.one_application import MATERIAL_MAX_BYTES

__all__ = ["APPLICANT_COOKIE", "applicant_router"]

APPLICANT_COOKIE = "muster_applicant"
BASE = "/apply"
_FORM_SLACK = 64 * 1024  # multipart framing and the key field around the file


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(
        TEMPLATES.get_template(name).render(base=BASE, csrf="", show_department=False, **context),
        status,
    )


def _foreign_origin(request: Request) -> bool:
    named = request.headers.get("origin") or request.headers.get("referer") or ""
    if not named:
        return False  # non-browser clients; the cookie is SameSite=Strict anyway
    return urlsplit(named).netloc != request.headers.get("host", "")


def applicant_router(sessions: sessionmaker[Session], clock: Clock) -> APIRouter:
    router = APIRouter()

    def _application(session: Session, request: Request) -> Application | None:
        token = request.cookies.get(APPLICANT_COOKIE, "")
        if not token or len(token) > 100:
            return None
        try:
            return application_by_token(session, token)
        except NotFoundError:
            return None

    def _refused(lang: str, key: str, status: int) -> HTMLResponse:
        t = text_for(lang)
        return _render("apply_landing.html", status, t=t, lang=lang, message=t[key])

    @router.get("/apply", response_class=HTMLResponse)
    def landing(request: Request, lang: str = "zh") -> Response:
        lang = lang_of(lang)
        with sessions() as session:
            application = _application(session, request)
            if application is not None:
                page = "form" if application.state == "draft" else "status"
                return RedirectResponse(f"{BASE}/{page}?lang={lang}", 303)
        return _render("apply_landing.html", t=text_for(lang), lang=lang, message="")

    @router.post("/apply/new")
    def start(request: Request, lang: str = "zh") -> Response:
        lang = lang_of(lang)
        if _foreign_origin(request):
            return _refused(lang, "bad_origin", 403)
        with sessions.begin() as session:
            _app_id, token = new_application(session, now=clock.now())
        answer = RedirectResponse(f"{BASE}/form?lang={lang}", 303)
        answer.set_cookie(
            APPLICANT_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            max_age=180 * 86400,
            path=BASE,
            secure=request.url.scheme == "https",
        )
        return answer

    @router.get("/apply/form", response_class=HTMLResponse)
    def form(request: Request, lang: str = "zh") -> Response:
        lang = lang_of(lang)
        with sessions() as session:
            application = _application(session, request)
            if application is None:
                return _refused(lang, "not_found", 404)
            if application.state != "draft":
                return RedirectResponse(f"{BASE}/status?lang={lang}", 303)
            return _render("apply_form.html", **form_context(session, application, lang))

    @router.post("/apply/form", response_class=HTMLResponse)
    async def save(request: Request, lang: str = "zh") -> Response:
        lang = lang_of(lang)
        if _foreign_origin(request):
            return _refused(lang, "bad_origin", 403)
        posted = await request.form(max_files=0, max_fields=200)
        data = {k: [str(v) for v in posted.getlist(k)] for k in posted}

        def work() -> Response:
            now = clock.now()
            with sessions.begin() as session:
                application = _application(session, request)
                if application is None:
                    return _refused(lang, "not_found", 404)
                problems, submitted, chosen, fields = post_form(session, application, data, now=now)
                if submitted:
                    return RedirectResponse(f"{BASE}/status?lang={lang}&submitted=1", 303)
                notice = (
                    ""
                    if problems or data.get("action", [""])[-1] != "save"
                    else text_for(lang)["saved"]
                )
                context = form_context(
                    session,
                    application,
                    lang,
                    problems=problems,
                    posted=fields,
                    chosen=chosen,
                    notice=notice,
                )
                return _render("apply_form.html", 400 if problems else 200, **context)

        return await anyio.to_thread.run_sync(work)

    @router.post("/apply/material", response_class=HTMLResponse)
    async def material(request: Request, lang: str = "zh") -> Response:
        lang = lang_of(lang)
        if _foreign_origin(request):
            return _refused(lang, "bad_origin", 403)
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MATERIAL_MAX_BYTES + _FORM_SLACK:
            return _refused(lang, "too_large", 413)
        posted = await request.form(max_files=1, max_fields=5)
        key = str(posted.get("key", ""))
        upload = posted.get("file")
        content = b""
        declared = ""
        if upload is not None and not isinstance(upload, str):
            content = await upload.read(MATERIAL_MAX_BYTES + 1)
            declared = upload.content_type or ""

        def work() -> Response:
            now = clock.now()
            with sessions.begin() as session:
                application = _application(session, request)
                if application is None:
                    return _refused(lang, "not_found", 404)
                problems = post_material(session, application, key, content, declared, now=now)
                if application.state == "draft":
                    context = form_context(session, application, lang, problems=problems)
                    return _render("apply_form.html", 400 if problems else 200, **context)
                context = status_context(session, application, lang, now)
                return _render(
                    "apply_status.html",
                    400 if problems else 200,
                    problems=[(p.label, p.en if lang == "en" else p.zh) for p in problems],
                    notice="",
                    **context,
                )

        return await anyio.to_thread.run_sync(work)

    @router.get("/apply/status", response_class=HTMLResponse)
    def status(request: Request, lang: str = "zh", submitted: str = "") -> Response:
        lang = lang_of(lang)
        with sessions() as session:
            application = _application(session, request)
            if application is None:
                return _refused(lang, "not_found", 404)
            if application.state == "draft":
                return RedirectResponse(f"{BASE}/form?lang={lang}", 303)
            context = status_context(session, application, lang, clock.now())
            notice = text_for(lang)["submitted"] if submitted else ""
            return _render("apply_status.html", problems=[], notice=notice, **context)

    return router
