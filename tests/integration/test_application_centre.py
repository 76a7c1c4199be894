"""The service-centre mode and the department dashboard in the admin app (PostgreSQL): a
county admin enters an application for the applicant present, within the county only; other
counties do not see it; a ministry admin may look but not enter; overdue items show per
department."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

import httpx
import pytest

from controller.accounts.admins import add_admin, issue_token
from controller.admin import create_admin_app
from controller.applications.departments import add_department
from controller.db import make_engine, migrate, session_factory
from muster.clock import VirtualClock
from muster.one_application import materials_for
from tests.fixtures.applications import APPLICANT, PDF

pytestmark = [pytest.mark.postgres]

START = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC)
FORM = {"content-type": "application/x-www-form-urlencoded"}
ITEMS = ("discharge", "idcard")


async def test_service_centre_scoped_to_the_admins_region(postgres_url: str) -> None:
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    sessions = session_factory(engine)
    clock = VirtualClock(START)
    tokens = {}
    with sessions.begin() as s:
        for name, role, region in (
            ("huancui", "county", "371002"),
            ("wendeng", "county", "371003"),
            ("ministry", "ministry", ""),
        ):
            add_admin(
                s, username=name, role=role, region=region, password="Passw0rd-for-tests", now=START
            )
            tokens[name] = issue_token(s, name, START)
        for kind in ITEMS:
            add_department(
                s,
                kind=kind,
                url="https://dept.example/in",
                region_prefix="3710",
                now=START,
                overdue_days=3,
            )
    app = create_admin_app(sessions, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as client:

        def as_(name: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[name]}"}

        assert (
            await client.post("/one-application/new", headers=as_("ministry"))
        ).status_code == 403
        made = await client.post("/one-application/new", headers=as_("huancui"))
        assert made.status_code == 303
        page = made.headers["location"].split("?")[0]
        # a draft with no township yet is the clerk's own
        assert (await client.get(page, headers=as_("wendeng"))).status_code == 404
        pairs = [("items", i) for i in ITEMS]
        outside = await client.post(
            f"{page}/form",
            content=urlencode(
                [*pairs, *{**APPLICANT, "township": "371003001000"}.items(), ("action", "save")]
            ),
            headers={**as_("huancui"), **FORM},
        )
        assert outside.status_code == 400 and "不在您的管辖范围内" in outside.text
        saved = await client.post(
            f"{page}/form",
            content=urlencode([*pairs, *APPLICANT.items(), ("action", "save")]),
            headers={**as_("huancui"), **FORM},
        )
        assert saved.status_code == 200 and "草稿已保存" in saved.text
        for key in materials_for(ITEMS, APPLICANT["service_type"]):
            up = await client.post(
                f"{page}/material",
                data={"key": key},
                files={"file": ("a.pdf", PDF, "application/pdf")},
                headers=as_("huancui"),
            )
            assert up.status_code == 200
        bad = await client.post(
            f"{page}/material",
            data={"key": "photo"},
            files={"file": ("a.gif", b"GIF89a", "image/gif")},
            headers=as_("huancui"),
        )
        assert bad.status_code == 400 and "只收 PDF、JPG 或 PNG" in bad.text
        done = await client.post(
            f"{page}/form",
            content=urlencode([*pairs, *APPLICANT.items(), ("action", "submit")]),
            headers={**as_("huancui"), **FORM},
        )
        assert done.status_code == 303
        status = await client.get(page, headers=as_("huancui"))
        assert status.text.count('data-state="queued"') == 2
        assert (await client.get(page, headers=as_("wendeng"))).status_code == 404
        assert (await client.get(page + "?lang=en", headers=as_("ministry"))).status_code == 200
        listing = await client.get("/one-application", headers=as_("wendeng"))
        assert APPLICANT["name"] not in listing.text
        clock.advance_now(4 * 86400)  # past the departments' three days
        board = await client.get("/one-application/departments", headers=as_("huancui"))
        assert 'data-testid="overdue-idcard">1<' in board.text
        first = await client.get("/one-application/departments/1", headers=as_("huancui"))
        assert "超期" in first.text and 'class="overdue"' in first.text
        assert (
            await client.get("/one-application/departments/999", headers=as_("huancui"))
        ).status_code == 404
    engine.dispose()
