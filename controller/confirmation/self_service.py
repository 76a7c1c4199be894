"""The online self-service page (S-21): ``/self-service/confirm``, public, mobile-first, in Chinese (English
with ``?lang=en``). A person, or their family for someone living elsewhere, types the ID number
and a mobile number and takes a live selfie with the phone's front camera; the centre answers
only about what was typed (``attempts``). The selfie is face-checked in a thread while one of
the few face slots is free (``face_check``); otherwise the background job checks it. The body is read with a hard limit before parsing,
so a huge upload is refused without being stored."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio.to_thread
import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile

from controller.confirmation.attempts import SELFIE_MAX_BYTES, Answer, submit_attempt
from controller.confirmation.face_check import (
    FaceSlots,
    MusterFaceVerifier,
    UploadKeys,
    check_attempt,
)
from muster.client_address import client_address
from muster.clock import Clock
from muster.face import NoFace, Template

__all__ = ["BODY_MAX", "TEXT", "FaceService", "self_service_router"]

log = structlog.get_logger(__name__)

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
BODY_MAX = SELFIE_MAX_BYTES + 64 * 1024  # the photo and a few short fields

TEXT: dict[str, tuple[str, str]] = {
    "title": ("优抚对象年度确认（自助）", "Annual confirmation (self-service)"),
    "intro": (
        "享受国家定期抚恤补助的优抚对象，可在此自助完成年度确认。请填写本人公民身份号码、"
        "手机号码，并用手机摄像头现场拍摄本人正面照片。",
        "Receivers of a regular state pension or subsidy can confirm here: enter your ID "
        "number and mobile number and take a live photo of your face with the phone camera.",
    ),
    "id_number": ("公民身份号码", "ID number"),
    "phone": ("手机号码", "Mobile number"),
    "selfie": ("本人现场照片", "Live photo of your face"),
    "selfie_hint": (
        "请在光线充足处正对镜头，不戴帽子和墨镜。",
        "Face the camera in good light, without a hat or sunglasses.",
    ),
    "submit": ("提交确认", "Confirm"),
    "family": (
        "长期在外地生活的，可由家属协助，但须拍摄本人现场照片。",
        "Family may help someone living elsewhere, but the photo must be of the person.",
    ),
    "switch": ("English", "中文"),
}


def _words(lang: str) -> dict[str, str]:
    index = 1 if lang == "en" else 0
    return {k: v[index] for k, v in TEXT.items()}


class _TooLarge(Exception):
    pass


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class FaceService:
    """What the page needs to face-check a selfie at once: the verifier, the process's slots
    and the upload keys that open the reference photos."""

    verifier: MusterFaceVerifier
    slots: FaceSlots
    upload_keys: UploadKeys


def self_service_router(
    sessions: sessionmaker[Session], clock: Clock, face: FaceService | None = None
) -> APIRouter:
    """The page; without ``face`` (no upload keys here) every attempt waits for the job."""
    router = APIRouter(include_in_schema=False)

    def page(
        request: Request,
        lang: str,
        answer: Answer | None = None,
        typed_id: str = "",
        typed_phone: str = "",
        status_code: int = 200,
    ) -> Response:
        headers = {"Cache-Control": "no-store", "Referrer-Policy": "same-origin"}
        if answer is not None and answer.retry_after_s:
            headers["Retry-After"] = str(answer.retry_after_s)
        return TEMPLATES.TemplateResponse(
            request,
            "self_service.html",
            {
                "t": _words(lang),
                "lang": lang,
                "other": "zh" if lang == "en" else "en",
                "answer": answer,
                # Only what the person typed comes back, so a mistake can be corrected.
                "typed_id": typed_id[:18],
                "typed_phone": typed_phone[:11],
            },
            status_code=status_code,
            headers=headers,
        )

    @router.get("/self-service/confirm", response_class=HTMLResponse)
    def confirm_page(request: Request, lang: str = Query("zh", pattern="^(zh|en)$")) -> Response:
        return page(request, lang)

    @router.post("/self-service/confirm", response_class=HTMLResponse)
    async def confirm(request: Request) -> Response:
        lang = "en" if request.query_params.get("lang") == "en" else "zh"
        # The admin's trusted-proxy rule: behind our proxy each citizen is counted by their own
        # address, and a forged X-Forwarded-For from anywhere else changes nothing.
        address = client_address(
            request.client.host if request.client else "unknown",
            request.headers.getlist("x-forwarded-for"),
            getattr(request.app.state, "trusted_proxies", ()),
        )
        too_large = False
        fields: dict[str, str] = {}
        selfie = b""
        try:
            request._body = await _body(request, BODY_MAX)  # form() parses what was read
            form = await request.form(max_files=1, max_fields=4, max_part_size=4096)
        except _TooLarge:
            too_large = True
        except Exception as exc:  # not a multipart form: judged as a form with nothing in it
            log.info("self-service body is not a form", error=type(exc).__name__)
        else:
            for key in ("id_number", "phone", "lang"):
                value = form.get(key)
                fields[key] = value if isinstance(value, str) else ""
            upload = form.get("selfie")
            if isinstance(upload, UploadFile):
                selfie = await upload.read(SELFIE_MAX_BYTES + 1)
                too_large = len(selfie) > SELFIE_MAX_BYTES
        if fields.get("lang") == "en":
            lang = "en"

        described: list[Template | NoFace] = []

        def store() -> Answer:
            with (face.slots if face else FaceSlots(1)).slot(wait=False) as held:

                def live_face(data: bytes) -> Template | NoFace | None:
                    if face is None or not held:
                        return None  # checked later by the job, or by a clerk
                    described.append(face.verifier.live_face(data))
                    return described[-1]

                with sessions.begin() as session:
                    return submit_attempt(
                        session,
                        address=address,
                        id_number=fields.get("id_number", ""),
                        phone=fields.get("phone", ""),
                        selfie=b"" if too_large else selfie,
                        selfie_too_large=too_large,
                        clock=clock,
                        live_face=live_face,
                    )

        answer = await anyio.to_thread.run_sync(store)
        status = 200 if answer.ok else 429 if answer.retry_after_s else 413 if too_large else 422
        response = page(
            request,
            lang,
            answer,
            typed_id=fields.get("id_number", ""),
            typed_phone=fields.get("phone", ""),
            status_code=status,
        )
        if face is not None and described and answer.outcome == "pending_face":
            # Compared once the answer has gone: a number on the roll (selfie described, then a
            # reference) and one not on it (selfie described) take the same time to answer.
            response.background = BackgroundTask(
                anyio.to_thread.run_sync, partial(_compare, face, answer.attempt_id, described[-1])
            )
        return response

    def _compare(face: FaceService, attempt_id: int, live: Template | NoFace) -> None:
        with face.slots.slot(wait=False) as held:
            if not held:
                return  # the job checks it when a slot is free
            try:
                with sessions.begin() as session:
                    check_attempt(
                        session, attempt_id, face.verifier, face.upload_keys(), clock, live=live
                    )
            except Exception:  # the attempt stays pending: the job checks it again
                log.exception("self-service face check failed", attempt=attempt_id)

    return router
