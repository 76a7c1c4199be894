"""The admin's server-rendered pages and their ``/api/v1/...`` twins, one router per page family
(fleet overview, devices, device export, alert handling, data flow, progress, review, township, reports, deadlines, exports,
audit, accounts); ``rendering`` holds what they share. May import ``controller.admin`` (access, charts,
text, fleet_queries), ``controller.records``, ``controller.fleet``, ``controller.db``, ``muster``."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session, sessionmaker

from controller.admin.pages.accounts import accounts_router
from controller.admin.pages.alerts import alerts_router
from controller.admin.pages.audit import audit_router
from controller.admin.pages.deadlines import deadlines_router
from controller.admin.pages.device_export import device_export_router
from controller.admin.pages.exports import exports_router
from controller.admin.pages.fleet_devices import fleet_devices_router
from controller.admin.pages.fleet_flow import fleet_flow_router
from controller.admin.pages.fleet_overview import fleet_overview_router
from controller.admin.pages.progress import progress_router
from controller.admin.pages.reports import reports_router
from controller.admin.pages.review import review_router
from controller.admin.pages.township import township_router
from muster.clock import Clock

__all__ = ["page_routers"]


def page_routers(
    sessions: sessionmaker[Session],
    clock: Clock,
    read_sessions: sessionmaker[Session] | None = None,
) -> list[APIRouter]:
    """Every page family's router, in the order the app includes them. The families that never
    write (fleet overview and flow, reports, exports, audit) read from ``read_sessions`` (a
    replica) when given; those that write read the primary too, so an admin sees their own
    change on the page that follows it."""
    reads = read_sessions or sessions
    return [
        fleet_overview_router(reads),
        fleet_devices_router(sessions, clock),
        device_export_router(reads, clock),
        alerts_router(sessions, clock),
        fleet_flow_router(reads, clock),
        progress_router(sessions, clock),
        reports_router(reads, clock),
        exports_router(reads, clock),
        deadlines_router(sessions, clock),
        township_router(sessions, clock),
        review_router(sessions, clock),
        audit_router(reads),
        accounts_router(sessions, clock),
    ]
