"""What the device's hardware adds to a draft: the identity read on a reader (a resident ID card
on the SAM reader, a social security card through PC/SC; its values replace what was typed, each
change said), and the photo, judged before it is kept."""

from __future__ import annotations

import asyncio
import base64

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from edge.console.deps import Pages
from edge.console.sheet import display_value, field_label
from edge.console.workflow import PERSON_KEYS, WorkflowError, edit
from muster.errors import MusterError

__all__ = ["CARD_WAIT_S", "DOCUMENT_NAMES", "capture_routes"]

CARD_WAIT_S = 10.0
DOCUMENT_NAMES = {"id_card": "身份证", "social_security_card": "社会保障卡"}


def capture_routes(pages: Pages) -> APIRouter:
    router = APIRouter()
    s = pages.services

    @router.post("/records/{record_id}/card", response_class=HTMLResponse)
    async def card(request: Request, record_id: str) -> HTMLResponse:
        session = pages.require(request)
        form = await pages.posted(request, session)
        draft = await asyncio.to_thread(pages.load, record_id)
        try:
            draft, _refused = pages.save_typed(draft, form, session.clerk.username)
        except WorkflowError as exc:
            return pages.record_page(request, session, draft, error=str(exc), status_code=409)
        if s.read_card is None:
            return pages.record_page(
                request, session, draft, error="本机没有配置身份证阅读器", status_code=409
            )
        read = await s.read_card(CARD_WAIT_S)
        if read is None:
            await asyncio.to_thread(s.drafts.save, draft)
            return pages.record_page(
                request,
                session,
                draft,
                error=f"{CARD_WAIT_S:.0f} 秒内没有读到身份证：请把证件平放在阅读器上再点“读取身份证”",
                status_code=408,
            )
        if not read.is_valid_resident(s.clock.today()):
            return pages.record_page(
                request,
                session,
                draft,
                error="只能读取有效的居民身份证或社会保障卡",
                status_code=422,
            )
        what = DOCUMENT_NAMES[read.document]
        known = draft.person.get("id_number", "").strip().upper()
        if known and known != read.id_number:
            await asyncio.to_thread(s.drafts.save, draft)
            return pages.record_page(
                request,
                session,
                draft,
                error=f"证件号码 {read.id_number} 与本记录的 {known} 不符：请核对是否拿错证件",
                status_code=409,
            )
        card_values = {
            "name": read.name,
            "id_number": read.id_number,
            "sex": read.sex,
            "birth_date": read.birth_date.isoformat() if read.birth_date else "",
            "ethnicity": read.ethnicity,
            "address": read.address,
        }
        notes = [
            f"{field_label(draft, k)}：原为“{display_value(draft, k, draft.person.get(k))}”，"
            f"按证件改为“{display_value(draft, k, v)}”"
            for k, v in card_values.items()
            if k in PERSON_KEYS and draft.person.get(k) and draft.person.get(k) != v
        ]
        fields = dict(draft.fields)
        if read.address and not fields.get("household_registration"):
            fields["household_registration"] = read.address
        updated = edit(
            draft,
            clerk=session.clerk.username,
            now=pages.now(),
            person={k: card_values[k] or draft.person.get(k, "") for k in PERSON_KEYS},
            fields=fields,
            card=card_values,
            note=f"读取{what}",
        )
        await asyncio.to_thread(s.drafts.save, updated)
        message = (
            f"已读取{what}，信息与证件一致" if not notes else f"已读取{what}。" + "；".join(notes)
        )
        return pages.record_page(request, session, updated, message=message)

    @router.get("/api/camera/check")
    async def camera_check(request: Request) -> JSONResponse:
        pages.require(request)
        if s.capture_photo is None:
            return JSONResponse({"available": False, "reasons": ["本机没有配置摄像头"]})
        try:
            photo = await s.capture_photo()
        except MusterError as exc:
            return JSONResponse({"available": False, "reasons": [str(exc)]})
        return JSONResponse(
            {
                "available": True,
                "passed": photo.passed,
                "reasons": [r.zh for r in photo.report.reasons],
                "preview": "data:image/jpeg;base64," + base64.b64encode(photo.jpeg).decode(),
            }
        )

    @router.post("/records/{record_id}/photo", response_class=HTMLResponse)
    async def photo(request: Request, record_id: str) -> HTMLResponse:
        session = pages.require(request)
        form = await pages.posted(request, session)
        draft = await asyncio.to_thread(pages.load, record_id)
        try:
            draft, _refused = pages.save_typed(draft, form, session.clerk.username)
        except WorkflowError as exc:
            return pages.record_page(request, session, draft, error=str(exc), status_code=409)
        await asyncio.to_thread(s.drafts.save, draft)
        if s.capture_photo is None:
            return pages.record_page(
                request, session, draft, error="本机没有配置摄像头", status_code=409
            )
        try:
            taken = await s.capture_photo()
        except MusterError as exc:
            return pages.record_page(
                request, session, draft, error=f"拍照失败：{exc}", status_code=503
            )
        if not taken.passed:
            reasons = "；".join(r.zh for r in taken.report.reasons)
            return pages.record_page(
                request,
                session,
                draft,
                error=f"照片不合格，请调整后重拍：{reasons}",
                status_code=422,
            )
        updated = edit(
            draft,
            clerk=session.clerk.username,
            now=pages.now(),
            photo_jpeg=taken.jpeg,
            photo_reasons=[],
            note="拍摄照片",
        )
        await asyncio.to_thread(s.drafts.save, updated)
        return pages.record_page(request, session, updated, message="照片合格，已保存")

    return router
