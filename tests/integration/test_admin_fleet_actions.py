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
from controller.admin.access import SESSION_COOKIE
from controller.admin.csrf import csrf_token_for
from controller.db import make_engine, migrate, session_factory
from controller.db.models import Alert, Device
from muster.clock import VirtualClock
from muster.spreadsheets import HOSTILE_TEXTS
from tests.unit.admin_world import NEIGHBOUR, NOW, PASSWORD, World, bearer, build_world

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


def _alerts(sessions: sessionmaker[Session], world: World) -> dict[str, int]:
    ids = {}
    with sessions.begin() as session:
        for county, c in world.counties.items():
            alert = Alert(device_id=c.device_id, kind="offline", message="无心跳", raised_at=NOW)
            session.add(alert)
            session.flush()
            ids[county] = alert.id
    return ids


def _handling(sessions: sessionmaker[Session], alert_id: int) -> tuple[object, ...]:
    with sessions() as session:
        a = session.get(Alert, alert_id)
        assert a is not None
        return (a.acknowledged_by, a.ack_note, a.assigned_to, a.assigned_by, a.resolved_at)


async def test_an_alert_is_acknowledged_and_assigned_by_api_and_page(
    client: httpx.AsyncClient, world: World, sessions: sessionmaker[Session]
) -> None:
    ids = _alerts(sessions, world)
    home = next(k for k in world.counties if k != NEIGHBOUR)
    county = bearer(world.tokens["county"])

    acked = await client.post(
        f"/api/v1/alerts/{ids[home]}/ack", json={"note": HOSTILE}, headers=county
    )
    assert acked.status_code == 200, acked.text
    assert acked.json()["acknowledged_by"] == "county"
    assert acked.json()["acknowledged_at"] is not None
    assigned = await client.post(
        f"/api/v1/alerts/{ids[home]}/assign", json={"assignee": "technician"}, headers=county
    )
    assert assigned.status_code == 200, assigned.text
    assert _handling(sessions, ids[home]) == ("county", HOSTILE, "technician", "county", None)

    page = await client.get("/alerts?lang=en", headers=county)
    row = page.text.split(f'data-alert-id="{ids[home]}"')[1].split("</tr>")[0]
    assert "acknowledged by county" in row and "assigned to technician (by county" in row
    assert "&#34;" in row or "&quot;" in row  # the note is escaped, not markup
    assert f'action="/alerts/{ids[home]}/ack"' in row
    # The assignee list holds the admins of the area who see the device, not the neighbour.
    assert '<option value="township"' in row and '"neighbour"' not in row

    # The page's form, with the session cookie and its CSRF token.
    login = await client.post(
        "/login",
        data={"username": "county", "password": PASSWORD},
        headers={"origin": "http://admin.test"},
    )
    assert login.status_code == 303, login.text
    token = csrf_token_for(client.cookies[SESSION_COOKIE])
    form = {"csrf_token": token, "note": "已电话联系乡镇", "lang": "en"}
    done = await client.post(
        f"/alerts/{ids[home]}/ack", data=form, headers={"origin": "http://admin.test"}
    )
    assert done.status_code == 303 and done.headers["location"] == "/alerts?lang=en"
    assert _handling(sessions, ids[home])[1] == "已电话联系乡镇"
    forged = await client.post(
        f"/alerts/{ids[home]}/ack",
        data={**form, "note": "forged"},
        headers={"origin": "http://evil.test"},
    )
    assert forged.status_code == 403
    assert _handling(sessions, ids[home])[1] == "已电话联系乡镇"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("ack", {"note": "   "}, "note"),
        ("ack", {"note": "x" * 301}, "note"),
        ("ack", {}, "note"),
        ("assign", {"assignee": "neighbour"}, "assignee"),  # the next county's admin
        ("assign", {"assignee": "province"}, "assignee"),  # above the acting admin's area
        ("assign", {"assignee": "nobody"}, "assignee"),
        ("assign", {"assignee": "x" * 33}, "assignee"),
    ],
)
async def test_a_bad_alert_action_is_refused_by_field_and_changes_nothing(
    client: httpx.AsyncClient,
    world: World,
    sessions: sessionmaker[Session],
    path: str,
    body: dict[str, str],
    field: str,
) -> None:
    ids = _alerts(sessions, world)
    home = next(k for k in world.counties if k != NEIGHBOUR)
    before = _handling(sessions, ids[home])
    response = await client.post(
        f"/api/v1/alerts/{ids[home]}/{path}", json=body, headers=bearer(world.tokens["county"])
    )
    assert response.status_code == 422
    assert field in response.text
    assert _handling(sessions, ids[home]) == before


async def test_the_neighbour_county_alert_is_refused_and_unknown_alerts_are_404(
    client: httpx.AsyncClient, world: World, sessions: sessionmaker[Session]
) -> None:
    ids = _alerts(sessions, world)
    county = bearer(world.tokens["county"])
    before = _handling(sessions, ids[NEIGHBOUR])
    for path, body in (("ack", {"note": "x"}), ("assign", {"assignee": "county"})):
        response = await client.post(
            f"/api/v1/alerts/{ids[NEIGHBOUR]}/{path}", json=body, headers=county
        )
        assert response.status_code == 403
    assert _handling(sessions, ids[NEIGHBOUR]) == before
    missing = await client.post("/api/v1/alerts/999999/ack", json={"note": "x"}, headers=county)
    assert missing.status_code == 404
    bad = await client.post("/api/v1/alerts/abc/ack", json={"note": "x"}, headers=county)
    assert bad.status_code == 422
    auditor = await client.post(
        f"/api/v1/alerts/{ids[next(k for k in ids if k != NEIGHBOUR)]}/ack",
        json={"note": "x"},
        headers=bearer(world.tokens["auditor"]),
    )
    assert auditor.status_code == 403
