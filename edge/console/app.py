"""The console's web adapter: FastAPI on 127.0.0.1, server-rendered pages in Simplified Chinese,
every asset bundled. It only translates HTTP to the workflow core and the device's parts
(accounts, drafts, slice search, reader, camera, sealer) handed in as :class:`ConsoleServices`.

Sessions live in memory and expire when idle; every form post carries the session's CSRF token.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData, UploadFile

from edge.console.accounts import Clerk, ClerkAccounts, LoginRefused
from edge.console.drafts import DraftStore
from edge.console.search import PeopleSearch
from edge.console.sheet import confirmation_sheet, display_value, field_label
from edge.console.workflow import (
    PERSON_KEYS,
    STATE_NAMES,
    Draft,
    WorkflowError,
    attachments_of,
    changes_against_initial,
    check,
    edit,
    new_draft,
    review,
    sign,
    submit,
    to_record,
    withhold_classified,
)
from edge.drivers.camera import CapturedPhoto
from edge.drivers.sam.events import CardRead
from edge.drivers.sam.idnumber import check_card
from edge.drivers.sam.textblock import CardType
from edge.licence_guard import Verdict
from muster.clock import Clock
from muster.errors import ConfigError, LicenceError, MusterError, StorageError
from muster.forms import SECTIONS, Problem, current_form
from muster.forms.codelists import ETHNICITIES, RELATIONS
from muster.records import CATEGORY_NAMES, Category, RecordError, RecordPayload

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
COOKIE = "muster_console"
CARD_WAIT_S = 10.0


@dataclass
class ConsoleServices:
    """What the console drives on the device; the daemon fills it, tests may too."""

    accounts: ClerkAccounts
    drafts: DraftStore
    people: PeopleSearch
    township_code: str
    township_name: str
    verdict: Callable[[], Verdict]
    clock: Clock
    # Sealer.seal(record, attachment bytes): LicenceError / StorageError / RecordError
    seal: Callable[[RecordPayload, Mapping[str, bytes]], object]
    already_sealed: Callable[[str], bool]
    read_card: Callable[[float], Awaitable[CardRead | None]] | None = None
    capture_photo: Callable[[], Awaitable[CapturedPhoto]] | None = None
    online: Callable[[], bool] = lambda: False
    on_sealed: Callable[[], None] = lambda: None
    home_visit: bool = False
    session_idle: dt.timedelta = dt.timedelta(minutes=30)
    new_id: Callable[[], str] = lambda: str(uuid.uuid4())


@dataclass
class _Session:
    clerk: Clerk
    csrf: str
    expires: dt.datetime


@dataclass
class _Sessions:
    by_token: dict[str, _Session] = field(default_factory=dict)


def create_console_app(services: ConsoleServices) -> FastAPI:
    app = FastAPI(title="muster 采集终端", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    sessions = _Sessions()
    s = services

    def now() -> dt.datetime:
        return s.clock.now()

    def current(request: Request) -> _Session | None:
        token = request.cookies.get(COOKIE, "")
        session = sessions.by_token.get(token)
        if session is None:
            return None
        if now() >= session.expires:
            del sessions.by_token[token]
            return None
        session.expires = now() + s.session_idle
        return session

    def require(request: Request) -> _Session:
        session = current(request)
        if session is None:
            raise HTTPException(status_code=303, headers={"Location": "/login?expired=1"})
        return session

    async def posted(request: Request, session: _Session) -> FormData:
        form = await request.form()
        if not secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
            raise HTTPException(
                status_code=403, detail="表单已过期（CSRF 校验失败），请刷新页面后重试"
            )
        return form

    def render(
        request: Request,
        template: str,
        session: _Session | None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        verdict = s.verdict()
        return TEMPLATES.TemplateResponse(
            request,
            template,
            {
                "clerk": session.clerk if session else None,
                "csrf": session.csrf if session else "",
                "verdict": verdict,
                "township_name": s.township_name,
                "home_visit": s.home_visit,
                "online": s.online(),
                "categories": CATEGORY_NAMES,
                **context,
            },
            status_code=status_code,
        )

    def load(record_id: str) -> Draft:
        draft = s.drafts.get(record_id)
        if draft is None:
            raise HTTPException(status_code=404, detail="没有这条记录（可能已封存）")
        return draft

    def clerk_names() -> dict[str, str]:
        names: dict[str, str] = {}
        for draft in s.drafts.all():
            for who in (draft.entered_by, draft.reviewed_by, draft.created_by):
                if who:
                    names[who] = s.accounts.display_name(who)
        return names

    def record_page(
        request: Request,
        session: _Session,
        draft: Draft,
        *,
        message: str = "",
        error: str = "",
        problems: tuple[Problem, ...] | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        if problems is None and draft.state == "draft":
            problems = check(draft, now().date()).problems
        by_field: dict[str, list[str]] = {}
        for p in problems or ():
            by_field.setdefault(p.field, []).append(p.message)
        changes = changes_against_initial(draft)
        return render(
            request,
            "record.html",
            session,
            status_code=status_code,
            draft=draft,
            form=draft.form,
            sections=[(SECTIONS[name], fields) for name, fields in draft.form.sections],
            problems=by_field,
            problem_count=len(problems or ()),
            message=message,
            error=error,
            changes=changes,
            ethnicities=ETHNICITIES,
            relations=RELATIONS,
            state_names=STATE_NAMES,
            display=lambda key, value: display_value(draft, key, value),
            label=lambda key: field_label(draft, key),
            names=clerk_names() | {session.clerk.username: session.clerk.display_name},
            own_entry=draft.entered_by == session.clerk.username,
            has_camera=s.capture_photo is not None,
            has_reader=s.read_card is not None,
        )

    def refuse_if_unlicensed() -> None:
        verdict = s.verdict()
        if not verdict.allowed:
            raise WorkflowError("licence", f"采集已暂停：{verdict.message}")

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code in (301, 302, 303) and exc.headers:
            return RedirectResponse(exc.headers["Location"], status_code=303)
        return render(
            request, "message.html", current(request), exc.status_code, error=str(exc.detail)
        )

    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request, expired: int = 0) -> HTMLResponse:
        return render(
            request,
            "login.html",
            None,
            error="登录已过期，请重新登录" if expired else "",
            accounts=s.accounts.count(),
        )

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        username = str(form.get("username", ""))
        try:
            clerk = await asyncio.to_thread(
                s.accounts.authenticate, username, str(form.get("password", ""))
            )
        except LoginRefused as exc:
            log.warning("console login refused", username=username, reason=exc.reason)
            return render(
                request, "login.html", None, 401, error=str(exc), accounts=s.accounts.count()
            )
        token = secrets.token_urlsafe(32)
        sessions.by_token[token] = _Session(
            clerk, secrets.token_urlsafe(16), now() + s.session_idle
        )
        log.info("console login", username=clerk.username)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        session = require(request)
        await posted(request, session)
        sessions.by_token = {t: v for t, v in sessions.by_token.items() if v is not session}
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request, q: str = "", sealed: str = "") -> HTMLResponse:
        session = require(request)
        results = await asyncio.to_thread(s.people.search, q) if q.strip() else []
        drafts = await asyncio.to_thread(s.drafts.all)
        me = session.clerk.username
        groups = [
            ("我的录入", [d for d in drafts if d.state == "draft"]),
            (
                "待复核（由他人录入）",
                [d for d in drafts if d.state == "entered" and d.entered_by != me],
            ),
            (
                "我录入、待他人复核",
                [d for d in drafts if d.state == "entered" and d.entered_by == me],
            ),
            ("待本人签字", [d for d in drafts if d.state == "reviewed"]),
            ("待封存", [d for d in drafts if d.state == "signed"]),
        ]
        return render(
            request,
            "home.html",
            session,
            q=q,
            results=results,
            searched=bool(q.strip()),
            people_count=await asyncio.to_thread(s.people.count),
            groups=groups,
            sealed=sealed,
        )

    @app.post("/records")
    async def create(request: Request) -> Response:
        session = require(request)
        form = await posted(request, session)
        id_number = str(form.get("id_number", "")).strip()
        try:
            refuse_if_unlicensed()
            details = None
            if id_number:
                found = await asyncio.to_thread(s.people.find, id_number)
                if found is None:
                    raise WorkflowError("unknown", "初始数据中没有这个人，请重新搜索")
                details = found.details
            category = str(form.get("category", "")) or (
                str(details["category"]) if details else Category.RETIRED_SOLDIER.value
            )
            draft = new_draft(
                record_id=s.new_id(),
                clerk=session.clerk.username,
                now=now(),
                category=category,
                details=details,
            )
        except WorkflowError as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None
        await asyncio.to_thread(s.drafts.save, draft)
        return RedirectResponse(f"/records/{draft.record_id}", status_code=303)

    @app.get("/records/{record_id}", response_class=HTMLResponse)
    async def show(request: Request, record_id: str) -> HTMLResponse:
        session = require(request)
        draft = await asyncio.to_thread(load, record_id)
        return record_page(request, session, draft)

    def typed(draft: Draft, form: FormData) -> dict[str, Any]:
        category = str(form.get("category") or draft.category)
        definition = current_form(category)
        fields: dict[str, Any] = {}
        for f in definition.fields:
            if f.kind == "multi":
                fields[f.key] = [str(v) for v in form.getlist(f.key) if str(v)]
            elif f.key in form:
                fields[f.key] = str(form.get(f.key, ""))
            elif f.key in draft.fields:
                fields[f.key] = draft.fields[f.key]
        return {
            "category": category,
            "relation": str(form.get("relation", "")),
            "person": {k: str(form.get(k, draft.person.get(k, ""))) for k in PERSON_KEYS},
            "fields": fields,
        }

    def save_typed(draft: Draft, form: FormData, clerk: str) -> tuple[Draft, list[Problem]]:
        """Store what was typed except free text with a classified designation (S-03), which
        never reaches the disk: it is dropped and its refusal shown."""
        values, refused = withhold_classified(draft, typed(draft, form))
        return edit(draft, clerk=clerk, now=now(), **values), refused

    @app.post("/records/{record_id}/save", response_class=HTMLResponse)
    async def save(request: Request, record_id: str) -> HTMLResponse:
        session = require(request)
        form = await posted(request, session)
        draft = await asyncio.to_thread(load, record_id)
        try:
            changed, refused = save_typed(draft, form, session.clerk.username)
        except WorkflowError as exc:
            return record_page(request, session, draft, error=str(exc), status_code=409)
        await asyncio.to_thread(s.drafts.save, changed)
        if str(form.get("then", "")) == "submit" and not refused:
            try:
                refuse_if_unlicensed()
                submitted = submit(changed, clerk=session.clerk.username, now=now())
            except WorkflowError as exc:
                return record_page(request, session, changed, error=str(exc), status_code=409)
            await asyncio.to_thread(s.drafts.save, submitted)
            return record_page(
                request, session, submitted, message="已提交，等待另一名工作人员复核"
            )
        if refused:
            return record_page(
                request,
                session,
                changed,
                error="以下内容含有部队番号或代号，未保存："
                + "；".join(p.message for p in refused),
                status_code=422,
            )
        return record_page(request, session, changed, message="草稿已保存")

    @app.post("/records/{record_id}/card", response_class=HTMLResponse)
    async def card(request: Request, record_id: str) -> HTMLResponse:
        session = require(request)
        form = await posted(request, session)
        draft = await asyncio.to_thread(load, record_id)
        try:
            draft, _refused = save_typed(draft, form, session.clerk.username)
        except WorkflowError as exc:
            return record_page(request, session, draft, error=str(exc), status_code=409)
        if s.read_card is None:
            return record_page(
                request, session, draft, error="本机没有配置身份证阅读器", status_code=409
            )
        read = await s.read_card(CARD_WAIT_S)
        if read is None:
            await asyncio.to_thread(s.drafts.save, draft)
            return record_page(
                request,
                session,
                draft,
                error=f"{CARD_WAIT_S:.0f} 秒内没有读到身份证：请把证件平放在阅读器上再点“读取身份证”",
                status_code=408,
            )
        c = read.card
        if c.card_type is not CardType.RESIDENT or not check_card(c, today=s.clock.today()).valid:
            return record_page(
                request, session, draft, error="只能读取有效的居民身份证", status_code=422
            )
        known = draft.person.get("id_number", "").strip().upper()
        if known and known != c.id_number:
            await asyncio.to_thread(s.drafts.save, draft)
            return record_page(
                request,
                session,
                draft,
                error=f"证件号码 {c.id_number} 与本记录的 {known} 不符：请核对是否拿错证件",
                status_code=409,
            )
        card_values = {
            "name": c.name,
            "id_number": c.id_number,
            "sex": c.sex.value,
            "birth_date": c.birth_date.isoformat(),
            "ethnicity": c.ethnicity.code if c.ethnicity else "",
            "address": c.address or "",
        }
        notes = [
            f"{field_label(draft, k)}：原为“{display_value(draft, k, draft.person.get(k))}”，"
            f"按证件改为“{display_value(draft, k, v)}”"
            for k, v in card_values.items()
            if k in PERSON_KEYS and draft.person.get(k) and draft.person.get(k) != v
        ]
        fields = dict(draft.fields)
        if c.address and not fields.get("household_registration"):
            fields["household_registration"] = c.address
        updated = edit(
            draft,
            clerk=session.clerk.username,
            now=now(),
            person={k: card_values[k] or draft.person.get(k, "") for k in PERSON_KEYS},
            fields=fields,
            card=card_values,
            note="读取身份证",
        )
        await asyncio.to_thread(s.drafts.save, updated)
        message = (
            "已读取身份证，信息与证件一致" if not notes else "已读取身份证。" + "；".join(notes)
        )
        return record_page(request, session, updated, message=message)

    @app.get("/api/camera/check")
    async def camera_check(request: Request) -> JSONResponse:
        require(request)
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

    @app.post("/records/{record_id}/photo", response_class=HTMLResponse)
    async def photo(request: Request, record_id: str) -> HTMLResponse:
        session = require(request)
        form = await posted(request, session)
        draft = await asyncio.to_thread(load, record_id)
        try:
            draft, _refused = save_typed(draft, form, session.clerk.username)
        except WorkflowError as exc:
            return record_page(request, session, draft, error=str(exc), status_code=409)
        await asyncio.to_thread(s.drafts.save, draft)
        if s.capture_photo is None:
            return record_page(request, session, draft, error="本机没有配置摄像头", status_code=409)
        try:
            taken = await s.capture_photo()
        except MusterError as exc:
            return record_page(request, session, draft, error=f"拍照失败：{exc}", status_code=503)
        if not taken.passed:
            reasons = "；".join(r.zh for r in taken.report.reasons)
            return record_page(
                request,
                session,
                draft,
                error=f"照片不合格，请调整后重拍：{reasons}",
                status_code=422,
            )
        updated = edit(
            draft,
            clerk=session.clerk.username,
            now=now(),
            photo_jpeg=taken.jpeg,
            photo_reasons=[],
            note="拍摄照片",
        )
        await asyncio.to_thread(s.drafts.save, updated)
        return record_page(request, session, updated, message="照片合格，已保存")

    @app.post("/records/{record_id}/review", response_class=HTMLResponse)
    async def review_(request: Request, record_id: str) -> HTMLResponse:
        session = require(request)
        form = await posted(request, session)
        draft = await asyncio.to_thread(load, record_id)
        try:
            reviewed = review(
                draft,
                clerk=session.clerk.username,
                now=now(),
                approve=form.get("decision") == "approve",
                note=str(form.get("note", "")),
            )
        except WorkflowError as exc:
            status = 403 if exc.code == "same_clerk" else 409
            return record_page(request, session, draft, error=str(exc), status_code=status)
        await asyncio.to_thread(s.drafts.save, reviewed)
        message = "复核通过，请本人签字" if reviewed.state == "reviewed" else "已退回录入人修改"
        return record_page(request, session, reviewed, message=message)

    @app.post("/records/{record_id}/sign", response_class=HTMLResponse)
    async def sign_(request: Request, record_id: str) -> HTMLResponse:
        session = require(request)
        form = await posted(request, session)
        draft = await asyncio.to_thread(load, record_id)
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
                now=now(),
                signature_png=png,
                signed_sheet_jpeg=scan,
            )
        except WorkflowError as exc:
            return record_page(request, session, draft, error=str(exc), status_code=422)
        await asyncio.to_thread(s.drafts.save, signed)
        return record_page(request, session, signed, message="已签字，请核对后封存")

    @app.get("/records/{record_id}/sheet.pdf")
    async def sheet(request: Request, record_id: str) -> Response:
        require(request)
        draft = await asyncio.to_thread(load, record_id)
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

    @app.post("/records/{record_id}/seal")
    async def seal_(request: Request, record_id: str) -> Response:
        session = require(request)
        await posted(request, session)
        draft = await asyncio.to_thread(load, record_id)
        try:
            refuse_if_unlicensed()
            record = to_record(
                draft, township_code=s.township_code, clerk=session.clerk.username, now=now()
            )
            # A crash between sealing and deleting the draft leaves both: the seal is done.
            if not await asyncio.to_thread(s.already_sealed, record_id):
                await asyncio.to_thread(s.seal, record, attachments_of(draft))
        except (WorkflowError, RecordError) as exc:
            return record_page(request, session, draft, error=str(exc), status_code=409)
        except LicenceError as exc:
            return record_page(request, session, draft, error=f"采集已暂停：{exc}", status_code=409)
        except StorageError as exc:
            return record_page(request, session, draft, error=f"记录未保存：{exc}", status_code=507)
        await asyncio.to_thread(s.drafts.delete, record_id)
        s.on_sealed()
        log.info("record sealed from the console", record_id=record_id)
        return RedirectResponse(f"/?sealed={record_id}", status_code=303)

    return app


MAX_UPLOAD = 300_000
