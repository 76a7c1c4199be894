"""A simulated department system for S-30 (``muster sim department``): a real HTTP server that
takes the centre's signed deliveries, checks their Standard Webhooks signature, recognises a
resend by its webhook-id, and answers asynchronously with signed status callbacks — scripted
outcomes and faults (slow answers, 500s, timeouts, duplicate callbacks) for tests and the demo.

It speaks only the shared wire (:mod:`muster.application_wire`); callbacks are retried with
tenacity (exponential backoff with jitter) on 5xx and connection errors, never on other 4xx.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from muster.application_wire import Callback, CallbackRefused, retryable_status, sign, verify
from muster.clock import Clock

__all__ = ["DepartmentScript", "SimulatedDepartment", "create_department_app"]

log = structlog.get_logger(__name__)


@dataclass
class DepartmentScript:
    """What the department does. ``outcome`` is accepted, rejected or more_materials; the
    first ``fail_first`` deliveries get a 500, the first ``hang_first`` get no answer for
    ``hang_s``; every answer waits ``slow_s``; ``duplicate_callbacks`` sends each callback twice
    with the same webhook-id; ``reject_status`` answers every delivery with that 4xx."""

    outcome: str = "accepted"
    wanted: tuple[str, ...] = ()
    reason: str = "材料不符合要求"
    appointment_at: str = ""
    place: str = ""
    bring: tuple[str, ...] = ()
    fail_first: int = 0
    fail_status: int = 500  # what the first ``fail_first`` deliveries get
    hang_first: int = 0
    hang_s: float = 30.0
    slow_s: float = 0.0
    duplicate_callbacks: bool = False
    reject_status: int = 0
    callback_delay_s: float = 0.0
    finish: bool = True  # accepted items are reported done afterwards
    silent: bool = False  # take deliveries, send no callbacks (load and fault runs)


class _Retryable(Exception):
    pass


@dataclass
class SimulatedDepartment:
    secret: str
    callback_url: str
    clock: Clock
    script: DepartmentScript = field(default_factory=DepartmentScript)
    seen: dict[str, int] = field(default_factory=dict)  # webhook-id -> times received
    rounds: dict[tuple[str, str], int] = field(default_factory=dict)  # (application, item)
    answered: int = 0
    refused: int = 0
    callbacks_sent: int = 0
    callback_failures: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _client: httpx.AsyncClient | None = None

    def stats(self) -> dict[str, Any]:
        return {
            "unique_deliveries": len(self.seen),
            "resends": sum(n - 1 for n in self.seen.values()),
            "answered": self.answered,
            "refused": self.refused,
            "callbacks_sent": self.callbacks_sent,
            "callback_failures": self.callback_failures,
        }

    async def receive(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        script = self.script
        try:
            msg_id = verify(self.secret, headers, body, now=self.clock.now())
        except CallbackRefused as exc:
            self.refused += 1
            return 401, {"error": exc.reason, "detail": str(exc)}
        self.answered += 1
        if self.answered <= script.hang_first:
            await asyncio.sleep(script.hang_s)
        if script.slow_s:
            await asyncio.sleep(script.slow_s)
        if self.answered <= script.fail_first:
            return script.fail_status, {"error": "simulated failure"}
        if script.reject_status:
            return script.reject_status, {"error": "simulated refusal"}
        first = msg_id not in self.seen
        self.seen[msg_id] = self.seen.get(msg_id, 0) + 1
        if first:
            document = json.loads(body)
            key = (str(document.get("application_id")), str(document.get("item")))
            self.rounds[key] = self.rounds.get(key, 0) + 1
        if first and not script.silent:
            task = asyncio.create_task(self._report(msg_id, self.rounds[key]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return 200, {"received": msg_id, "duplicate": not first}

    async def _report(self, delivery_id: str, round_: int) -> None:
        script = self.script
        try:
            if script.callback_delay_s:
                await asyncio.sleep(script.callback_delay_s)
            await self._callback(Callback(delivery_id, "received", "已接收"))
            outcome = script.outcome
            if outcome == "more_materials" and round_ > 1:
                outcome = "accepted"  # what was asked for came with the new delivery
            if outcome == "more_materials":
                await self._callback(
                    Callback(delivery_id, "more_materials", "请补充材料", materials=script.wanted)
                )
            elif outcome == "rejected":
                await self._callback(Callback(delivery_id, "rejected", script.reason))
            else:
                await self._callback(
                    Callback(
                        delivery_id,
                        "accepted",
                        "审核通过",
                        appointment_at=script.appointment_at,
                        place=script.place,
                        bring=script.bring,
                    )
                )
                if script.finish:
                    await self._callback(Callback(delivery_id, "done", "已办结"))
        except Exception:
            self.callback_failures += 1
            log.exception("callback failed", delivery=delivery_id)

    async def _callback(self, callback: Callback) -> None:
        body = callback.to_json()
        msg_id = "cb_" + uuid.uuid4().hex
        for _ in range(2 if self.script.duplicate_callbacks else 1):
            await self._post(msg_id, body)
        self.callbacks_sent += 1

    async def _post(self, msg_id: str, body: bytes) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10.0)
        client = self._client
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, _Retryable | httpx.TransportError)),
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.2),
            stop=stop_after_attempt(8),
            reraise=True,
        ):
            with attempt:
                # Signed afresh each attempt: the timestamp must stay within the tolerance.
                headers = sign(self.secret, msg_id, self.clock.now(), body)
                answer = await client.post(self.callback_url, content=body, headers=headers)
                if retryable_status(answer.status_code):
                    raise _Retryable(f"{answer.status_code} {answer.text[:100]}")
                if answer.status_code >= 400:
                    log.warning("callback refused", status=answer.status_code, body=answer.text)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def create_department_app(department: SimulatedDepartment) -> FastAPI:
    app = FastAPI(title="simulated department", openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/deliveries")
    async def deliveries(request: Request) -> Response:
        try:
            body = await request.body()
        except ClientDisconnect:  # the sender was killed or gave up mid-request
            return Response(status_code=499)
        status, answer = await department.receive(dict(request.headers), body)
        return JSONResponse(answer, status_code=status)

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        return department.stats()

    @app.post("/script")
    async def set_script(request: Request) -> dict[str, Any]:
        """Change the script while running (tests move a department from failing to well)."""
        changes = await request.json()
        for key, value in changes.items():
            if not hasattr(department.script, key):
                return {"error": f"no script setting {key}"}
            setattr(department.script, key, tuple(value) if isinstance(value, list) else value)
        return {"ok": True}

    return app
