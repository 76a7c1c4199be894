"""The accounts of the admin's area: its admins and township clerks listed, clerks added, reset
or disabled, and admins below the acting admin added, reset or disabled — as a page with forms
and as ``/api/v1/accounts``, ``/api/v1/admins``, ``/api/v1/clerks``. Passwords follow the CLI's
rule: the person setting up the account types the initial password (the account policy checks
it). Who may manage whom is ``controller/accounts/delegation.py``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from controller.accounts.admins import ROLES, AdminIdentity
from controller.accounts.delegation import (
    admins_of_area,
    clerks_of_area,
    managed_add_admin,
    managed_add_clerk,
    managed_disable_admin,
    managed_disable_clerk,
)
from controller.admin.access import admin_of
from controller.admin.pages.region_picker import area_regions
from controller.admin.pages.rendering import LANG, REGION, Store, form_body, form_lang, render
from muster.clock import Clock
from muster.errors import ConfigError, NotFoundError

__all__ = [
    "AccountsView",
    "AdminRequest",
    "AdminView",
    "ClerkRequest",
    "ClerkView",
    "accounts_router",
]


class AdminRequest(BaseModel):
    username: str = Field(max_length=32)
    role: str = Field(description=", ".join(ROLES))
    region: str = Field(pattern=r"^\d{0,12}$", description="region prefix inside your area")
    password: str = Field(max_length=200, description="initial password (account policy)")


class ClerkRequest(BaseModel):
    township: str = Field(pattern=r"^\d{9}(\d{3})?$", description="township in your area")
    username: str = Field(max_length=32)
    display_name: str = Field(max_length=64)
    password: str = Field(max_length=200, description="initial password (account policy)")


class AdminView(BaseModel):
    username: str
    role: str
    region: str
    disabled_at: datetime | None


class ClerkView(BaseModel):
    township: str
    username: str
    display_name: str
    disabled_at: datetime | None


class AccountsView(BaseModel):
    admins: list[AdminView]
    clerks: list[ClerkView]


def accounts_router(sessions: sessionmaker[Session], clock: Clock) -> APIRouter:
    router = APIRouter()
    store = Store(sessions)

    def listing(prefix: str) -> AccountsView:
        def read(s: Session) -> AccountsView:
            return AccountsView(
                admins=[
                    AdminView(
                        username=a.username,
                        role=a.role,
                        region=a.region_prefix,
                        disabled_at=a.disabled_at,
                    )
                    for a in admins_of_area(s, prefix)
                ],
                clerks=[
                    ClerkView(
                        township=c.township_code,
                        username=c.username,
                        display_name=c.display_name,
                        disabled_at=c.disabled_at,
                    )
                    for c in clerks_of_area(s, prefix)
                ],
            )

        return store.read(read)

    def change(fn: Callable[[Session], Any]) -> None:
        """Run one account change in a transaction; a bad field is a 422 naming it."""
        try:
            store.write(fn)
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from exc

    def add_admin(admin: AdminIdentity, body: AdminRequest) -> None:
        change(
            lambda s: managed_add_admin(
                s,
                admin,
                username=body.username,
                role=body.role,
                region=body.region,
                password=body.password,
                now=clock.now(),
            )
        )

    def add_clerk(admin: AdminIdentity, body: ClerkRequest) -> None:
        change(
            lambda s: managed_add_clerk(
                s,
                admin,
                township=body.township,
                username=body.username,
                display_name=body.display_name,
                password=body.password,
                now=clock.now(),
            )
        )

    @router.get("/api/v1/accounts", response_model=AccountsView, tags=["accounts"])
    def api_accounts(request: Request, region: str = Query("", pattern=REGION)) -> AccountsView:
        """The admins and township clerks of your area (or a part of it)."""
        return listing(admin_of(request).narrow(region))

    @router.post("/api/v1/admins", status_code=201, tags=["accounts"])
    def api_add_admin(request: Request, body: AdminRequest) -> dict[str, str]:
        """Add (or reset) an admin below you: deeper in your area, or an auditor or technician
        at your own level."""
        add_admin(admin_of(request), body)
        return {"username": body.username}

    @router.post("/api/v1/admins/{username}/disable", tags=["accounts"])
    def api_disable_admin(request: Request, username: str) -> dict[str, str]:
        admin = admin_of(request)
        change(lambda s: managed_disable_admin(s, admin, username, clock.now()))
        return {"username": username}

    @router.post("/api/v1/clerks", status_code=201, tags=["accounts"])
    def api_add_clerk(request: Request, body: ClerkRequest) -> dict[str, str]:
        """Add (or reset) a township clerk in your area; the township's devices get the
        account with their next Health answer."""
        add_clerk(admin_of(request), body)
        return {"username": body.username}

    @router.post("/api/v1/clerks/{township}/{username}/disable", tags=["accounts"])
    def api_disable_clerk(request: Request, township: str, username: str) -> dict[str, str]:
        admin = admin_of(request)
        change(lambda s: managed_disable_clerk(s, admin, township, username, clock.now()))
        return {"username": username}

    def page(
        request: Request, lang: str, *, error: str = "", saved: str = "", status_code: int = 200
    ) -> Response:
        admin = admin_of(request)
        return render(
            request,
            "accounts.html",
            lang,
            "accounts",
            status_code=status_code,
            accounts=listing(admin.prefix),
            roles=list(ROLES),
            regions=store.read(lambda s: area_regions(s, admin.prefix)),
            townships=store.read(lambda s: area_regions(s, admin.prefix, min_length=9)),
            may_manage=admin.can("accounts"),
            me=admin.username,
            error=error,
            saved=saved,
        )

    @router.get("/accounts", response_class=HTMLResponse, include_in_schema=False)
    def accounts_page(
        request: Request, lang: str = Query("zh", pattern=LANG), saved: str = ""
    ) -> Response:
        return page(request, lang, saved=saved[:32])

    async def submit(request: Request, act: Callable[[dict[str, str]], None]) -> Response:
        form = form_body(await request.body())
        lang = form_lang(form)
        try:
            act(form)
        except HTTPException as exc:
            return page(request, lang, error=str(exc.detail), status_code=400)
        except ValueError as exc:  # pydantic's: the field it names is the first line
            return page(request, lang, error=_first_error(exc), status_code=400)
        return RedirectResponse(
            f"/accounts?lang={lang}&saved={form.get('username', '')[:32]}", status_code=303
        )

    @router.post("/accounts/admins", include_in_schema=False)
    async def page_add_admin(request: Request) -> Response:
        fields = ("username", "role", "region", "password")
        return await submit(
            request,
            lambda f: add_admin(
                admin_of(request),
                AdminRequest.model_validate({k: f.get(k, "") for k in fields}),
            ),
        )

    @router.post("/accounts/admins/disable", include_in_schema=False)
    async def page_disable_admin(request: Request) -> Response:
        admin = admin_of(request)
        return await submit(
            request,
            lambda f: change(
                lambda s: managed_disable_admin(s, admin, f.get("username", ""), clock.now())
            ),
        )

    @router.post("/accounts/clerks", include_in_schema=False)
    async def page_add_clerk(request: Request) -> Response:
        fields = ("township", "username", "display_name", "password")
        return await submit(
            request,
            lambda f: add_clerk(
                admin_of(request),
                ClerkRequest.model_validate({k: f.get(k, "") for k in fields}),
            ),
        )

    @router.post("/accounts/clerks/disable", include_in_schema=False)
    async def page_disable_clerk(request: Request) -> Response:
        admin = admin_of(request)
        return await submit(
            request,
            lambda f: change(
                lambda s: managed_disable_clerk(
                    s, admin, f.get("township", ""), f.get("username", ""), clock.now()
                )
            ),
        )

    return router


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}：{first['msg']}"
    return str(exc)
