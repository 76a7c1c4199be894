"""Progress, review up the chain, the weekly report, deadlines and the XLSX exports, as pages and
as ``/api/v1/...``. Every region a request names is narrowed to the admin's own area
(``admin_of(request).narrow``); records and townships in the path were already checked by the
access middleware (controller/admin/access.py)."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.background import BackgroundTask

from controller.accounts.admins import ROLES, AccessDenied
from controller.admin.access import admin_of
from controller.admin.charts import bar_chart
from controller.admin.progress_i18n import progress_texts
from controller.db.models import PersonRow, Record, ReviewEvent, TownshipDeclaration
from controller.records.progress import (
    CAMPAIGN_TZ,
    PHASES,
    Counts,
    list_deadlines,
    progress,
    set_deadline,
    weekly_report,
)
from controller.records.progress import ordered_categories as _ordered
from controller.records.region_tree import region_names
from controller.records.review import (
    STATUS_NAMES,
    approve,
    compare_fields,
    declare_complete,
    forward,
    missing_people,
    return_record,
)
from controller.records.review import category_name as _category_name
from controller.records.xlsx_reports import (
    approved_workbook,
    progress_workbook,
    stamp,
    weekly_workbook,
)
from muster.clock import Clock
from muster.errors import ConfigError
from muster.regions import DRILL_LENGTHS, LEVEL_NAMES

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
REGION = r"^\d{0,12}$"
LANG = "^(zh|en)$"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
T = TypeVar("T")


def _fmt_time(value: datetime | None) -> str:
    return value.astimezone(CAMPAIGN_TZ).strftime("%Y-%m-%d %H:%M") if value else "—"


TEMPLATES.env.filters["time"] = _fmt_time


class CountsView(BaseModel):
    slice: int
    collected: int
    reviewed: int
    approved: int
    missing: int
    percent: float


class RegionProgressView(BaseModel):
    code: str
    name: str
    totals: CountsView
    townships: int
    declared: int
    by_category: dict[str, CountsView]
    overdue: list[str]


class ProgressView(BaseModel):
    area: str
    area_name: str
    totals: CountsView
    regions: list[RegionProgressView]
    deadlines: dict[str, datetime]


class DeadlineRequest(BaseModel):
    region: str = Field(pattern=r"^\d{0,9}$", description="region prefix; default your own area")
    due: date = Field(description="last day of the phase (Beijing time)")


class DeadlineView(BaseModel):
    phase: str
    region: str
    due_at: datetime
    set_by: str


class DeclareRequest(BaseModel):
    note: str = Field(default="", max_length=500)


class ReturnRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class ForwardRequest(BaseModel):
    region: str = Field(default="", pattern=REGION)


class RecordView(BaseModel):
    record_id: str
    township_code: str
    category: str
    name: str
    id_number: str
    status: str
    approved_level: str
    received_at: datetime


class FieldView(BaseModel):
    key: str
    label: str
    collected: str
    initial: str
    differs: bool


class RecordDetailView(RecordView):
    fields: list[FieldView]


class MissingView(BaseModel):
    id_number: str
    name: str
    category: str


class EventView(BaseModel):
    at: datetime
    actor: str
    role: str
    action: str
    township_code: str
    record_id: str | None
    reason: str
    details: dict[str, Any]


def _counts(c: Counts) -> CountsView:
    return CountsView(
        slice=c.slice,
        collected=c.collected,
        reviewed=c.reviewed,
        approved=c.approved,
        missing=c.missing,
        percent=c.percent,
    )


def _record_view(r: Record) -> RecordView:
    person = r.payload.get("person", {})
    return RecordView(
        record_id=r.record_id,
        township_code=r.township_code,
        category=r.category,
        name=str(person.get("name", "")),
        id_number=r.id_number or str(person.get("id_number", "")),
        status=r.review_status,
        approved_level=r.approved_level,
        received_at=r.received_at,
    )


def _form(body: bytes) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(body.decode()).items()}


def _lang(form: dict[str, str]) -> str:
    return form.get("lang", "zh") if form.get("lang") in ("zh", "en") else "zh"


def progress_router(sessions: sessionmaker[Session], clock: Clock) -> APIRouter:
    router = APIRouter()

    def page(
        request: Request, template: str, lang: str, status_code: int = 200, **context: Any
    ) -> Response:
        admin = admin_of(request)
        return TEMPLATES.TemplateResponse(
            request,
            template,
            {
                "t": progress_texts(lang),
                "lang": lang,
                "path": request.url.path,
                "switch_url": str(
                    request.url.include_query_params(lang="en" if lang == "zh" else "zh")
                ),
                "admin": admin,
                "role_name": ROLES[admin.role],
                "category_name": _category_name,
                "status_names": STATUS_NAMES,
                "level_names": LEVEL_NAMES,
                "phases": PHASES,
                "tz": CAMPAIGN_TZ,
                **context,
            },
            status_code=status_code,
        )

    def read(fn: Callable[[Session], T]) -> T:
        with sessions() as session:
            return fn(session)

    def write(fn: Callable[[Session], T]) -> T:
        with sessions.begin() as session:
            return fn(session)

    def xlsx(build: Callable[[Path], Any], name: str) -> Response:
        handle = tempfile.NamedTemporaryFile(suffix=".xlsx", delete=False)  # noqa: SIM115
        handle.close()
        path = Path(handle.name)
        build(path)
        return FileResponse(
            path,
            media_type=XLSX,
            filename=name,
            background=BackgroundTask(path.unlink, missing_ok=True),
        )

    # --- progress ----------------------------------------------------------------------------

    def progress_view(area: str) -> ProgressView:
        report = read(lambda s: progress(s, area, clock.now()))
        return ProgressView(
            area=report.area,
            area_name=report.area_name,
            totals=_counts(report.totals),
            regions=[
                RegionProgressView(
                    code=r.code,
                    name=r.name,
                    totals=_counts(r.totals),
                    townships=r.totals.townships,
                    declared=r.totals.declared,
                    by_category={k: _counts(v) for k, v in r.by_category.items()},
                    overdue=r.overdue,
                )
                for r in report.regions
            ],
            deadlines=report.deadlines,
        )

    @router.get("/api/v1/progress", response_model=ProgressView, tags=["progress"])
    def api_progress(request: Request, region: str = Query("", pattern=REGION)) -> ProgressView:
        """Slice / collected / reviewed / approved / missing per child region and category."""
        return progress_view(admin_of(request).narrow(region))

    @router.get("/progress", response_class=HTMLResponse, include_in_schema=False)
    def progress_page(
        request: Request,
        lang: str = Query("zh", pattern=LANG),
        region: str = Query("", pattern=REGION),
    ) -> Response:
        admin = admin_of(request)
        area = admin.narrow(region)
        report = read(lambda s: progress(s, area, clock.now()))
        crumbs = [(area[:n], n) for n in DRILL_LENGTHS if len(area) >= n and len(admin.prefix) <= n]
        names = read(lambda s: region_names(s, [c for c, _ in crumbs]))
        chart = bar_chart(
            [(f"{r.name} {r.code}", r.totals.percent) for r in report.regions],
            title=progress_texts(lang)["completion_chart"],
            colour="#1f7a1f",
            testid="completion-chart",
        )
        return page(
            request,
            "progress.html",
            lang,
            report=report,
            area=area,
            crumbs=[(c, names.get(c, c)) for c, _ in crumbs],
            leaf=report.level_length == 9,
            categories=_ordered(report.by_category),
            chart=chart,
        )

    @router.get("/progress.xlsx", include_in_schema=True, tags=["exports"])
    def progress_xlsx(request: Request, region: str = Query("", pattern=REGION)) -> Response:
        """The progress sheet of your area (or a part of it) as XLSX."""
        area = admin_of(request).narrow(region)
        report = read(lambda s: progress(s, area, clock.now()))
        return xlsx(
            lambda p: progress_workbook(report, p),
            f"progress-{area or 'all'}-{stamp(clock.now())}.xlsx",
        )

    @router.get("/approved.xlsx", include_in_schema=True, tags=["exports"])
    def approved_xlsx(request: Request, region: str = Query("", pattern=REGION)) -> Response:
        """Every approved record of your area (or a part of it) as XLSX."""
        area = admin_of(request).narrow(region)
        return xlsx(
            lambda p: read(lambda s: approved_workbook(s, area, p)),
            f"approved-{area or 'all'}-{stamp(clock.now())}.xlsx",
        )

    # --- weekly report ----------------------------------------------------------------------

    def week_of(text: str) -> date:
        if not text:
            return clock.today()
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise HTTPException(422, "week 应写成 YYYY-MM-DD（该周中的任一天）") from None

    @router.get("/api/v1/reports/weekly", tags=["progress"])
    def api_weekly(
        request: Request, region: str = Query("", pattern=REGION), week: str = ""
    ) -> dict[str, Any]:
        area = admin_of(request).narrow(region)
        report = read(lambda s: weekly_report(s, area, week_of(week), clock.now()))
        return {
            "area": report.area,
            "week_start": report.week_start.isoformat(),
            "week_end": report.week_end.isoformat(),
            "rows": [
                {
                    "code": r.code,
                    "name": r.name,
                    "new_records": r.new_records,
                    "approved": r.approved,
                    "returned": r.returned,
                    "declared": r.declared,
                    "cumulative": _counts(r.cumulative).model_dump(),
                    "overdue": r.overdue,
                }
                for r in report.rows
            ],
        }

    @router.get("/reports/weekly", response_class=HTMLResponse, include_in_schema=False)
    def weekly_page(
        request: Request,
        lang: str = Query("zh", pattern=LANG),
        region: str = Query("", pattern=REGION),
        week: str = "",
    ) -> Response:
        area = admin_of(request).narrow(region)
        day = week_of(week)
        report = read(lambda s: weekly_report(s, area, day, clock.now()))
        chart = bar_chart(
            [(f"{r.name} {r.code}", r.new_records) for r in report.rows],
            title=progress_texts(lang)["new_records"],
            testid="weekly-chart",
        )
        return page(
            request,
            "weekly.html",
            lang,
            report=report,
            area=area,
            chart=chart,
            prev_week=(report.week_start - timedelta(days=7)).isoformat(),
            next_week=(report.week_start + timedelta(days=7)).isoformat(),
        )

    @router.get("/reports/weekly.xlsx", tags=["exports"])
    def weekly_xlsx(
        request: Request, region: str = Query("", pattern=REGION), week: str = ""
    ) -> Response:
        area = admin_of(request).narrow(region)
        report = read(lambda s: weekly_report(s, area, week_of(week), clock.now()))
        return xlsx(
            lambda p: weekly_workbook(report, p),
            f"weekly-{area or 'all'}-{report.week_start:%Y%m%d}.xlsx",
        )

    # --- deadlines --------------------------------------------------------------------------

    def deadline_views(area: str) -> list[DeadlineView]:
        return [
            DeadlineView(phase=d.phase, region=d.region_prefix, due_at=d.due_at, set_by=d.set_by)
            for d in read(lambda s: list_deadlines(s, area))
        ]

    def save_deadline(request: Request, phase: str, body: DeadlineRequest) -> DeadlineView:
        admin = admin_of(request)
        region = admin.narrow(body.region)
        now = clock.now()
        row = write(lambda s: set_deadline(s, phase, region, body.due, admin.username, now))
        return DeadlineView(
            phase=row.phase, region=row.region_prefix, due_at=row.due_at, set_by=row.set_by
        )

    @router.get("/api/v1/deadlines", response_model=list[DeadlineView], tags=["progress"])
    def api_deadlines(request: Request) -> list[DeadlineView]:
        return deadline_views(admin_of(request).prefix)

    @router.put("/api/v1/deadlines/{phase}", response_model=DeadlineView, tags=["progress"])
    def api_set_deadline(request: Request, phase: str, body: DeadlineRequest) -> DeadlineView:
        """Set the last day of a phase (collection, declaration, review) in your area."""
        try:
            return save_deadline(request, phase, body)
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from exc

    @router.get("/deadlines", response_class=HTMLResponse, include_in_schema=False)
    def deadlines_page(request: Request, lang: str = Query("zh", pattern=LANG)) -> Response:
        admin = admin_of(request)
        return page(
            request, "deadlines.html", lang, deadlines=deadline_views(admin.prefix), error=""
        )

    @router.post("/deadlines", include_in_schema=False)
    async def deadlines_submit(request: Request) -> Response:
        form = _form(await request.body())
        lang = _lang(form)
        admin = admin_of(request)
        try:
            body = DeadlineRequest(region=form.get("region", admin.prefix), due=form.get("due", ""))  # type: ignore[arg-type]
            save_deadline(request, form.get("phase", ""), body)
        except (ConfigError, ValueError) as exc:
            message = (
                str(exc)
                if isinstance(exc, ConfigError)
                else "日期应写成 YYYY-MM-DD，地区为数字代码"
            )
            return page(
                request,
                "deadlines.html",
                lang,
                status_code=400,
                deadlines=deadline_views(admin.prefix),
                error=message,
            )
        return RedirectResponse(f"/deadlines?lang={lang}", status_code=303)

    # --- township: who is missing, declaring complete ------------------------------------------

    def missing(township: str, limit: int = 5000) -> list[MissingView]:
        return [
            MissingView(id_number=p.id_number, name=p.name, category=p.category)
            for p in read(lambda s: missing_people(s, township, limit))
        ]

    def township_code(value: str) -> str:
        if not value.isdigit() or len(value) not in (9, 12):
            raise HTTPException(422, "乡镇代码应为9位或12位数字")
        return value if len(value) == 12 else value + "000"

    @router.get(
        "/api/v1/townships/{township}/missing", response_model=list[MissingView], tags=["review"]
    )
    def api_missing(township: str) -> list[MissingView]:
        """People of the township's slice with no record yet (S-09)."""
        return missing(township_code(township))

    def declare(request: Request, township: str, note: str) -> TownshipDeclaration:
        admin = admin_of(request)
        now = clock.now()
        return write(lambda s: declare_complete(s, township, admin, now, note))

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
        declaration = read(lambda s: s.get(TownshipDeclaration, code))
        names = read(lambda s: region_names(s, [code[:9], code[:6]]))
        return page(
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
        form = _form(await request.body())
        lang = _lang(form)
        try:
            declare(request, township_code(township), form.get("note", ""))
        except ConfigError as exc:
            return township_page(request, township, lang, error=str(exc), status_code=409)
        return RedirectResponse(f"/townships/{township}?lang={lang}", status_code=303)

    # --- review -------------------------------------------------------------------------------

    PER_PAGE = 50

    def queue(area: str, status: str, page_no: int) -> tuple[list[RecordView], int]:
        def run(s: Session) -> tuple[list[RecordView], int]:
            where = [Record.township_code.startswith(area)]
            if status:
                where.append(Record.review_status == status)
            total = s.scalar(select(func.count()).select_from(Record).where(*where)) or 0
            rows = s.scalars(
                select(Record)
                .where(*where)
                .order_by(Record.township_code, Record.received_at, Record.record_id)
                .offset((page_no - 1) * PER_PAGE)
                .limit(PER_PAGE)
            )
            return [_record_view(r) for r in rows], total

        return read(run)

    @router.get("/api/v1/review", response_model=list[RecordView], tags=["review"])
    def api_review(
        request: Request,
        region: str = Query("", pattern=REGION),
        status: str = Query("collected", pattern="^(|collected|returned|approved|superseded)$"),
        page_no: int = Query(1, alias="page", ge=1),
    ) -> list[RecordView]:
        """Records of your area by review status, 50 a page."""
        return queue(admin_of(request).narrow(region), status, page_no)[0]

    @router.get("/review", response_class=HTMLResponse, include_in_schema=False)
    def review_page(
        request: Request,
        lang: str = Query("zh", pattern=LANG),
        region: str = Query("", pattern=REGION),
        status: str = Query("collected", pattern="^(|collected|returned|approved|superseded)$"),
        page_no: int = Query(1, alias="page", ge=1),
    ) -> Response:
        admin = admin_of(request)
        area = admin.narrow(region)
        records, total = queue(area, status, page_no)
        return page(
            request,
            "review_list.html",
            lang,
            records=records,
            total=total,
            area=area,
            status=status,
            page_no=page_no,
            pages=max(1, math.ceil(total / PER_PAGE)),
        )

    def detail(record_id: str) -> tuple[RecordDetailView, list[EventView]]:
        def run(s: Session) -> tuple[RecordDetailView, list[EventView]]:
            record = s.get(Record, record_id)
            if record is None:
                raise HTTPException(404, f"没有编号为 {record_id} 的记录")
            person = (
                s.get(PersonRow, (record.township_code, record.id_number))
                if record.id_number
                else None
            )
            fields = [
                FieldView(
                    key=f.key,
                    label=f.label,
                    collected=f.collected,
                    initial=f.initial,
                    differs=f.differs,
                )
                for f in compare_fields(record, person)
            ]
            events = [
                _event_view(e)
                for e in s.scalars(
                    select(ReviewEvent)
                    .where(ReviewEvent.record_id == record_id)
                    .order_by(ReviewEvent.at)
                )
            ]
            return RecordDetailView(**_record_view(record).model_dump(), fields=fields), events

        return read(run)

    @router.get("/api/v1/records/{record_id}", response_model=RecordDetailView, tags=["review"])
    def api_record(record_id: str) -> RecordDetailView:
        """A record's fields beside the initial data, field by field."""
        return detail(record_id)[0]

    def act(request: Request, record_id: str, action: str, reason: str) -> Record:
        admin = admin_of(request)
        now = clock.now()
        if action == "approve":
            return write(lambda s: approve(s, record_id, admin, now))
        if action == "return":
            return write(lambda s: return_record(s, record_id, admin, reason, now))
        raise ConfigError("操作应为 approve（通过）或 return（退回）")

    @router.post("/api/v1/records/{record_id}/approve", response_model=RecordView, tags=["review"])
    def api_approve(request: Request, record_id: str) -> RecordView:
        try:
            return _record_view(act(request, record_id, "approve", ""))
        except ConfigError as exc:
            raise HTTPException(409, str(exc)) from exc

    @router.post("/api/v1/records/{record_id}/return", response_model=RecordView, tags=["review"])
    def api_return(request: Request, record_id: str, body: ReturnRequest) -> RecordView:
        """Send a record back to its township; the reason reaches the township's devices."""
        try:
            return _record_view(act(request, record_id, "return", body.reason))
        except ConfigError as exc:
            raise HTTPException(409, str(exc)) from exc

    def record_page(
        request: Request, record_id: str, lang: str, error: str = "", status_code: int = 200
    ) -> Response:
        record, events = detail(record_id)
        return page(
            request,
            "review_record.html",
            lang,
            status_code=status_code,
            r=record,
            events=events,
            error=error,
            can_review=admin_of(request).can("review"),
        )

    @router.get("/review/{record_id}", response_class=HTMLResponse, include_in_schema=False)
    def record_view(
        request: Request, record_id: str, lang: str = Query("zh", pattern=LANG)
    ) -> Response:
        return record_page(request, record_id, lang)

    @router.post("/review/{record_id}", include_in_schema=False)
    async def record_submit(request: Request, record_id: str) -> Response:
        form = _form(await request.body())
        lang = _lang(form)
        try:
            record = act(request, record_id, form.get("action", ""), form.get("reason", ""))
        except ConfigError as exc:
            return record_page(request, record_id, lang, error=str(exc), status_code=409)
        # On to the next record of the same township still to review, as a reviewer works.
        following = queue(record.township_code, "collected", 1)[0]
        if following:
            return RedirectResponse(
                f"/review/{following[0].record_id}?lang={lang}", status_code=303
            )
        return RedirectResponse(
            f"/review?region={record.township_code[:9]}&lang={lang}", status_code=303
        )

    # --- forward (upper levels take in what the level below approved) --------------------------

    @router.post("/api/v1/forward", tags=["review"])
    def api_forward(request: Request, body: ForwardRequest) -> dict[str, int]:
        try:
            moved = write(lambda s: forward(s, admin_of(request), body.region, clock.now()))
        except ConfigError as exc:
            raise HTTPException(409, str(exc)) from exc
        return {"records": moved}

    @router.post("/forward", include_in_schema=False)
    async def forward_submit(request: Request) -> Response:
        form = _form(await request.body())
        lang = _lang(form)
        region = form.get("region", "")
        write(lambda s: forward(s, admin_of(request), region, clock.now()))
        return RedirectResponse(f"/progress?region={region}&lang={lang}", status_code=303)

    # --- audit --------------------------------------------------------------------------------

    def events(area: str, limit: int = 500) -> list[EventView]:
        return read(
            lambda s: [
                _event_view(e)
                for e in s.scalars(
                    select(ReviewEvent)
                    .where(ReviewEvent.township_code.startswith(area))
                    .order_by(ReviewEvent.at.desc())
                    .limit(limit)
                )
            ]
        )

    @router.get("/api/v1/audit", response_model=list[EventView], tags=["review"])
    def api_audit(request: Request, region: str = Query("", pattern=REGION)) -> list[EventView]:
        """The review chain's audit in your area, newest first."""
        return events(admin_of(request).narrow(region))

    @router.get("/audit", response_class=HTMLResponse, include_in_schema=False)
    def audit_page(
        request: Request,
        lang: str = Query("zh", pattern=LANG),
        region: str = Query("", pattern=REGION),
    ) -> Response:
        area = admin_of(request).narrow(region)
        return page(request, "audit.html", lang, events=events(area), area=area)

    @router.get("/api/v1/denials", tags=["admin"])
    def api_denials(
        request: Request, limit: int = Query(200, ge=1, le=5000)
    ) -> list[dict[str, Any]]:
        """Refused requests (national admins and auditors only: they name no region)."""
        admin = admin_of(request)
        if admin.prefix:
            raise AccessDenied("拒绝访问记录涉及全国，只有全国范围的管理员可以查看")
        from controller.db.models import AccessDenial

        return read(
            lambda s: [
                {
                    "at": d.at,
                    "username": d.username,
                    "method": d.method,
                    "path": d.path,
                    "reason": d.reason,
                }
                for d in s.scalars(
                    select(AccessDenial).order_by(AccessDenial.id.desc()).limit(limit)
                )
            ]
        )

    return router


def _event_view(e: ReviewEvent) -> EventView:
    return EventView(
        at=e.at,
        actor=e.actor,
        role=e.role,
        action=e.action,
        township_code=e.township_code,
        record_id=e.record_id,
        reason=e.reason,
        details=dict(e.details),
    )
