"""The end of a record on the device: the person signs (on screen or a scanned sheet), the
confirmation sheet is printed, and the record is sealed into the outbox and its draft deleted."""

from __future__ import annotations

import asyncio
import base64
import binascii

import structlog
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from edge.console.deps import Pages
from edge.console.drafts import SealedEntry
from edge.console.sealing import attachments_of, sign, to_record
from edge.console.sheet import confirmation_sheet
from edge.console.workflow import Draft, WorkflowError, transition
from muster.errors import ConfigError, LicenceError, StorageError
from muster.records import RecordError, RecordPayload

__all__ = ["MAX_UPLOAD", "sealing_routes"]

log = structlog.get_logger(__name__)

MAX_UPLOAD = 300_000


def sealing_routes(pages: Pages) -> APIRouter:
    router = APIRouter()
    s = pages.services

    @router.post("/records/{record_id}/sign", response_class=HTMLResponse)
    async def sign_(request: Request, record_id: str) -> HTMLResponse:
        session = pages.require(request)
        form = await pages.posted(request, session)
        draft = await asyncio.to_thread(pages.load, record_id)
        png: bytes | None = None
        scan: bytes | None = None
        data_url = str(form.get("signature", ""))
        upload = form.get("scan")
        try:
            if data_url.startswith("data:image/png;base64,"):
                try:
                    png = base64.b64decode(data_url.split(",", 1)[1], validate=True)
                except (binascii.Error, ValueError):
                    raise WorkflowError("signature", "签名图像无效，请重新签字") from None
            elif isinstance(upload, UploadFile) and upload.filename:
                scan = await upload.read(MAX_UPLOAD + 1)
            signed = sign(
                draft,
                clerk=session.clerk.username,
                now=pages.now(),
                signature_png=png,
                signed_sheet_jpeg=scan,
            )
        except WorkflowError as exc:
            return pages.record_page(request, session, draft, error=str(exc), status_code=422)
        await asyncio.to_thread(s.drafts.save, signed)
        return pages.record_page(request, session, signed, message="已签字，请核对后封存")

    @router.get("/records/{record_id}/sheet.pdf")
    async def sheet(request: Request, record_id: str) -> Response:
        pages.require(request)
        draft = await asyncio.to_thread(pages.load, record_id)
        try:
            pdf = await asyncio.to_thread(
                confirmation_sheet,
                draft,
                township_name=s.township_name,
                clerks={
                    who: s.accounts.display_name(who)
                    for who in (draft.entered_by, draft.reviewed_by)
                    if who
                },
            )
        except ConfigError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from None
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="confirmation-{record_id}.pdf"'},
        )

    @router.post("/records/{record_id}/seal")
    async def seal_(request: Request, record_id: str) -> Response:
        session = pages.require(request)
        form = await pages.posted(request, session)
        draft = await asyncio.to_thread(pages.load, record_id)
        if form.get("confirm") != "yes":
            # Sealing cannot be undone: first a page that says whose record it is and asks.
            try:
                transition(draft, "seal")
            except WorkflowError as exc:
                return pages.record_page(request, session, draft, error=str(exc), status_code=409)
            return pages.render(request, "seal_confirm.html", session, draft=draft)
        try:
            pages.refuse_if_unlicensed()
            record = to_record(
                draft, township_code=s.township_code, clerk=session.clerk.username, now=pages.now()
            )
            # A crash between sealing and deleting the draft leaves both: the seal is done.
            if not await asyncio.to_thread(s.already_sealed, record_id):
                await asyncio.to_thread(s.seal, record, attachments_of(draft))
        except (WorkflowError, RecordError) as exc:
            return pages.record_page(request, session, draft, error=str(exc), status_code=409)
        except LicenceError as exc:
            return pages.record_page(
                request, session, draft, error=f"采集已暂停：{exc}", status_code=409
            )
        except StorageError as exc:
            return pages.record_page(
                request, session, draft, error=f"记录未保存：{exc}", status_code=507
            )
        await asyncio.to_thread(
            s.drafts.sealed_done, sealed_entry(draft, record, session.clerk.username)
        )
        s.on_sealed()
        log.info("record sealed from the console", record_id=record_id)
        return RedirectResponse(f"/?sealed={record_id}", status_code=303)

    return router


def sealed_entry(draft: Draft, record: RecordPayload, clerk: str) -> SealedEntry:
    """What the console keeps of a sealed record (encrypted): no photo, no signature."""
    return SealedEntry(
        record_id=record.record_id,
        name=record.person.name,
        id_number=record.person.id_number,
        category=record.category,
        entered_by=record.entered_by,
        reviewed_by=record.reviewed_by,
        sealed_by=clerk,
        sealed_at=record.collected_at,
        corrects=draft.corrects,
        task_id=draft.task_id,
        values={
            "person": record.person.model_dump(mode="json"),
            "category": record.category,
            "relation": record.relation or "",
            "fields": record.fields,
        },
    )
