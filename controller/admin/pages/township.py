"""A township's page: who of its slice has no record yet, and declaring its collection complete
(with a note while people are missing), as a page and as ``/api/v1/townships/...``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from controller.admin.access import admin_of
from controller.admin.pages.record_views import record_page
from controller.admin.pages.rendering import LANG, Store, form_body, form_lang
from controller.db.models import TownshipDeclaration
from controller.records.region_tree import region_names
from controller.records.review import declare_complete, missing_people
from muster.clock import Clock
from muster.errors import ConfigError

__all__ = ["MissingView", "township_code", "township_router"]


class DeclareRequest(BaseModel):
    note: str = Field(default="", max_length=500)


class MissingView(BaseModel):
    id_number: str
    name: str
    category: str


def township_code(value: str) -> str:
    """The 12-digit code of a township named by 9 or 12 digits; 422 for anything else."""
    if not value.isdigit() or len(value) not in (9, 12):
        raise HTTPException(422, "乡镇代码应为9位或12位数字")
    return value if len(value) == 12 else value + "000"


def township_router(sessions: sessionmaker[Session], clock: Clock) -> APIRouter:
    router = APIRouter()
    store = Store(sessions)

    def missing(township: str, limit: int = 5000) -> list[MissingView]:
        return [
            MissingView(id_number=p.id_number, name=p.name, category=p.category)
            for p in store.read(lambda s: missing_people(s, township, limit))
        ]

    @router.get(
        "/api/v1/townships/{township}/missing", response_model=list[MissingView], tags=["review"]
    )
    def api_missing(township: str) -> list[MissingView]:
        """People of the township's slice with no record yet (S-09)."""
        return missing(township_code(township))

    def declare(request: Request, township: str, note: str) -> TownshipDeclaration:
        admin = admin_of(request)
        now = clock.now()
        return store.write(lambda s: declare_complete(s, township, admin, now, note))

    @router.post("/api/v1/townships/{township}/declare", tags=["review"])
    def api_declare(request: Request, township: str, body: DeclareRequest) -> dict[str, Any]:
        """Declare the township's collection complete; with people missing, say why in note."""
        try:
            row = declare(request, township_code(township), body.note)
        except ConfigError as exc:
            raise HTTPException(409, str(exc)) from exc
        return {
            "township": row.township_code,
            "declared_at": row.declared_at,
            "missing": row.missing,
        }

    def township_page(
        request: Request, township: str, lang: str, error: str = "", status_code: int = 200
    ) -> Response:
        code = township_code(township)
        people = missing(code, 2000)
        declaration = store.read(lambda s: s.get(TownshipDeclaration, code))
        names = store.read(lambda s: region_names(s, [code[:9], code[:6]]))
        return record_page(
            request,
            "township.html",
            lang,
            status_code=status_code,
            code=code,
            name=f"{names[code[:6]]} {names[code[:9]]}",
            people=people,
            declaration=declaration,
            error=error,
        )

    @router.get("/townships/{township}", response_class=HTMLResponse, include_in_schema=False)
    def township_view(
        request: Request, township: str, lang: str = Query("zh", pattern=LANG)
    ) -> Response:
        return township_page(request, township, lang)

    @router.post("/townships/{township}/declare", include_in_schema=False)
    async def township_declare(request: Request, township: str) -> Response:
        form = form_body(await request.body())
        lang = form_lang(form)
        try:
            declare(request, township_code(township), form.get("note", ""))
        except ConfigError as exc:
            return township_page(request, township, lang, error=str(exc), status_code=409)
        return RedirectResponse(f"/townships/{township}?lang={lang}", status_code=303)

    return router
