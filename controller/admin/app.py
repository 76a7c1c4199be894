"""FastAPI admin: ``/api/v1/...`` for scripts (OpenAPI at ``/docs``) and server-rendered pages.
No asset comes from the internet: the devices' and admins' networks are private."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.admin.access import admin_of, install_access_control
from controller.admin.api_docs import install_offline_docs
from controller.admin.application_pages import application_router
from controller.admin.attachments import attachments_router
from controller.admin.codes import codes_router
from controller.admin.comparison_pages import comparison_router
from controller.admin.confirmation_pages import confirmation_routers
from controller.admin.login import login_router
from controller.admin.login_guard import (
    LOCKOUT,
    LoginThrottle,
    PasswordWorkers,
)
from controller.admin.pages import page_routers
from controller.admin.release_pages import release_router
from controller.admin.task_pages import task_router
from controller.admin.unavailable import DatabaseUnavailable
from controller.db.models import Device, Record
from muster.client_address import parse_trusted_proxies
from muster.clock import Clock
from muster.crypto import UploadPrivateKey

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


class DeviceView(BaseModel):
    id: str
    township_code: str
    profile: str
    online: bool
    status_since: datetime | None
    last_seen: datetime | None
    records_received: int
    outbox_depth: int
    licence_days_left: int | None
    collection_allowed: bool
    collection_refusal: str
    software_version: str
    clock_skew_s: float
    revoked: bool
    state: str
    state_reason: str


class FleetSummary(BaseModel):
    devices: int
    online: int
    offline: int
    records: int


def _view(device: Device) -> DeviceView:
    return DeviceView(
        id=device.id,
        township_code=device.township_code,
        profile=device.profile,
        online=device.online,
        status_since=device.status_since,
        last_seen=device.last_seen,
        records_received=device.records_received,
        outbox_depth=device.outbox_depth,
        licence_days_left=device.licence_days_left,
        collection_allowed=device.collection_allowed,
        collection_refusal=device.collection_refusal,
        software_version=device.software_version,
        clock_skew_s=device.clock_skew_s,
        revoked=device.revoked_at is not None,
        state=device.state,
        state_reason=device.state_reason,
    )


def create_admin_app(
    sessions: sessionmaker[Session],
    *,
    clock: Clock,
    upload_keys: Callable[[], Mapping[int, UploadPrivateKey]] | None = None,
    password_workers: PasswordWorkers | None = None,
    lockout: timedelta = LOCKOUT,
    trusted_proxies: Sequence[str] = (),
    read_sessions: sessionmaker[Session] | None = None,
    enrolment_ticket: Callable[[str], str] | None = None,
) -> FastAPI:
    """The admin app over ``sessions``. ``clock`` is the one every page, API call, login and
    refusal reads "now" from (kept on ``app.state.clock``): the process's ``SystemClock``, or a
    ``VirtualClock`` in tests so data built at the tests' NOW is seen from that same NOW.

    Passwords are checked on ``password_workers`` (the controller's, which it closes when it
    stops; by default a pool of this app's own); failed logins are counted and locked out in
    ``app.state.login_throttle`` (controller/admin/login_guard.py).

    ``read_sessions`` (a read-only replica's, when the controller has one) serve the device list,
    the summary and the page families that never write; sign-in, access control and every write
    stay on ``sessions``. ``enrolment_ticket`` makes the QR payload of a new enrolment code."""
    app = FastAPI(title="muster admin", version="1")
    app.state.clock = clock
    app.state.password_workers = workers = password_workers or PasswordWorkers()
    app.state.login_throttle = throttle = LoginThrottle(sessions, clock, lockout=lockout)
    app.state.trusted_proxies = proxies = parse_trusted_proxies(trusted_proxies)
    reads = read_sessions or sessions

    def list_devices(township: str, online: bool | None, limit: int) -> list[DeviceView]:
        with reads() as session:
            query = select(Device).order_by(Device.township_code, Device.id).limit(limit)
            if township:
                query = query.where(Device.township_code.startswith(township))
            if online is not None:
                query = query.where(Device.online == online)
            return [_view(d) for d in session.scalars(query)]

    def summary(area: str) -> FleetSummary:
        in_area = Device.township_code.startswith(area)
        with reads() as session:
            total = session.scalar(select(func.count()).select_from(Device).where(in_area)) or 0
            online = (
                session.scalar(select(func.count()).where(Device.online.is_(True), in_area)) or 0
            )
            records = (
                session.scalar(
                    select(func.count())
                    .select_from(Record)
                    .where(Record.township_code.startswith(area))
                )
                or 0
            )
        return FleetSummary(devices=total, online=online, offline=total - online, records=records)

    @app.get("/api/v1/devices", response_model=list[DeviceView])
    def api_devices(
        request: Request,
        township: str = Query("", pattern=r"^\d{0,12}$", description="region code prefix"),
        online: bool | None = None,
        limit: int = Query(1000, ge=1, le=10_000),
    ) -> list[DeviceView]:
        return list_devices(admin_of(request).narrow(township), online, limit)

    @app.get("/api/v1/summary", response_model=FleetSummary)
    def api_summary(request: Request) -> FleetSummary:
        return summary(admin_of(request).prefix)

    for router in page_routers(sessions, clock, read_sessions):
        app.include_router(router)
    app.include_router(codes_router(sessions, clock, enrolment_ticket))
    app.include_router(application_router(sessions, clock))
    # The confirmation pages and the public self-service page (face-checked with the keys).
    for router in confirmation_routers(sessions, clock, upload_keys):
        app.include_router(router)
    app.include_router(comparison_router(sessions))
    app.include_router(task_router(sessions, clock))
    app.include_router(release_router(sessions, clock))
    app.include_router(
        login_router(sessions, clock, workers=workers, throttle=throttle, proxies=proxies)
    )
    install_offline_docs(app)  # /docs from this app's own files, no CDN
    install_access_control(app, sessions, clock)  # scopes and roles on every route above
    if upload_keys is not None:  # only a controller holding the upload keys can open photos
        app.include_router(attachments_router(sessions, upload_keys))
    app.add_middleware(DatabaseUnavailable)  # outermost: the access control reads the database
    return app
