"""The accounts page and API over a real PostgreSQL database: a county admin lists the admins and
clerks of their county, adds and disables a clerk of a township there and an admin below them,
and every hostile input (a region or township outside the area, a bad username, a weak
password, a role at or above their own) is refused naming the field, changing nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.accounts.admins import login
from controller.admin import create_admin_app
from controller.admin.access import SESSION_COOKIE
from controller.admin.csrf import csrf_token_for
from controller.db import make_engine, migrate, session_factory
from controller.db.models import AdminUser, Clerk, Region
from muster.clock import VirtualClock
from muster.passwords import verify_password
from tests.unit.admin_world import HOME, NEIGHBOUR, NOW, TOWNSHIP, World, bearer, build_world

ORIGIN = {"origin": "http://admin.test"}


@pytest.fixture
def sessions(postgres_url: str) -> Iterator[sessionmaker[Session]]:
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    built = build_world(sessions)
    with sessions.begin() as session:
        for code, name, parent in (
            ("370902001", "泰前街道", HOME),
            ("370911001", "岱岳某镇", NEIGHBOUR),
        ):
            if session.get(Region, code) is None:
                session.add(Region(code=code, level="township", name=name, parent=parent))
            else:
                session.get(Region, code).name = name  # type: ignore[union-attr]
    return built


@pytest.fixture
async def client(sessions: sessionmaker[Session], world: World) -> AsyncIterator[httpx.AsyncClient]:
    app = create_admin_app(sessions, clock=VirtualClock(NOW), upload_keys=lambda: {})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as c:
        yield c


def _state(sessions: sessionmaker[Session]) -> tuple[Any, ...]:
    with sessions() as session:
        admins = session.execute(
            select(AdminUser.username, AdminUser.role, AdminUser.region_prefix,
                   AdminUser.password_hash, AdminUser.disabled_at).order_by(AdminUser.username)
        ).all()  # fmt: skip
        clerks = session.execute(
            select(Clerk.township_code, Clerk.username, Clerk.password_hash, Clerk.disabled_at)
        ).all()
    return tuple(admins), tuple(clerks)


async def test_a_county_admin_manages_the_clerks_and_admins_below_through_the_page(
    client: httpx.AsyncClient, world: World, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        cookie, _me = login(session, "county", "Passw0rd-for-tests", NOW)
    client.cookies.set(SESSION_COOKIE, cookie)
    token = csrf_token_for(cookie)

    page = await client.get("/accounts?lang=en")
    assert page.status_code == 200
    assert 'data-admin="county"' in page.text and 'data-admin="township"' in page.text
    assert 'data-admin="neighbour"' not in page.text and 'data-admin="province"' not in page.text
    # The region picker: the area's regions by name, the neighbour's not offered.
    assert '<option value="370902001">泰前街道 · 370902001</option>' in page.text
    assert "370911001" not in page.text

    form = {"csrf_token": token, "lang": "en", "township": "370902001",
            "username": "zhang.wei", "display_name": "张伟", "password": "abc12345"}  # fmt: skip
    added = await client.post("/accounts/clerks", data=form, headers=ORIGIN)
    assert added.status_code == 303, added.text
    with sessions() as session:
        clerk = session.get(Clerk, (TOWNSHIP[HOME], "zhang.wei"))
        assert clerk is not None and verify_password("abc12345", clerk.password_hash)

    admin = {"csrf_token": token, "lang": "en", "username": "li.town", "role": "township",
             "region": "370902001", "password": "abc12345"}  # fmt: skip
    assert (await client.post("/accounts/admins", data=admin, headers=ORIGIN)).status_code == 303
    listed = (await client.get("/accounts?lang=en")).text
    assert 'data-admin="li.town"' in listed and 'data-clerk="zhang.wei"' in listed

    off = {"csrf_token": token, "lang": "en", "township": TOWNSHIP[HOME], "username": "zhang.wei"}
    assert (
        await client.post("/accounts/clerks/disable", data=off, headers=ORIGIN)
    ).status_code == 303
    gone = {"csrf_token": token, "lang": "en", "username": "li.town"}
    assert (
        await client.post("/accounts/admins/disable", data=gone, headers=ORIGIN)
    ).status_code == 303
    with sessions() as session:
        assert session.get(Clerk, (TOWNSHIP[HOME], "zhang.wei")).disabled_at is not None  # type: ignore[union-attr]
        assert session.get(AdminUser, "li.town").disabled_at is not None  # type: ignore[union-attr]

    # A weak password on the page: the page again, naming the field, nothing stored.
    before = _state(sessions)
    weak = await client.post(
        "/accounts/clerks", data={**form, "username": "wang.wu", "password": "12345678"},
        headers=ORIGIN,
    )  # fmt: skip
    assert weak.status_code == 400 and "password" in weak.text
    assert _state(sessions) == before
    forged = await client.post(
        "/accounts/clerks",
        data={**form, "username": "wang.wu"},
        headers={"origin": "http://evil.test"},
    )
    assert forged.status_code == 403 and _state(sessions) == before


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/api/v1/clerks", {"township": TOWNSHIP[NEIGHBOUR]}, 403, "township"),
        ("/api/v1/clerks", {"township": "37090200100"}, 422, "township"),
        ("/api/v1/clerks", {"username": "Zhang Wei"}, 422, "username"),
        ("/api/v1/clerks", {"username": "<script>"}, 422, "username"),
        ("/api/v1/clerks", {"password": "abcdefgh"}, 422, "password"),
        ("/api/v1/clerks", {"password": "a1"}, 422, "password"),
        ("/api/v1/clerks", {"display_name": "  "}, 422, "display_name"),
        ("/api/v1/admins", {"region": NEIGHBOUR + "001"}, 403, "region"),
        ("/api/v1/admins", {"region": "", "role": "ministry"}, 403, "region"),
        ("/api/v1/admins", {"region": "37", "role": "province"}, 403, "region"),
        ("/api/v1/admins", {"region": HOME, "role": "county"}, 403, "role"),
        ("/api/v1/admins", {"region": "3709020", "role": "township"}, 422, "region"),
        ("/api/v1/admins", {"role": "root"}, 422, "role"),
        ("/api/v1/admins", {"username": "a"}, 422, "username"),
        ("/api/v1/admins", {"password": "password"}, 422, "password"),
        ("/api/v1/admins", {"username": "county"}, 403, "username"),  # oneself
        ("/api/v1/admins", {"username": "province"}, 403, "region"),  # a superior, overwritten
        ("/api/v1/admins/province/disable", None, 403, "region"),
        ("/api/v1/admins/neighbour/disable", None, 403, "region"),
        ("/api/v1/admins/county/disable", None, 403, "username"),
        ("/api/v1/admins/nobody/disable", None, 404, "username"),
    ],
)
async def test_hostile_account_input_is_refused_naming_the_field_and_changes_nothing(
    client: httpx.AsyncClient,
    world: World,
    sessions: sessionmaker[Session],
    path: str,
    body: dict[str, str] | None,
    status: int,
    field: str,
) -> None:
    base = (
        {"township": TOWNSHIP[HOME], "username": "zhao.liu", "display_name": "赵六",
         "password": "abc12345"}
        if path == "/api/v1/clerks"
        else {"username": "zhao.liu", "role": "township", "region": HOME + "001",
              "password": "abc12345"}
    )  # fmt: skip
    before = _state(sessions)
    response = await client.post(
        path,
        json={**base, **body} if body is not None else None,
        headers=bearer(world.tokens["county"]),
    )
    assert response.status_code == status, response.text
    assert field in response.text
    assert _state(sessions) == before


async def test_an_auditor_reads_the_accounts_but_cannot_change_them(
    client: httpx.AsyncClient, world: World, sessions: sessionmaker[Session]
) -> None:
    auditor = bearer(world.tokens["auditor"])
    listed = await client.get("/api/v1/accounts", headers=auditor)
    assert listed.status_code == 200
    assert {a["username"] for a in listed.json()["admins"]} >= {"county", "township"}
    assert "neighbour" not in {a["username"] for a in listed.json()["admins"]}
    page = await client.get("/accounts", headers=auditor)
    assert 'id="add-clerk"' not in page.text
    before = _state(sessions)
    refused = await client.post(
        "/api/v1/clerks",
        json={"township": TOWNSHIP[HOME], "username": "zhao.liu", "display_name": "赵六",
              "password": "abc12345"},
        headers=auditor,
    )  # fmt: skip
    assert refused.status_code == 403 and _state(sessions) == before


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("/devices", "370902001"),
        ("/review", "370902001"),
        ("/deadlines", "370902001"),
        ("/codes", "370902001000"),
        ("/accounts", "370902001"),
    ],
)
async def test_region_boxes_offer_the_area_regions_by_name_and_still_take_a_code(
    client: httpx.AsyncClient, world: World, path: str, value: str
) -> None:
    county = bearer(world.tokens["county"])
    page = await client.get(f"{path}?lang=en", headers=county)
    assert page.status_code == 200, page.text
    assert f'<option value="{value}">泰前街道 · 370902001</option>' in page.text
    assert 'list="area-' in page.text
    assert "岱岳某镇" not in page.text and "370911001" not in page.text
    if path in ("/devices", "/review"):
        typed = await client.get(f"{path}?region=370902001&lang=en", headers=county)
        assert typed.status_code == 200
