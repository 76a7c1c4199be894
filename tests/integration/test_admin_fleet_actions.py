"""What an admin does with the fleet from the admin app, over a real PostgreSQL database: the
device list of the current filter downloaded as XLSX or CSV (of their own area, hostile texts
kept as text), and alerts acknowledged with a note and assigned to an admin of the area."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session, sessionmaker

from controller.admin import create_admin_app
from controller.db import make_engine, migrate, session_factory
from controller.db.models import Device
from muster.clock import VirtualClock
from muster.spreadsheets import HOSTILE_TEXTS
from tests.unit.admin_world import NEIGHBOUR, NOW, World, bearer, build_world

HOSTILE = HOSTILE_TEXTS[0]


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
        for county in built.counties.values():
            device = session.get(Device, county.device_id)
            assert device is not None
            device.state, device.state_reason = "offline", HOSTILE
    return built


@pytest.fixture
async def client(sessions: sessionmaker[Session], world: World) -> AsyncIterator[httpx.AsyncClient]:
    app = create_admin_app(sessions, clock=VirtualClock(NOW), upload_keys=lambda: {})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as c:
        yield c


async def test_device_list_exports_hold_the_filter_of_the_own_area_with_formulas_as_text(
    client: httpx.AsyncClient, world: World
) -> None:
    county = bearer(world.tokens["county"])
    home_device = next(c.device_id for k, c in world.counties.items() if k != NEIGHBOUR)
    neighbour_device = world.counties[NEIGHBOUR].device_id

    page = await client.get("/devices?state=offline", headers=county)
    assert 'href="/devices.xlsx?lang=zh&amp;region=370902&amp;state=offline' in page.text

    xlsx = await client.get("/devices.xlsx?state=offline&lang=en", headers=county)
    assert xlsx.status_code == 200, xlsx.text
    assert "attachment" in xlsx.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None
    rows = list(sheet.iter_rows())
    assert [c.value for c in rows[0]][:4] == ["Device", "Township", "Profile", "State"]
    assert [r[0].value for r in rows[1:]] == [home_device]
    reason = rows[1][4]
    assert reason.value == HOSTILE and reason.data_type == "s" and reason.quotePrefix

    text = (await client.get("/devices.csv?state=offline", headers=county)).text
    assert text.startswith("\ufeff")
    body = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert body[0][0] == "设备编号"
    assert [r[0] for r in body[1:]] == [home_device]
    assert body[1][4] == "'" + HOSTILE
    assert neighbour_device not in text

    # Another filter holds nothing; the province admin's export holds both counties.
    online = await client.get("/devices.csv?state=online", headers=county)
    assert len(list(csv.reader(io.StringIO(online.text.lstrip("\ufeff"))))) == 1
    both = await client.get("/devices.csv", headers=bearer(world.tokens["province"]))
    assert home_device in both.text and neighbour_device in both.text


@pytest.mark.parametrize(
    "query",
    ["state=deleted", "region=37x", "q=" + "x" * 41, "lang=fr"],
)
async def test_device_export_refuses_a_bad_filter_by_name(
    client: httpx.AsyncClient, world: World, query: str
) -> None:
    response = await client.get(f"/devices.csv?{query}", headers=bearer(world.tokens["county"]))
    assert response.status_code == 422
    assert query.split("=")[0] in response.text


async def test_device_export_of_the_neighbour_county_is_refused(
    client: httpx.AsyncClient, world: World
) -> None:
    for suffix in ("xlsx", "csv"):
        response = await client.get(
            f"/devices.{suffix}?region={NEIGHBOUR}", headers=bearer(world.tokens["county"])
        )
        assert response.status_code == 403
        assert world.counties[NEIGHBOUR].device_id not in response.text
