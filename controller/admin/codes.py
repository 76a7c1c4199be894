"""Enrolment codes in the admin UI and API, and device revocation through the API.

``/codes``: create a code for a township and profile with an expiry; the new code is shown once,
as text and as a QR code (inline SVG from segno, no external asset), because only its hash is
kept. The list below shows every code with its status (unused, used by which device, expired).
``POST /api/v1/enrollment-codes`` and ``GET /api/v1/enrollment-codes`` do the same for scripts;
``POST /api/v1/devices/{id}/revoke`` revokes a device as ``muster provision revoke`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import parse_qs

import segno
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.accounts.admins import AccessError, AdminIdentity
from controller.admin.access import admin_of
from controller.admin.pages.region_picker import area_townships
from controller.admin.pages.rendering import TEMPLATES
from controller.admin.text import texts
from controller.db.models import EnrollmentCode
from controller.devices.enrolment import create_enrollment_code
from controller.devices.revocation import AlreadyRevoked, UnknownDevice, revoke_device
from muster.clock import Clock
from muster.errors import MusterError
from muster.profiles import PROFILE_DIR, load_profile
from muster.regions import parse_township

LANG = "^(zh|en)$"
VALIDITY_CHOICES_H = (1, 12, 24, 72, 168, 720)
MAX_VALIDITY_H = 720


class CodeRequest(BaseModel):
    township: str = Field(pattern=r"^\d{12}$", description="12-digit township code")
    profile: str = Field(description="firmware profile name, e.g. fixed-kiosk")
    valid_hours: int = Field(default=168, ge=1, le=MAX_VALIDITY_H)


class NewCode(BaseModel):
    code: str
    township: str
    profile: str
    expires_at: datetime
    qr_svg: str
    qr_text: str


class CodeView(BaseModel):
    id: str  # the first characters of the stored hash: the code itself is not kept
    township: str
    profile: str
    created_at: datetime
    expires_at: datetime
    created_by: str
    status: str  # unused | used | expired
    used_by_device: str | None


class RevokeRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=200)


class RevokedView(BaseModel):
    device_id: str
    township_code: str
    revoked_at: datetime
    reason: str


def shipped_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def _status(code: EnrollmentCode, now: datetime) -> str:
    if code.used_at is not None:
        return "used"
    return "expired" if code.expires_at <= now else "unused"


def codes_router(
    sessions: sessionmaker[Session],
    clock: Clock,
    ticket: Callable[[str], str] | None = None,
) -> APIRouter:
    """``ticket`` turns a code into the QR payload a device enrols from (``MUSTER1/...``: the
    code, this controller's address and enrolment port, its CA's fingerprint); without one (an
    admin app with no key store, as in some tests) the QR holds the bare code."""
    router = APIRouter()

    def create(body: CodeRequest, admin: AdminIdentity) -> NewCode:
        region = parse_township(body.township)
        admin.require_covers(region.code, f"乡镇 {region.code}")
        created_by = admin.username
        load_profile(body.profile)
        now = clock.now()
        text = create_enrollment_code(
            sessions,
            township_code=region.code,
            profile=body.profile,
            valid_for=timedelta(hours=body.valid_hours),
            created_by=created_by,
            now=now,
        )
        qr_text = ticket(text) if ticket is not None else text
        qr = segno.make(qr_text, error="m")
        return NewCode(
            code=text,
            township=region.code,
            profile=body.profile,
            expires_at=now + timedelta(hours=body.valid_hours),
            qr_svg=qr.svg_inline(scale=5, title=qr_text),
            qr_text=qr_text,
        )

    def _townships(area: str) -> list[tuple[str, str]]:
        with sessions() as session:
            return area_townships(session, area)

    def listing(area: str, limit: int = 200) -> list[CodeView]:
        now = clock.now()
        with sessions() as session:
            rows = session.scalars(
                select(EnrollmentCode)
                .where(EnrollmentCode.township_code.startswith(area))
                .order_by(EnrollmentCode.created_at.desc())
                .limit(limit)
            ).all()
        return [
            CodeView(
                id=row.code_hash[:10],
                township=row.township_code,
                profile=row.profile,
                created_at=row.created_at,
                expires_at=row.expires_at,
                created_by=row.created_by,
                status=_status(row, now),
                used_by_device=row.used_by_device,
            )
            for row in rows
        ]

    def page(
        request: Request,
        lang: str,
        *,
        new: NewCode | None = None,
        error: str = "",
        form: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Response:
        other = "en" if lang == "zh" else "zh"
        return TEMPLATES.TemplateResponse(
            request,
            "codes.html",
            {
                "t": texts(lang, "codes"),
                "lang": lang,
                "path": request.url.path,
                "switch_url": f"{request.url.path}?lang={other}",
                "codes": listing(admin_of(request).prefix),
                "new": new,
                "error": error,
                "form": form or {},
                "profiles": shipped_profiles(),
                "validities": VALIDITY_CHOICES_H,
                "township_options": _townships(admin_of(request).prefix),
            },
            status_code=status_code,
        )

    @router.get("/codes", response_class=HTMLResponse, include_in_schema=False)
    def codes_page(request: Request, lang: str = Query("zh", pattern=LANG)) -> Response:
        return page(request, lang)

    @router.post("/codes", response_class=HTMLResponse, include_in_schema=False)
    async def codes_create(request: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode()).items()}
        lang = form.get("lang") if form.get("lang") in ("zh", "en") else "zh"
        assert lang is not None
        try:
            body = CodeRequest(
                township=form.get("township", "").strip(),
                profile=form.get("profile", ""),
                valid_hours=int(form.get("valid_hours") or 168),
            )
            new = create(body, admin_of(request))
        except AccessError:
            raise  # logged and answered 403 by the access control, not shown as a form error
        except (MusterError, ValueError) as exc:
            message = (
                "乡镇代码应为12位数字，有效期为1至720小时 (township: 12 digits; 1–720 hours)"
                if not isinstance(exc, MusterError)
                else str(exc)
            )
            return page(request, lang, error=message, form=form, status_code=400)
        # No redirect: the code exists only in this response.
        return page(request, lang, new=new)

    @router.post("/api/v1/enrollment-codes", response_model=NewCode, status_code=201)
    def api_create(request: Request, body: CodeRequest) -> NewCode:
        try:
            return create(body, admin_of(request))
        except AccessError:
            raise
        except MusterError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc

    @router.get("/api/v1/enrollment-codes", response_model=list[CodeView])
    def api_list(request: Request, limit: int = Query(200, ge=1, le=5000)) -> list[CodeView]:
        return listing(admin_of(request).prefix, limit)

    @router.post("/api/v1/devices/{device_id}/revoke", response_model=RevokedView)
    def api_revoke(request: Request, device_id: str, body: RevokeRequest) -> RevokedView:
        try:
            revoked = revoke_device(
                sessions,
                device_id,
                reason=body.reason,
                by=admin_of(request).username,
                now=clock.now(),
            )
        except UnknownDevice as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        except AlreadyRevoked as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from exc
        return RevokedView(
            device_id=revoked.device_id,
            township_code=revoked.township_code,
            revoked_at=revoked.at,
            reason=revoked.reason,
        )

    return router


__all__ = ["codes_router"]
