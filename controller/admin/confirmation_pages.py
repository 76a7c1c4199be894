"""The annual confirmation's admin pages (S-20..S-23), Chinese with ``?lang=en``:

- ``/confirmation``: the campaigns, and a campaign's progress per township and for the county by
  age band and channel, with the home-visit quota and a warning while a band is behind;
- ``/confirmation/notice``: the public notice of the unconfirmed, names partly masked;
- ``/confirmation/stops``: the payment-stop list for finance, restorations with months owed;
- ``/confirmation/overpayments``: over-payments after a death and what was recovered;
- ``/confirmation/hardship``: the hardship register with measures, who is responsible, follow-ups;
- ``/confirmation/self-service``: self-service attempts awaiting their face check, resolved by a
  clerk's manual check (POST), and ``/confirmation/deaths`` (POST): a death reported at a visit;
- ``/confirmation/weekly.xlsx``: the weekly workbook.

A campaign is named by ``year`` and ``county``; the admin must cover the county, and lists are
narrowed to the admin's area. The words are ``controller/admin/text/confirmation.py``'s."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.admin.access import admin_of
from controller.admin.pages.rendering import LANG, TEMPLATES, Store, form_body, xlsx_response
from controller.admin.text import texts
from controller.confirmation.attempts import pending_attempts, resolve_attempt
from controller.confirmation.campaigns import find_campaign, phases_of
from controller.confirmation.face_check import (
    PROCESS_SLOTS,
    REASON_TEXT,
    MusterFaceVerifier,
    UploadKeys,
)
from controller.confirmation.hardship import hardship_cases
from controller.confirmation.reports import notice_list, overpayments, progress, stop_list
from controller.confirmation.self_service import FaceService, self_service_router
from controller.confirmation.steps import record_death
from controller.confirmation.weekly import write_weekly_xlsx
from controller.db.models import ConfirmationCampaign, ConfirmationSubject, SelfServiceAttempt
from controller.records.attachment_open import record_attachment
from muster.clock import Clock
from muster.confirmation import (
    AGE_BANDS,
    PENSION_CATEGORY_NAMES,
    PHASE_ZH,
    Channel,
    PensionCategory,
    status_zh,
)
from muster.errors import ConfigError, NotFoundError, SealError
from muster.face import REASONS

__all__ = ["confirmation_routers"]

_VIEWS = ("progress", "notice", "stops", "overpayments", "hardship", "self_service")


def _int(text: str) -> int:
    return int(text) if text.isdigit() and len(text) < 10 else 0


def _category(value: str) -> str:
    try:
        return PENSION_CATEGORY_NAMES[PensionCategory(value)]
    except ValueError:
        return value


def confirmation_routers(
    sessions: sessionmaker[Session], clock: Clock, upload_keys: UploadKeys | None = None
) -> list[APIRouter]:
    """The admin pages and the public self-service page; with the upload keys, the page
    face-checks selfies against the photos on file and the queue shows those photos."""
    face = None
    if upload_keys is not None:
        face = FaceService(MusterFaceVerifier(), PROCESS_SLOTS, upload_keys)
    return [
        _admin_router(sessions, clock, upload_keys),
        self_service_router(sessions, clock, face),
    ]


def _admin_router(
    sessions: sessionmaker[Session], clock: Clock, upload_keys: UploadKeys | None
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    store = Store(sessions)

    def campaign_of(request: Request, session: Session, year: int, county: str) -> Any:
        admin_of(request).require_covers(county, f"区县 {county}")
        try:
            return find_campaign(session, year, county)
        except ConfigError as exc:
            raise HTTPException(404, str(exc)) from None

    def render(request: Request, lang: str, view: str, **context: Any) -> Response:
        return TEMPLATES.TemplateResponse(
            request,
            "confirmation.html",
            {
                "t": texts(lang, "confirmation"),
                "lang": lang,
                "path": request.url.path,
                "switch_url": str(
                    request.url.include_query_params(lang="en" if lang == "zh" else "zh")
                ),
                "view": view,
                "category": _category,
                "status_zh": status_zh,
                "face_reasons": {**REASONS, **REASON_TEXT},
                "bands": AGE_BANDS,
                "channels": [c.value for c in Channel],
                **context,
            },
        )

    def view_page(request: Request, view: str, lang: str, year: int, county: str) -> Response:
        area = admin_of(request)

        def build(session: Session) -> dict[str, Any]:
            if not year or not county:
                campaigns = [
                    c
                    for c in session.scalars(
                        select(ConfirmationCampaign).order_by(
                            ConfirmationCampaign.year.desc(), ConfirmationCampaign.county_code
                        )
                    )
                    if area.covers(c.county_code) or c.county_code.startswith(area.prefix)
                ]
                return {"campaigns": campaigns, "campaign": None}
            campaign = campaign_of(request, session, year, county)
            narrowed = area.narrow(county)
            today = clock.today()
            phases = phases_of(campaign)
            out: dict[str, Any] = {
                "campaign": campaign,
                "phases": [(PHASE_ZH[n], getattr(phases, n)) for n in PHASE_ZH],
                "active": [PHASE_ZH[n] for n in phases.active(today)],
                "query": f"year={year}&county={county}",
            }
            if view == "progress":
                rows, total = progress(session, campaign, today, narrowed)
                out |= {"rows": rows, "total": total}
            elif view == "notice":
                out["lines"] = notice_list(session, campaign, narrowed)
            elif view == "stops":
                out["lines"] = stop_list(session, campaign, narrowed)
            elif view == "overpayments":
                out["lines"] = overpayments(session, campaign, narrowed)
            elif view == "hardship":
                out["cases"] = hardship_cases(session, campaign, narrowed)
            else:
                out["attempts"] = [
                    (a, t)
                    for a, t in pending_attempts(session, narrowed)
                    if a.campaign_id == campaign.id
                ]
            return out

        return render(request, lang, view, **store.read(build))

    def add_get(path: str, view: str) -> None:
        def handler(
            request: Request,
            lang: str = Query("zh", pattern=LANG),
            year: int = Query(0, ge=0, le=2200),
            county: str = Query("", pattern=r"^(\d{6})?$"),
        ) -> Response:
            return view_page(request, view, lang, year, county)

        router.add_api_route(path, handler, methods=["GET"], response_class=HTMLResponse)

    add_get("/confirmation", "progress")
    add_get("/confirmation/notice", "notice")
    add_get("/confirmation/stops", "stops")
    add_get("/confirmation/overpayments", "overpayments")
    add_get("/confirmation/hardship", "hardship")
    add_get("/confirmation/self-service", "self_service")

    @router.get("/confirmation/weekly.xlsx")
    def weekly_xlsx(
        request: Request,
        year: int = Query(..., ge=2000, le=2200),
        county: str = Query(..., pattern=r"^\d{6}$"),
    ) -> Response:
        today = clock.today()

        def build(path: Any) -> None:
            with sessions() as session:
                write_weekly_xlsx(session, campaign_of(request, session, year, county), today, path)

        with sessions() as session:
            campaign_of(request, session, year, county)  # refused before any file is made
        return xlsx_response(build, f"confirmation-weekly-{county}-{year}-{today}.xlsx")

    @router.get("/confirmation/self-service/selfie")
    def selfie(
        request: Request,
        year: int = Query(..., ge=2000, le=2200),
        county: str = Query(..., pattern=r"^\d{6}$"),
        attempt: int = Query(..., ge=1),
    ) -> Response:
        def read(session: Session) -> tuple[bytes, str]:
            campaign = campaign_of(request, session, year, county)
            found = session.get(SelfServiceAttempt, attempt)
            if found is None or found.selfie is None or found.campaign_id != campaign.id:
                raise HTTPException(404, "没有这张照片")
            person = session.get(ConfirmationSubject, (campaign.id, found.id_number))
            if person is None:
                raise HTTPException(404, "没有这张照片")
            admin_of(request).require_covers(person.township_code)
            return found.selfie, found.selfie_type

        data, kind = store.read(read)
        return Response(
            data,
            media_type=f"image/{kind}",
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )

    @router.get("/confirmation/self-service/reference")
    def reference(
        request: Request,
        year: int = Query(..., ge=2000, le=2200),
        county: str = Query(..., pattern=r"^\d{6}$"),
        attempt: int = Query(..., ge=1),
    ) -> Response:
        """The photo on file the attempt's selfie was compared with, beside it in the queue."""

        def read(session: Session) -> tuple[bytes, str]:
            campaign = campaign_of(request, session, year, county)
            found = session.get(SelfServiceAttempt, attempt)
            if found is None or found.campaign_id != campaign.id or upload_keys is None:
                raise HTTPException(404, "没有这张照片")
            if not found.face_reference.startswith("record:"):
                raise HTTPException(404, "没有这张照片")
            person = session.get(ConfirmationSubject, (campaign.id, found.id_number))
            if person is None:
                raise HTTPException(404, "没有这张照片")
            admin_of(request).require_covers(person.township_code)
            try:
                return record_attachment(
                    session,
                    found.face_reference.removeprefix("record:"),
                    "photo.jpg",
                    upload_keys(),
                )
            except NotFoundError:
                raise HTTPException(404, "没有这张照片") from None
            except SealError as exc:
                raise HTTPException(500, str(exc)) from None

        data, media_type = store.read(read)
        return Response(
            data,
            media_type=media_type,
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )

    @router.post("/confirmation/self-service")
    async def resolve(request: Request) -> Response:
        form = form_body(await request.body())
        admin = admin_of(request)
        year, county = _int(form.get("year", "")), form.get("county", "")
        attempt_id = _int(form.get("attempt", ""))

        def apply(session: Session) -> None:
            campaign_of(request, session, year, county)
            resolve_attempt(
                session,
                attempt_id,
                accept=form.get("verdict") == "accept",
                reason=form.get("reason", "")[:280],
                by=admin.username,
                clock=clock,
            )

        try:
            store.write(apply)
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        return RedirectResponse(
            f"/confirmation/self-service?year={year}&county={county}&lang={form.get('lang', 'zh')}",
            status_code=303,
        )

    @router.post("/confirmation/deaths")
    async def death(request: Request) -> Response:
        form = form_body(await request.body())
        admin = admin_of(request)
        year, county = _int(form.get("year", "")), form.get("county", "")
        try:
            died = date.fromisoformat(form.get("death_date", ""))
        except ValueError:
            raise HTTPException(422, "死亡日期应写成 YYYY-MM-DD") from None

        def apply(session: Session) -> None:
            campaign = campaign_of(request, session, year, county)
            record_death(
                session,
                campaign,
                form.get("id_number", "")[:18],
                death_date=died,
                day=clock.today(),
                at=clock.now(),
                by=admin.username,
                source="visit",
            )

        try:
            store.write(apply)
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        return RedirectResponse(
            f"/confirmation/overpayments?year={year}&county={county}", status_code=303
        )

    return router
