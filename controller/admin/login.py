"""Logging in and out of the admin pages, and who the current admin is.

``POST /login`` checks the password (scrypt, see controller/accounts/admins.py) on the bounded
password pool, never on the event loop, after the name and the address have been checked
against their lockouts (controller/admin/login_guard.py), and sets an HttpOnly, SameSite=Strict
session cookie. The forms the session then posts carry its CSRF token as well
(controller/admin/csrf.py): SameSite alone is not kept by every browser. A login body over
``LOGIN_BODY_MAX`` is refused (413) before it is read in full; the address the lockouts count
is the socket's peer unless that is a trusted proxy (``client_address``). Signing out is a POST
(with the token); ``GET /logout`` only shows the button.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qs

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from controller.accounts.admins import (
    ABSOLUTE_TIMEOUT,
    ACTIONS,
    PERMISSIONS,
    ROLES,
    AccessDenied,
    login,
    logout,
    record_denial,
)
from controller.admin.access import SESSION_COOKIE, admin_of
from controller.admin.login_guard import (
    LoginBusy,
    LoginRefused,
    LoginThrottle,
    PasswordWorkers,
)
from controller.admin.text import texts
from muster.client_address import Network, client_address
from muster.clock import Clock

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
LANG = "^(zh|en)$"
LOGIN_BODY_MAX = 8 * 1024


class MeView(BaseModel):
    username: str
    role: str
    role_name: str
    region: str
    may: list[str]


def _safe_next(target: str) -> str:
    # Only a path on this site: never an absolute URL someone slipped into the link.
    return target if target.startswith("/") and not target.startswith("//") else "/"


def login_router(
    sessions: sessionmaker[Session],
    clock: Clock,
    *,
    workers: PasswordWorkers,
    throttle: LoginThrottle,
    proxies: Sequence[Network] = (),
) -> APIRouter:
    router = APIRouter()

    def form(
        request: Request,
        lang: str,
        next_: str,
        error: str = "",
        status_code: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response:
        other = "en" if lang == "zh" else "zh"
        return TEMPLATES.TemplateResponse(
            request,
            "login.html",
            {
                "t": texts(lang, "account"),
                "lang": lang,
                "path": "/login",
                "switch_url": f"/login?lang={other}&next={next_}",
                "next": _safe_next(next_),
                "error": error,
            },
            status_code=status_code,
            headers=headers,
        )

    def deny(username: str, reason: str) -> None:
        with sessions.begin() as session:
            record_denial(
                session,
                username=username,
                method="POST",
                path="/login",
                reason=reason,
                now=clock.now(),
            )

    def check_password(username: str, password: str) -> str:
        with sessions.begin() as session:
            cookie, _admin = login(session, username, password, clock.now())
        return cookie

    @router.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(
        request: Request,
        lang: str = Query("zh", pattern=LANG),
        next_: str = Query("/", alias="next", max_length=500),
    ) -> Response:
        return form(request, lang, next_)

    @router.post("/login", include_in_schema=False)
    async def login_submit(request: Request) -> Response:
        # Bounded before anything is read into memory or parsed: a name, a password and a
        # target fit in a few hundred bytes.
        too_large = JSONResponse(
            {"detail": f"登录请求体超过 {LOGIN_BODY_MAX // 1024} KiB，已拒绝 (body too large)"},
            status_code=413,
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > LOGIN_BODY_MAX:
            return too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > LOGIN_BODY_MAX:
                return too_large
            chunks.append(chunk)
        body = b"".join(chunks).decode("utf-8", "replace")
        fields = {k: v[-1] for k, v in parse_qs(body).items()}
        lang = fields.get("lang") if fields.get("lang") in ("zh", "en") else "zh"
        assert lang is not None
        username = fields.get("username", "").strip()[:32]
        password = fields.get("password", "")
        target = _safe_next(fields.get("next", "/"))
        peer = request.client.host if request.client is not None else ""
        address = client_address(peer, request.headers.getlist("x-forwarded-for"), proxies)
        try:
            await anyio.to_thread.run_sync(throttle.check, username, address)
            cookie = await workers.run(lambda: check_password(username, password))
        except LoginRefused as exc:
            # Locked or busy: no password was looked at, and none is counted.
            await anyio.to_thread.run_sync(deny, username, str(exc))
            return form(
                request,
                lang,
                target,
                error=str(exc),
                status_code=503 if isinstance(exc, LoginBusy) else 429,
                headers={"Retry-After": str(exc.retry_after_s)},
            )
        except AccessDenied as exc:
            locked = await anyio.to_thread.run_sync(throttle.failed, username, address)
            reason = f"{exc}；{locked}" if locked is not None else str(exc)
            await anyio.to_thread.run_sync(deny, username, reason)
            return form(request, lang, target, error=reason, status_code=401)
        await anyio.to_thread.run_sync(throttle.succeeded, username)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=int(ABSOLUTE_TIMEOUT.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    # GET only asks: an <img src=/logout> on another site must not sign anybody out. The
    # POST carries the session's CSRF token and origin, which access.py checks.
    @router.get("/logout", response_class=HTMLResponse, include_in_schema=False)
    def logout_page(request: Request, lang: str = Query("zh", pattern=LANG)) -> Response:
        other = "en" if lang == "zh" else "zh"
        return TEMPLATES.TemplateResponse(
            request,
            "logout.html",
            {
                "t": texts(lang, "account"),
                "lang": lang,
                "path": "/logout",
                "switch_url": f"/logout?lang={other}",
            },
        )

    @router.post("/logout", include_in_schema=False)
    def logout_submit(request: Request) -> Response:
        cookie = request.cookies.get(SESSION_COOKIE, "")
        if cookie:
            with sessions.begin() as session:
                logout(session, cookie)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    def me(request: Request) -> MeView:
        admin = admin_of(request)
        return MeView(
            username=admin.username,
            role=admin.role,
            role_name=ROLES[admin.role],
            region=admin.prefix,
            may=sorted(PERMISSIONS[admin.role]),
        )

    @router.get("/api/v1/me", response_model=MeView, tags=["admin"])
    def api_me(request: Request) -> MeView:
        """The admin this token or session belongs to: role, region prefix, what they may do."""
        return me(request)

    @router.get("/me", response_class=HTMLResponse, include_in_schema=False)
    def me_page(request: Request, lang: str = Query("zh", pattern=LANG)) -> Response:
        other = "en" if lang == "zh" else "zh"
        return TEMPLATES.TemplateResponse(
            request,
            "me.html",
            {
                "t": texts(lang, "account"),
                "lang": lang,
                "path": "/me",
                "switch_url": f"/me?lang={other}",
                "me": me(request),
                "actions": ACTIONS,
            },
        )

    return router
