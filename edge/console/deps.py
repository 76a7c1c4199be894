"""What every page of the console shares: the device's parts it drives
(:class:`ConsoleServices`), the clerks' sessions (current clerk, CSRF), the templates, and the
helpers that render a page or load a draft. The routers (``routes_*``) each take one
:class:`Pages` and add only their own endpoints.

Sessions live in memory and expire when idle; every form post carries the session's CSRF token.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from edge.card_reads import IdentityRead
from edge.centre_tasks import CentreTaskStore
from edge.console.accounts import Clerk, ClerkAccounts
from edge.console.drafts import DraftStore
from edge.console.search import PeopleSearch
from edge.console.sheet import display_value, field_label
from edge.console.visits import VisitDesk
from edge.console.workflow import (
    PERSON_KEYS,
    STATE_NAMES,
    Draft,
    WorkflowError,
    changes_against_initial,
    check,
    edit,
    withhold_classified,
)
from edge.drivers.camera import CapturedPhoto
from edge.licence_guard import Verdict
from muster.clock import Clock
from muster.forms import SECTIONS, Problem, current_form
from muster.forms.codelists import ETHNICITIES, RELATIONS
from muster.records import CATEGORY_NAMES, RecordPayload

__all__ = ["COOKIE", "HERE", "TEMPLATES", "ConsoleServices", "Pages", "Session"]

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
COOKIE = "muster_console"


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
    # The latest identity card read (SAM or PC/SC), or the next within the timeout; None: none.
    read_card: Callable[[float], Awaitable[IdentityRead | None]] | None = None
    capture_photo: Callable[[], Awaitable[CapturedPhoto]] | None = None
    online: Callable[[], bool] = lambda: False
    on_sealed: Callable[[], None] = lambda: None
    home_visit: bool = False
    session_idle: dt.timedelta = dt.timedelta(minutes=30)
    new_id: Callable[[], str] = lambda: str(uuid.uuid4())
    # What the centre asks of the township (returned records, comparison tasks, answers), the
    # outbox's refused records (record id, code, reason) and where sealed records stand.
    centre: CentreTaskStore | None = None
    rejected: Callable[[], list[tuple[str, str, str]]] = lambda: []
    outbox_states: Callable[[Iterable[str]], dict[str, str]] = lambda ids: {}
    # The annual confirmation's visit list and sealing (routes_confirmation); None: not offered.
    visits: VisitDesk | None = None


@dataclass
class Session:
    clerk: Clerk
    csrf: str
    expires: dt.datetime


@dataclass
class Pages:
    """The services plus the sessions, and the helpers every router uses."""

    services: ConsoleServices
    sessions: dict[str, Session] = field(default_factory=dict)

    def now(self) -> dt.datetime:
        return self.services.clock.now()

    def current(self, request: Request) -> Session | None:
        """The signed-in clerk's session, refreshed; None when there is none or it expired."""
        token = request.cookies.get(COOKIE, "")
        session = self.sessions.get(token)
        if session is None:
            return None
        if self.now() >= session.expires:
            del self.sessions[token]
            return None
        session.expires = self.now() + self.services.session_idle
        return session

    def require(self, request: Request) -> Session:
        session = self.current(request)
        if session is None:
            raise HTTPException(status_code=303, headers={"Location": "/login?expired=1"})
        return session

    def open_session(self, clerk: Clerk) -> str:
        token = secrets.token_urlsafe(32)
        self.sessions[token] = Session(
            clerk, secrets.token_urlsafe(16), self.now() + self.services.session_idle
        )
        return token

    def close_session(self, session: Session) -> None:
        self.sessions = {t: v for t, v in self.sessions.items() if v is not session}

    async def posted(self, request: Request, session: Session, **limits: int) -> FormData:
        """The posted form, once its CSRF token matches the session's. ``limits`` go to
        Starlette's parser (``max_part_size``, ``max_files``): a body past them raises its
        ``MultiPartException`` before the token is looked at."""
        form = await request.form(**limits)
        if not secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
            raise HTTPException(
                status_code=403, detail="表单已过期（CSRF 校验失败），请刷新页面后重试"
            )
        return form

    def render(
        self,
        request: Request,
        template: str,
        session: Session | None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        s = self.services
        return TEMPLATES.TemplateResponse(
            request,
            template,
            {
                "clerk": session.clerk if session else None,
                "csrf": session.csrf if session else "",
                "verdict": s.verdict(),
                "township_name": s.township_name,
                "home_visit": s.home_visit,
                "online": s.online(),
                "categories": CATEGORY_NAMES,
                **context,
            },
            status_code=status_code,
        )

    def load(self, record_id: str) -> Draft:
        draft = self.services.drafts.get(record_id)
        if draft is None:
            raise HTTPException(status_code=404, detail="没有这条记录（可能已封存）")
        return draft

    def clerk_names(self) -> dict[str, str]:
        names: dict[str, str] = {}
        for draft in self.services.drafts.all():
            for who in (draft.entered_by, draft.reviewed_by, draft.created_by):
                if who:
                    names[who] = self.services.accounts.display_name(who)
        return names

    def record_page(
        self,
        request: Request,
        session: Session,
        draft: Draft,
        *,
        message: str = "",
        error: str = "",
        problems: tuple[Problem, ...] | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        if problems is None and draft.state == "draft":
            problems = check(draft, self.now().date()).problems
        by_field: dict[str, list[str]] = {}
        for p in problems or ():
            by_field.setdefault(p.field, []).append(p.message)
        return self.render(
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
            changes=changes_against_initial(draft),
            ethnicities=ETHNICITIES,
            relations=RELATIONS,
            state_names=STATE_NAMES,
            display=lambda key, value: display_value(draft, key, value),
            label=lambda key: field_label(draft, key),
            names=self.clerk_names() | {session.clerk.username: session.clerk.display_name},
            own_entry=draft.entered_by == session.clerk.username,
            has_camera=self.services.capture_photo is not None,
            has_reader=self.services.read_card is not None,
        )

    def refuse_if_unlicensed(self) -> None:
        verdict = self.services.verdict()
        if not verdict.allowed:
            raise WorkflowError("licence", f"采集已暂停：{verdict.message}")

    def save_typed(self, draft: Draft, form: FormData, clerk: str) -> tuple[Draft, list[Problem]]:
        """Store what was typed except free text with a classified designation (S-03), which
        never reaches the disk: it is dropped and its refusal shown."""
        values, refused = withhold_classified(draft, _typed(draft, form))
        return edit(draft, clerk=clerk, now=self.now(), **values), refused


def _typed(draft: Draft, form: FormData) -> dict[str, Any]:
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
