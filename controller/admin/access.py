"""Who may call what in the admin app: every request but the login page is authenticated (a
session cookie from ``/login`` or ``Authorization: Bearer TOKEN``), matched against the route
table below for the action it needs, and checked against the admin's region prefix for any
device, command, record or township named in its path. Handlers narrow region filters with
``admin_of(request).narrow(...)``. Every refusal is logged and stored (``access_denials``).

The table fails closed: a route with no line here is refused to everybody, so a page added
later cannot leak by default (tests/unit/test_admin_scopes.py checks every route has a line).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from controller.admin_accounts import (
    AccessDenied,
    AccessError,
    AdminIdentity,
    LoginRequired,
    record_denial,
    resolve_session,
    resolve_token,
)
from controller.db.models import Command, Device, Record
from muster.clock import Clock

SESSION_COOKIE = "muster_session"
PUBLIC_PATHS = ("/login", "/static/", "/favicon.ico")

# (method, path template, action). HEAD is treated as GET.
ROUTE_ACTIONS: tuple[tuple[str, str, str], ...] = (
    # devices and fleet (controller/admin/app.py, fleet.py)
    ("GET", "/", "read"),
    ("GET", "/devices", "read"),
    ("GET", "/devices/{device_id}", "read"),
    ("POST", "/devices/{device_id}/commands", "command"),
    ("GET", "/alerts", "read"),
    ("GET", "/flow", "read"),
    ("GET", "/api/v1/devices", "read"),
    ("GET", "/api/v1/summary", "read"),
    ("GET", "/api/v1/regions", "read"),
    ("GET", "/api/v1/alerts", "read"),
    ("GET", "/api/v1/telemetry", "read"),
    ("GET", "/api/v1/devices/{device_id}/commands", "read"),
    ("POST", "/api/v1/devices/{device_id}/commands", "command"),
    ("GET", "/api/v1/commands/{command_id}", "read"),
    # enrolment codes and revocation (codes.py)
    ("GET", "/codes", "read"),
    ("POST", "/codes", "command"),
    ("GET", "/api/v1/enrollment-codes", "read"),
    ("POST", "/api/v1/enrollment-codes", "command"),
    ("POST", "/api/v1/devices/{device_id}/revoke", "command"),
    # the admin's own session
    ("GET", "/me", "read"),
    ("GET", "/api/v1/me", "read"),
    ("POST", "/logout", "read"),
    ("GET", "/logout", "read"),
    ("GET", "/docs", "read"),
    ("GET", "/openapi.json", "read"),
    ("GET", "/redoc", "read"),
    ("GET", "/docs/oauth2-redirect", "read"),
    # progress, review, reports, exports (progress_pages.py)
    ("GET", "/progress", "read"),
    ("GET", "/progress.xlsx", "export"),
    ("GET", "/api/v1/progress", "read"),
    ("GET", "/approved.xlsx", "export"),
    ("GET", "/reports/weekly", "read"),
    ("GET", "/reports/weekly.xlsx", "export"),
    ("GET", "/api/v1/reports/weekly", "read"),
    ("GET", "/deadlines", "read"),
    ("POST", "/deadlines", "deadline"),
    ("PUT", "/api/v1/deadlines/{phase}", "deadline"),
    ("GET", "/api/v1/deadlines", "read"),
    ("GET", "/townships/{township}", "read"),
    ("GET", "/api/v1/townships/{township}/missing", "read"),
    ("POST", "/townships/{township}/declare", "declare"),
    ("POST", "/api/v1/townships/{township}/declare", "declare"),
    ("GET", "/review", "read"),
    ("GET", "/api/v1/review", "read"),
    ("GET", "/review/{record_id}", "read"),
    ("GET", "/api/v1/records/{record_id}", "read"),
    ("GET", "/api/v1/records/{record_id}/attachments/{name}", "read"),
    ("GET", "/api/v1/records/{record_id}/attachments/{name}", "read"),
    ("POST", "/review/{record_id}", "review"),
    ("POST", "/api/v1/records/{record_id}/approve", "review"),
    ("POST", "/api/v1/records/{record_id}/return", "review"),
    ("POST", "/forward", "forward"),
    ("POST", "/api/v1/forward", "forward"),
    ("GET", "/audit", "read"),
    ("GET", "/api/v1/audit", "read"),
    ("GET", "/api/v1/denials", "read"),
)

_COMPILED = [(m, compile_path(p)[0], p, a) for m, p, a in ROUTE_ACTIONS]


def match_rule(method: str, path: str) -> tuple[str, str, dict[str, str]] | None:
    """(template, action, path parameters) of the rule for a request, or None."""
    method = "GET" if method == "HEAD" else method
    for rule_method, regex, template, action in _COMPILED:
        if rule_method == method:
            found = regex.match(path)
            if found:
                return template, action, found.groupdict()
    return None


def admin_of(request: Request) -> AdminIdentity:
    """The admin making this request (set by the access middleware before any handler)."""
    admin = request.scope.get("state", {}).get("admin")
    if not isinstance(admin, AdminIdentity):
        raise LoginRequired("请先登录")
    return admin


def _township_of(session: Session, name: str, value: str) -> tuple[str, str] | None:
    """(township code, what to call it in a message) of the object a path parameter names."""
    if name == "device_id":
        code = session.scalar(select(Device.township_code).where(Device.id == value))
        return (code, f"设备 {value}") if code else None
    if name == "command_id":
        code = session.scalar(
            select(Device.township_code)
            .join(Command, Command.device_id == Device.id)
            .where(Command.id == value)
        )
        return (code, f"命令 {value}") if code else None
    if name == "record_id":
        code = session.scalar(select(Record.township_code).where(Record.record_id == value))
        return (code, f"记录 {value}") if code else None
    if name == "township":
        return (value, f"乡镇 {value}")
    return None


class AccessControl:
    """Pure ASGI middleware: authenticate, authorise by route and region, then pass on."""

    def __init__(
        self,
        app: ASGIApp,
        sessions: sessionmaker[Session],
        clock: Clock,
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(PUBLIC_PATHS):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            admin = await anyio.to_thread.run_sync(self._check, request)
        except AccessError as exc:
            response = await anyio.to_thread.run_sync(
                refusal, self.sessions, request, exc, "", self.clock.now()
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["admin"] = admin
        await self.app(scope, receive, send)

    def _credentials(self, request: Request) -> tuple[str, str]:
        header = request.headers.get("authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise LoginRequired("Authorization 头应写成 Bearer <令牌>")
            return "token", token.strip()
        return "cookie", request.cookies.get(SESSION_COOKIE, "")

    def _check(self, request: Request) -> AdminIdentity:
        kind, secret = self._credentials(request)
        if not secret:
            raise LoginRequired("请先登录")
        now = self.clock.now()
        with self.sessions.begin() as session:
            if kind == "token":
                admin = resolve_token(session, secret)
            else:
                admin = resolve_session(session, secret, now)
        request.scope.setdefault("state", {})["admin"] = admin
        rule = match_rule(request.method, request.url.path)
        if rule is None:
            raise AccessDenied(
                f"{request.method} {request.url.path} 没有访问规则（controller/admin/access.py），"
                "一律拒绝"
            )
        _template, action, params = rule
        admin.require(action)
        with self.sessions() as session:
            for name, value in params.items():
                found = _township_of(session, name, value)
                if found is not None:
                    admin.require_covers(found[0], found[1])
        return admin


def refusal(
    sessions: sessionmaker[Session],
    request: Request,
    exc: AccessError,
    username: str,
    now: datetime,
) -> Response:
    """Log and store the refusal, and answer it: JSON for the API, a page or a login redirect
    for the browser."""
    admin = request.scope.get("state", {}).get("admin")
    who = admin.username if isinstance(admin, AdminIdentity) else username
    path = request.url.path
    with sessions.begin() as session:
        record_denial(
            session,
            username=who,
            method=request.method,
            path=path + (f"?{request.url.query}" if request.url.query else ""),
            reason=str(exc),
            now=now,
        )
    is_api = path.startswith("/api/") or "authorization" in request.headers
    if isinstance(exc, LoginRequired):
        if is_api:
            return JSONResponse(
                {"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        target = path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    if is_api:
        return JSONResponse({"detail": str(exc)}, status_code=403)
    body = (
        '<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>无权访问</title>'
        '<body style="font-family:sans-serif;margin:2rem"><h1>无权访问 (forbidden)</h1>'
        f'<p class="error" data-testid="denied">{_escape(str(exc))}</p>'
        '<p><a href="/">返回首页</a></p></body></html>'
    )
    return HTMLResponse(body, status_code=403)


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def install_access_control(app: FastAPI, sessions: sessionmaker[Session], clock: Clock) -> None:
    """Login pages, the middleware and the 403 answer for refusals raised inside handlers."""
    from controller.admin.login import login_router

    async def denied(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AccessError)
        return await anyio.to_thread.run_sync(refusal, sessions, request, exc, "", clock.now())

    app.add_exception_handler(AccessError, denied)
    app.add_middleware(AccessControl, sessions=sessions, clock=clock)
    app.include_router(login_router(sessions, clock))


def routes_of(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, included routers too (for the tests)."""
    found: list[tuple[str, str]] = []

    def walk(routes: list[Any]) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(list(inner.routes))
                continue
            for method in sorted(getattr(route, "methods", None) or ()):
                if method != "HEAD":
                    found.append((method, route.path))

    walk(list(app.router.routes))
    return found
