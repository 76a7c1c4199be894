"""Signing in and out: the login page, the password check (lockout in :mod:`accounts`), the
session cookie."""

from __future__ import annotations

import asyncio

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from edge.console.accounts import LoginRefused
from edge.console.deps import COOKIE, Pages

__all__ = ["session_routes"]

log = structlog.get_logger(__name__)


def session_routes(pages: Pages) -> APIRouter:
    router = APIRouter()
    accounts = pages.services.accounts

    @router.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request, expired: int = 0) -> HTMLResponse:
        return pages.render(
            request,
            "login.html",
            None,
            error="登录已过期，请重新登录" if expired else "",
            accounts=accounts.count(),
        )

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        username = str(form.get("username", ""))
        try:
            clerk = await asyncio.to_thread(
                accounts.authenticate, username, str(form.get("password", ""))
            )
        except LoginRefused as exc:
            log.warning("console login refused", username=username, reason=exc.reason)
            return pages.render(
                request, "login.html", None, 401, error=str(exc), accounts=accounts.count()
            )
        token = pages.open_session(clerk)
        log.info("console login", username=clerk.username)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        session = pages.require(request)
        await pages.posted(request, session)
        pages.close_session(session)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    return router
