"""Software releases as the admins see them: ``/releases`` (Chinese; ``?lang=en`` for English)
and ``/api/v1/releases``: how many devices of the admin's area run which version, per region
one level down; every rollout touching the area with its waves and state; the recent failures
and why. ``/api/v1/devices/{device_id}/updates`` is a device's update history (the device page
shows it, :func:`device_updates`); ``POST /devices/{device_id}/update-retry`` (the page's form)
and ``/api/v1/devices/{device_id}/update-retry?rollout_id=N`` retry a failed device by hand.

Self-contained (its own markup, its words ``controller/admin/text/releases.py``'s) so the page
needs nothing of the page framework beyond the access middleware, which scopes every request
to the admin's area."""

from __future__ import annotations

from datetime import datetime
from html import escape

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.admin.access import admin_of
from controller.admin.pages.rendering import form_body, form_lang
from controller.admin.text import other_lang, texts
from controller.db.models import Device, Rollout, RolloutDevice, UpdateEvent
from controller.releases.rollouts import (
    ACTIVE,
    FAILED_STATES,
    RETRYING,
    retry_device,
    rollout_status,
)
from muster.clock import Clock
from muster.errors import ConflictError, NotFoundError
from muster.regions import child_length

__all__ = ["DeviceUpdates", "ReleaseOverview", "device_updates", "release_router"]


def _t(key: str, lang: str) -> str:
    return texts(lang, "releases")[key]


def _state(state: str, lang: str) -> str:
    """A state we have no word for (a newer device's) shows as itself."""
    return texts(lang, "releases").get(f"state_{state}", state)


class VersionCount(BaseModel):
    region: str
    version: str
    devices: int


class WaveView(BaseModel):
    percent: float
    devices: int
    states: dict[str, int]


class RolloutView(BaseModel):
    id: int
    version: str
    region: str
    state: str
    reason: str
    current_wave: int
    waves: list[WaveView]


class FailureView(BaseModel):
    device_id: str
    version: str
    state: str
    reason: str
    at: datetime


class ReleaseOverview(BaseModel):
    area: str
    versions: list[VersionCount]
    rollouts: list[RolloutView]
    failures: list[FailureView]


class UpdateHistoryEntry(BaseModel):
    at: datetime
    rollout_id: int | None
    version: str
    state: str
    reason: str
    running_version: str


def _overview(session: Session, area: str) -> ReleaseOverview:
    length = child_length(area) or 12
    region = func.substr(Device.township_code, 1, length)
    versions = [
        VersionCount(region=r, version=v, devices=n)
        for r, v, n in session.execute(
            select(region, Device.software_version, func.count())
            .where(Device.township_code.startswith(area), Device.revoked_at.is_(None))
            .group_by(region, Device.software_version)
            .order_by(region, Device.software_version)
        )
    ]
    rollouts: list[RolloutView] = []
    for rollout in session.scalars(select(Rollout).order_by(Rollout.id.desc()).limit(50)):
        if not (rollout.region_prefix.startswith(area) or area.startswith(rollout.region_prefix)):
            continue
        s = rollout_status(session, rollout.id)
        rollouts.append(
            RolloutView(
                id=s.id,
                version=s.version,
                region=s.region_prefix,
                state=s.state,
                reason=s.state_reason,
                current_wave=s.current_wave,
                waves=[
                    WaveView(percent=w.percent, devices=w.devices, states=w.states) for w in s.waves
                ],
            )
        )
    failures = [
        FailureView(
            device_id=e.device_id, version=e.version, state=e.state, reason=e.reason, at=e.at
        )
        for e in session.scalars(
            select(UpdateEvent)
            .join(Device, Device.id == UpdateEvent.device_id)
            .where(
                Device.township_code.startswith(area),
                UpdateEvent.state.in_(FAILED_STATES),
            )
            .order_by(UpdateEvent.at.desc())
            .limit(50)
        )
    ]
    return ReleaseOverview(area=area, versions=versions, rollouts=rollouts, failures=failures)


class RetryableEntry(BaseModel):
    rollout_id: int
    version: str
    state: str
    reason: str
    attempts: int


class DeviceUpdates(BaseModel):
    history: list[UpdateHistoryEntry]
    retryable: list[RetryableEntry]  # failed in a running or paused rollout: may be retried


def device_updates(session: Session, device_id: str, limit: int = 50) -> DeviceUpdates:
    """A device's update steps, newest first, and the rollouts in which it may be retried."""
    history = [
        UpdateHistoryEntry(
            at=e.at,
            rollout_id=e.rollout_id,
            version=e.version,
            state=e.state,
            reason=e.reason,
            running_version=e.running_version,
        )
        for e in session.scalars(
            select(UpdateEvent)
            .where(UpdateEvent.device_id == device_id[:40])
            .order_by(UpdateEvent.at.desc(), UpdateEvent.id.desc())
            .limit(limit)
        )
    ]
    retryable = [
        RetryableEntry(
            rollout_id=entry.rollout_id,
            version=rollout.version,
            state=entry.state,
            reason=entry.reason,
            attempts=entry.attempts,
        )
        for entry, rollout in session.execute(
            select(RolloutDevice, Rollout)
            .join(Rollout, Rollout.id == RolloutDevice.rollout_id)
            .where(
                RolloutDevice.device_id == device_id[:40],
                RolloutDevice.state.in_((*FAILED_STATES, RETRYING)),
                Rollout.state.in_(ACTIVE),
            )
            .order_by(Rollout.id)
        )
    ]
    return DeviceUpdates(history=history, retryable=retryable)


def _table(headers: list[str], rows: list[list[str]], lang: str) -> str:
    if not rows:
        return f"<p>{_t('none', lang)}</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(view: ReleaseOverview, lang: str) -> str:
    other = other_lang(lang)
    versions = _table(
        [_t("region", lang), _t("version", lang), _t("devices", lang)],
        [[v.region, v.version or _t("unknown", lang), str(v.devices)] for v in view.versions],
        lang,
    )
    rollouts = _table(
        [
            "#",
            _t("version", lang),
            _t("region", lang),
            _t("state", lang),
            _t("wave", lang),
            _t("waves", lang),
            _t("reason", lang),
        ],
        [
            [
                str(r.id),
                r.version,
                r.region or _t("all", lang),
                _state(r.state, lang),
                f"{r.current_wave + 1}/{len(r.waves)}",
                " | ".join(
                    f"{w.percent:g}%: "
                    + ", ".join(f"{_state(k, lang)} {n}" for k, n in sorted(w.states.items()))
                    for w in r.waves
                ),
                r.reason,
            ]
            for r in view.rollouts
        ],
        lang,
    )
    failures = _table(
        [
            _t("device", lang),
            _t("version", lang),
            _t("state", lang),
            _t("reason", lang),
            _t("at", lang),
        ],
        [
            [
                f.device_id,
                f.version,
                _state(f.state, lang),
                f.reason,
                f.at.isoformat(timespec="seconds"),
            ]
            for f in view.failures
        ],
        lang,
    )
    area = escape(view.area or _t("all", lang))
    return (
        f'<!doctype html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head>'
        f'<meta charset="utf-8"><title>{_t("title", lang)}</title></head><body>'
        f"<h1>{_t('title', lang)} — {area}</h1>"
        f'<p><a href="?lang={other}&amp;region={escape(view.area)}">{_t("switch", lang)}</a></p>'
        f"<h2>{_t('versions', lang)}</h2>{versions}"
        f"<h2>{_t('rollouts', lang)}</h2>{rollouts}"
        f"<h2>{_t('failures', lang)}</h2>{failures}</body></html>"
    )


def release_router(sessions: sessionmaker[Session], clock: Clock) -> APIRouter:
    router = APIRouter()

    def overview(request: Request, region: str) -> ReleaseOverview:
        area = admin_of(request).narrow(region)
        with sessions() as session:
            return _overview(session, area)

    @router.get("/api/v1/releases", response_model=ReleaseOverview, tags=["releases"])
    def api_releases(
        request: Request, region: str = Query("", pattern=r"^\d{0,12}$")
    ) -> ReleaseOverview:
        return overview(request, region)

    @router.get(
        "/api/v1/devices/{device_id}/updates",
        response_model=list[UpdateHistoryEntry],
        tags=["releases"],
    )
    def api_device_updates(device_id: str) -> list[UpdateHistoryEntry]:
        with sessions() as session:
            return device_updates(session, device_id, limit=200).history

    def retry(request: Request, device_id: str, rollout_id: int) -> None:
        by = admin_of(request).username
        try:
            with sessions.begin() as session:
                retry_device(session, rollout_id, device_id[:40], by=by, now=clock.now())
        except NotFoundError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        except ConflictError as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from exc

    @router.post(
        "/api/v1/devices/{device_id}/update-retry",
        response_model=DeviceUpdates,
        tags=["releases"],
    )
    def api_retry(
        request: Request, device_id: str, rollout_id: int = Query(ge=1, le=2**62)
    ) -> DeviceUpdates:
        """Offer the device its failed rollout's release again, as its next attempt."""
        retry(request, device_id, rollout_id)
        with sessions() as session:
            return device_updates(session, device_id)

    @router.post("/devices/{device_id}/update-retry", include_in_schema=False)
    async def page_retry(request: Request, device_id: str) -> Response:
        form = form_body(await request.body())
        lang = form_lang(form)
        rollout = form.get("rollout_id", "")
        if not rollout.isascii() or not rollout.isdigit() or not 0 < int(rollout) < 2**62:
            raise HTTPException(
                status_code=400,
                detail=_t("bad_rollout_id", lang).format(value=repr(rollout[:20])),
            )
        retry(request, device_id, int(rollout))
        return RedirectResponse(f"/devices/{device_id}?lang={lang}", status_code=303)

    @router.get("/releases", response_class=HTMLResponse, include_in_schema=False)
    def releases_page(
        request: Request,
        region: str = Query("", pattern=r"^\d{0,12}$"),
        lang: str = Query("zh", pattern="^(zh|en)$"),
    ) -> HTMLResponse:
        return HTMLResponse(_page(overview(request, region), lang))

    return router
