"""The endpoint departments post their signed status callbacks to:
``POST /hooks/departments/{department_id}``. Answers 200 with what was applied, or the refusal's
HTTP status with ``{"error": reason, "detail": message}``; a refused callback changes nothing."""

from __future__ import annotations

import anyio.to_thread
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from controller.applications.callbacks import HTTP_STATUS, apply_callback
from muster.application_wire import MAX_CALLBACK_BYTES, CallbackRefused
from muster.clock import Clock

__all__ = ["hooks_router"]

log = structlog.get_logger(__name__)


def hooks_router(sessions: sessionmaker[Session], clock: Clock) -> APIRouter:
    router = APIRouter()

    @router.post("/hooks/departments/{department_id}")
    async def callback(department_id: int, request: Request) -> JSONResponse:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_CALLBACK_BYTES:
                return JSONResponse(
                    {"error": "too_large", "detail": f"at most {MAX_CALLBACK_BYTES} bytes"}, 413
                )
        headers = dict(request.headers)

        def apply() -> dict[str, object]:
            with sessions.begin() as session:
                return apply_callback(session, department_id, headers, body, now=clock.now())

        try:
            result = await anyio.to_thread.run_sync(apply)
        except CallbackRefused as exc:
            log.warning("callback refused", department=department_id, reason=exc.reason)
            return JSONResponse(
                {"error": exc.reason, "detail": str(exc)}, HTTP_STATUS.get(exc.reason, 400)
            )
        return JSONResponse(result)

    return router
