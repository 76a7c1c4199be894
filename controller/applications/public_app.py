"""The controller's public web app for S-30, apart from the admin UI: the applicant's pages and
the departments' callback endpoint. It runs on its own port (``applications_port``) because it
faces the internet and the departments' network, where the admin UI must not be reachable; it
shares no cookies, sessions or access table with the admin app."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from controller.applications.hooks import hooks_router
from controller.applications.public_pages import applicant_router
from muster.clock import Clock

__all__ = ["create_public_app"]


def create_public_app(sessions: sessionmaker[Session], clock: Clock) -> FastAPI:
    app = FastAPI(title="muster one application", openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(hooks_router(sessions, clock))
    app.include_router(applicant_router(sessions, clock))
    return app
