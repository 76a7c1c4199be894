"""The admin UI and API while PostgreSQL is away (kill -9 of the postmaster, as a primary crash
or failover looks from the controller): every request, the access control's own session lookup
included, answers 503 with Retry-After and says why in Chinese and English (a JSON body for the
API), never a bare 500; once the server is back the same requests work, nothing to restart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from controller.accounts.admins import add_admin, issue_token
from controller.admin import create_admin_app
from controller.admin.unavailable import RETRY_AFTER_S
from controller.db import make_engine, migrate, session_factory
from muster.clock import VirtualClock
from tests.chaos.world import ChaosDatabase

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def database() -> Iterator[ChaosDatabase]:
    server = ChaosDatabase()  # the test's own: it is killed
    server.start()
    server.create_database("chaos")
    try:
        yield server
    finally:
        if not server.running:  # a failure while it was down: bring it back to stop it
            server.restart()
        server.stop()


async def test_the_admin_answers_503_while_the_database_is_down_and_recovers_by_itself(
    database: ChaosDatabase,
) -> None:
    migrate(database.database_url)
    engine = make_engine(database.database_url)
    sessions: sessionmaker[Session] = session_factory(engine)
    with sessions.begin() as session:
        add_admin(
            session, username="ops", role="ministry", region="", password="Ops-passw0rd", now=NOW
        )
        token = issue_token(session, "ops", NOW)
    app = create_admin_app(sessions, clock=VirtualClock(NOW))
    auth = {"Authorization": f"Bearer {token}"}
    page = {**auth, "Accept": "text/html,application/xhtml+xml"}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as client:
            assert (await client.get("/api/v1/summary", headers=auth)).status_code == 200
            database.kill()
            api = await client.get("/api/v1/summary", headers=auth)
            assert api.status_code == 503, api.text
            assert api.headers["retry-after"] == str(RETRY_AFTER_S)
            assert api.json()["error"] == "database_unavailable"
            shown = await client.get("/devices", headers=page)
            assert shown.status_code == 503
            assert "数据库暂时不可用" in shown.text and "database is unavailable" in shown.text
            assert "Traceback" not in shown.text
            # A client without a session: the access control's lookup is what fails first.
            anonymous = await client.get("/api/v1/devices")
            assert anonymous.status_code == 503
            database.restart()
            again = await client.get("/api/v1/summary", headers=auth)
            assert again.status_code == 200, again.text
            assert (await client.get("/devices", headers=page)).status_code == 200
    finally:
        engine.dispose()
