"""Who may call what in the admin app: every request but the login page is authenticated (a
session cookie from ``/login`` or ``Authorization: Bearer TOKEN``), matched against the route
table below for the action it needs, and checked against the admin's region prefix for any
device, command, record or township named in its path. Handlers narrow region filters with
``admin_of(request).narrow(...)``. Every refusal is logged and stored (``access_denials``).

The table fails closed: a route with no line here is refused to everybody, so a page added
later cannot leak by default (tests/unit/test_admin_scopes.py checks every route has a line).
A request with no line, a page that does not exist, is answered 404 and says no more.
(Over 400 lines because of that table: one line per route of every page family, kept in one
place so a reviewer reads every route's action together; the logic is the smaller part.)

A state-changing request made with the session cookie must also come from this site and carry
the session's CSRF token (controller/admin/csrf.py); the middleware reads such a request's body
(at most ``FORM_BODY_MAX`` bytes) to find the token and hands it on unchanged.

Over 400 lines because it is the one access table of the admin app (every route's rule) with the
check that applies it; splitting the table would hide a route without a rule.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

import anyio.to_thread
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from controller.accounts.admins import (
    AccessDenied,
    AccessError,
    AdminIdentity,
    LoginRequired,
    UnknownPage,
    record_denial,
    resolve_session,
    resolve_token,
)
from controller.admin.csrf import STATE_CHANGING, csrf_problem, csrf_token_for, origin_problem
from controller.db.models import Alert, Command, Device, Record
from muster.clock import Clock

log = structlog.get_logger(__name__)

SESSION_COOKIE = "muster_session"
PUBLIC_PATHS = ("/login", "/static/", "/favicon.ico", "/self-service/")
# The pages' forms are a few fields; a cookie request's body is read whole to find its token.
FORM_BODY_MAX = 1024 * 1024

# (method, path template, action). HEAD is treated as GET.
ROUTE_ACTIONS: tuple[tuple[str, str, str], ...] = (
    # devices and fleet (controller/admin/app.py, fleet.py)
    ("GET", "/", "read"),
    ("GET", "/devices", "read"),
    ("GET", "/devices.xlsx", "export"),
    ("GET", "/devices.csv", "export"),
    ("GET", "/devices/{device_id}", "read"),
    ("POST", "/devices/{device_id}/commands", "command"),
    ("GET", "/alerts", "read"),
    ("POST", "/alerts/{alert_id}/ack", "command"),
    ("POST", "/alerts/{alert_id}/assign", "command"),
    ("POST", "/api/v1/alerts/{alert_id}/ack", "command"),
    ("POST", "/api/v1/alerts/{alert_id}/assign", "command"),
    ("GET", "/flow", "read"),
    ("GET", "/api/v1/devices", "read"),
    ("GET", "/api/v1/summary", "read"),
    ("GET", "/api/v1/regions", "read"),
    ("GET", "/api/v1/alerts", "read"),
    ("GET", "/api/v1/telemetry", "read"),
    ("GET", "/api/v1/devices/{device_id}/commands", "read"),
    ("POST", "/api/v1/devices/{device_id}/commands", "command"),
    ("GET", "/api/v1/commands/{command_id}", "read"),
    # software versions and rollouts (release_pages.py)
    ("GET", "/releases", "read"),
    ("GET", "/api/v1/releases", "read"),
    ("GET", "/api/v1/devices/{device_id}/updates", "read"),
    ("POST", "/api/v1/devices/{device_id}/update-retry", "command"),
    ("POST", "/devices/{device_id}/update-retry", "command"),
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
    ("GET", "/docs/assets/{name}", "read"),
    # progress, review, reports, exports (pages/)
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
    # accounts of the area (pages/accounts.py; whom one may manage: accounts/delegation.py)
    ("GET", "/accounts", "read"),
    ("GET", "/api/v1/accounts", "read"),
    ("POST", "/accounts/admins", "accounts"),
    ("POST", "/accounts/admins/disable", "accounts"),
    ("POST", "/accounts/clerks", "accounts"),
    ("POST", "/accounts/clerks/disable", "accounts"),
    ("POST", "/api/v1/admins", "accounts"),
    ("POST", "/api/v1/admins/{username}/disable", "accounts"),
    ("POST", "/api/v1/clerks", "accounts"),
    ("POST", "/api/v1/clerks/{township}/{username}/disable", "accounts"),
    ("GET", "/api/v1/audit", "read"),
    ("GET", "/api/v1/denials", "read"),
    # the annual confirmation (confirmation_pages.py); /self-service/ is public (PUBLIC_PATHS)
    ("GET", "/confirmation", "read"),
    ("GET", "/confirmation/notice", "read"),
    ("GET", "/confirmation/stops", "read"),
    ("GET", "/confirmation/overpayments", "read"),
    ("GET", "/confirmation/hardship", "read"),
    ("GET", "/confirmation/self-service", "read"),
    ("GET", "/confirmation/self-service/selfie", "read"),
    ("GET", "/confirmation/self-service/reference", "read"),
    ("POST", "/confirmation/self-service", "review"),
    ("POST", "/confirmation/deaths", "review"),
    ("GET", "/confirmation/weekly.xlsx", "export"),
    ("GET", "/self-service/confirm", "read"),
    ("POST", "/self-service/confirm", "read"),
    # departments' comparisons (comparison_pages.py)
    ("GET", "/comparisons", "read"),
    ("GET", "/api/v1/comparisons", "read"),
    # S-30 one application: service centre, tracking, department dashboard (application_pages.py)
    ("GET", "/one-application", "read"),
    ("POST", "/one-application/new", "apply"),
    ("GET", "/one-application/departments", "read"),
    ("GET", "/one-application/departments/{department_id}", "read"),
    ("GET", "/one-application/{application_id}", "read"),
    ("POST", "/one-application/{application_id}/form", "apply"),
    ("POST", "/one-application/{application_id}/material", "apply"),
    # tasks for the townships from the comparisons (task_pages.py)
    ("GET", "/tasks", "read"),
    ("POST", "/tasks", "review"),
    ("GET", "/api/v1/tasks", "read"),
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
    if name == "alert_id" and value.isdigit() and len(value) < 19:
        code = session.scalar(
            select(Device.township_code)
            .join(Alert, Alert.device_id == Device.id)
            .where(Alert.id == int(value))
        )
        return (code, f"告警 {value}") if code else None
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
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        changing = request.method in STATE_CHANGING
        if scope["path"].startswith(PUBLIC_PATHS):
            # No session to ride on yet, but another site must not sign a browser in either.
            problem = origin_problem(request.headers, required=False) if changing else None
            if problem is not None:
                response = await anyio.to_thread.run_sync(
                    refusal, self.sessions, request, AccessDenied(problem), "", self.clock.now()
                )
                await response(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        body = b""
        if (
            changing
            and "authorization" not in request.headers
            and SESSION_COOKIE in (request.cookies)
        ):
            try:
                body = await _read_body(receive, FORM_BODY_MAX)
            except _TooLarge:
                await JSONResponse(
                    {"detail": f"请求体超过 {FORM_BODY_MAX // 1024} KiB，已拒绝"}, status_code=413
                )(scope, receive, send)
                return
            receive = _replay(body, receive)
        try:
            admin = await anyio.to_thread.run_sync(self._check, request, body)
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

    def _check(self, request: Request, body: bytes) -> AdminIdentity:
        kind, secret = self._credentials(request)
        if not secret:
            raise LoginRequired("请先登录")
        now = self.clock.now()
        with self.sessions.begin() as session:
            if kind == "token":
                admin = resolve_token(session, secret)
            else:
                admin = resolve_session(session, secret, now)
        state = request.scope.setdefault("state", {})
        state["admin"] = admin
        if kind == "cookie":
            state["csrf_token"] = csrf_token_for(secret)
            if request.method in STATE_CHANGING:
                problem = origin_problem(request.headers, required=True) or csrf_problem(
                    request.headers, body, secret
                )
                if problem is not None:
                    raise AccessDenied(problem)
        rule = match_rule(request.method, request.url.path)
        if rule is None:
            # Fail closed, and say no more than a 404 would: the rule table is ours to know.
            log.warning(
                "admin request has no access rule in controller/admin/access.py",
                method=request.method,
                path=request.url.path,
            )
            raise UnknownPage(f"没有这个页面：{request.method} {request.url.path[:100]}")
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
    if isinstance(exc, UnknownPage):
        if is_api:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        return HTMLResponse(_page("页面不存在 (not found)", str(exc), "not-found"), status_code=404)
    if isinstance(exc, LoginRequired):
        if is_api:
            return JSONResponse(
                {"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        target = path + (f"?{request.url.query}" if request.url.query else "")
        # The sign-in page speaks the language the page asked for; ``next`` keeps it after.
        lang = "&lang=en" if request.query_params.get("lang") == "en" else ""
        return RedirectResponse(f"/login?next={quote(target, safe='')}{lang}", status_code=303)
    if is_api:
        return JSONResponse({"detail": str(exc)}, status_code=403)
    return HTMLResponse(_page("无权访问 (forbidden)", str(exc), "denied"), status_code=403)


def _page(title: str, message: str, testid: str) -> str:
    return (
        f'<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>{_escape(title)}</title>'
        f'<body style="font-family:sans-serif;margin:2rem"><h1>{_escape(title)}</h1>'
        f'<p class="error" data-testid="{testid}">{_escape(message)}</p>'
        '<p><a href="/">返回首页</a></p></body></html>'
    )


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, or _TooLarge past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the app will see that on its own receive
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body already read, then whatever comes next."""
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def install_access_control(app: FastAPI, sessions: sessionmaker[Session], clock: Clock) -> None:
    """The middleware and the 403 answer for refusals raised inside handlers (the login pages
    are controller/admin/login.py's router)."""

    async def denied(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AccessError)
        return await anyio.to_thread.run_sync(refusal, sessions, request, exc, "", clock.now())

    app.add_exception_handler(AccessError, denied)
    app.add_middleware(AccessControl, sessions=sessions, clock=clock)


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
