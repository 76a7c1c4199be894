"""Admin scopes: every route of the admin app, tried by a county admin against the neighbouring
county (by the UI, the API, the exports and the commands), is refused, logged, and leaks
nothing; every role may do exactly what its line in the role table says; nobody gets in
without a session or a token. The app runs in-process over a migrated SQLite database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.accounts.admins import (
    ABSOLUTE_TIMEOUT,
    IDLE_TIMEOUT,
    PERMISSIONS,
    LoginRequired,
    login,
    resolve_session,
)
from controller.admin import create_admin_app
from controller.admin.access import ROUTE_ACTIONS, match_rule, routes_of
from controller.admin.csrf import csrf_token_for
from controller.db import make_engine, migrate, session_factory
from controller.db.models import AccessDenial, Alert, Command, EnrollmentCode, Record
from muster.clock import VirtualClock
from tests.unit.admin_world import (
    ADMINS,
    HOME,
    NEIGHBOUR,
    NOW,
    PASSWORD,
    World,
    bearer,
    build_world,
)

# Every route, with how to aim it at the neighbouring county: (method, path, json body).
# {device_id}, {command_id}, {record_id}, {township} and {region} are filled from the world.
NEIGHBOUR_ATTEMPTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/?region={region}", None),
    ("GET", "/devices?region={region}", None),
    ("GET", "/devices.xlsx?region={region}", None),
    ("GET", "/devices.csv?region={region}", None),
    ("GET", "/devices/{device_id}", None),
    ("POST", "/devices/{device_id}/commands", None),
    ("GET", "/alerts?region={region}", None),
    ("POST", "/alerts/{alert_id}/ack", None),
    ("POST", "/alerts/{alert_id}/assign", None),
    ("POST", "/api/v1/alerts/{alert_id}/ack", {"note": "x"}),
    ("POST", "/api/v1/alerts/{alert_id}/assign", {"assignee": "neighbour"}),
    ("GET", "/flow?region={region}", None),
    ("GET", "/api/v1/devices?township={region}", None),
    ("GET", "/api/v1/regions?prefix={region}", None),
    ("GET", "/api/v1/alerts?region={region}", None),
    ("GET", "/api/v1/devices/{device_id}/commands", None),
    ("POST", "/api/v1/devices/{device_id}/commands", {"kind": "restart"}),
    ("GET", "/api/v1/commands/{command_id}", None),
    ("GET", "/releases?region={region}", None),
    ("GET", "/comparisons?region={region}", None),
    ("GET", "/api/v1/comparisons?region={region}", None),
    ("GET", "/tasks?region={region}", None),
    ("GET", "/api/v1/tasks?region={region}", None),
    ("POST", "/tasks", None),
    ("GET", "/api/v1/releases?region={region}", None),
    ("GET", "/api/v1/devices/{device_id}/updates", None),
    ("POST", "/api/v1/devices/{device_id}/update-retry?rollout_id=1", None),
    ("POST", "/devices/{device_id}/update-retry", None),
    ("POST", "/codes", None),
    ("POST", "/api/v1/enrollment-codes", {"township": "{township}", "profile": "simulator"}),
    ("POST", "/api/v1/devices/{device_id}/revoke", {"reason": "lost"}),
    ("GET", "/progress?region={region}", None),
    ("GET", "/progress.xlsx?region={region}", None),
    ("GET", "/api/v1/progress?region={region}", None),
    ("GET", "/approved.xlsx?region={region}", None),
    ("GET", "/reports/weekly?region={region}", None),
    ("GET", "/reports/weekly.xlsx?region={region}", None),
    ("GET", "/api/v1/reports/weekly?region={region}", None),
    ("POST", "/deadlines", None),
    ("PUT", "/api/v1/deadlines/collection", {"region": "{region}", "due": "2026-12-01"}),
    ("GET", "/townships/{township}", None),
    ("GET", "/api/v1/townships/{township}/missing", None),
    ("POST", "/townships/{township}/declare", None),
    ("POST", "/api/v1/townships/{township}/declare", {"note": "x"}),
    ("GET", "/review?region={region}", None),
    ("GET", "/api/v1/review?region={region}", None),
    ("GET", "/review/{record_id}", None),
    ("GET", "/api/v1/records/{record_id}", None),
    ("GET", "/api/v1/records/{record_id}/attachments/photo.jpg", None),
    ("POST", "/review/{record_id}", None),
    ("POST", "/api/v1/records/{record_id}/approve", None),
    ("POST", "/api/v1/records/{record_id}/return", {"reason": "x"}),
    ("POST", "/forward", None),
    ("POST", "/api/v1/forward", {"region": "{region}"}),
    ("GET", "/audit?region={region}", None),
    ("GET", "/api/v1/accounts?region={region}", None),
    ("POST", "/accounts/admins", None),
    ("POST", "/accounts/admins/disable", None),
    ("POST", "/accounts/clerks", None),
    ("POST", "/accounts/clerks/disable", None),
    (
        "POST",
        "/api/v1/admins",
        {"username": "li.new", "role": "township", "region": "{region}001", "password": "abc12345"},
    ),
    ("POST", "/api/v1/admins/neighbour/disable", None),
    (
        "POST",
        "/api/v1/clerks",
        {
            "township": "{township}",
            "username": "li.new",
            "display_name": "李",
            "password": "abc12345",
        },
    ),
    ("POST", "/api/v1/clerks/{township}/li.new/disable", None),
    ("GET", "/api/v1/audit?region={region}", None),
    ("GET", "/confirmation?year=2026&county={region}", None),
    ("GET", "/confirmation/notice?year=2026&county={region}", None),
    ("GET", "/confirmation/stops?year=2026&county={region}", None),
    ("GET", "/confirmation/overpayments?year=2026&county={region}", None),
    ("GET", "/confirmation/hardship?year=2026&county={region}", None),
    ("GET", "/confirmation/self-service?year=2026&county={region}", None),
    ("GET", "/confirmation/self-service/selfie?year=2026&county={region}&attempt=1", None),
    ("GET", "/confirmation/self-service/reference?year=2026&county={region}&attempt=1", None),
    ("POST", "/confirmation/self-service", None),
    ("POST", "/confirmation/deaths", None),
    ("GET", "/confirmation/weekly.xlsx?year=2026&county={region}", None),
]
# The alert of each county's device, made by the ``world`` fixture.
ALERTS: dict[str, int] = {}
# Routes that name no region and hold nothing of one: the admin's own identity, logging in and
# out, the API description, process counters; and the denial log, for national admins only.
REGIONLESS = {
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/logout"),
    ("GET", "/me"),
    ("GET", "/api/v1/me"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
    ("GET", "/redoc"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/docs/assets/{name}"),
    ("GET", "/api/v1/telemetry"),
    ("GET", "/api/v1/summary"),
    ("GET", "/codes"),
    ("GET", "/api/v1/enrollment-codes"),
    ("GET", "/deadlines"),
    # the accounts page lists the admin's own area only (its API twin takes a region)
    ("GET", "/accounts"),
    ("GET", "/api/v1/deadlines"),
    ("GET", "/api/v1/denials"),
    # the public self-service confirmation: no admin, and it names nothing of a region
    ("GET", "/self-service/confirm"),
    ("POST", "/self-service/confirm"),
    # S-30: an application is named by its id, not a region; the handlers check the admin
    # covers its township (tests/integration/test_application_centre.py tries the neighbour)
    ("GET", "/one-application"),
    ("POST", "/one-application/new"),
    ("GET", "/one-application/departments"),
    ("GET", "/one-application/departments/{department_id}"),
    ("GET", "/one-application/{application_id}"),
    ("POST", "/one-application/{application_id}/form"),
    ("POST", "/one-application/{application_id}/material"),
}


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    """One database for the module: refused requests change nothing, and the role tests only
    ever add to it, so the cases do not disturb each other."""
    url = f"sqlite:///{tmp_path_factory.mktemp('scopes') / 'controller.db'}"
    migrate(url)
    engine = make_engine(url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def world(sessions: sessionmaker[Session]) -> World:
    built = build_world(sessions)
    with sessions.begin() as session:
        for county, c in built.counties.items():
            alert = Alert(device_id=c.device_id, kind="offline", message="x", raised_at=NOW)
            session.add(alert)
            session.flush()
            ALERTS[county] = alert.id
    return built


@pytest.fixture
async def client(sessions: sessionmaker[Session], world: World) -> AsyncIterator[httpx.AsyncClient]:
    app = create_admin_app(sessions, clock=VirtualClock(NOW), upload_keys=lambda: {})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as c:
        yield c


def _fill(text: str, world: World, county: str) -> str:
    c = world.counties[county]
    return text.format(
        region=county,
        device_id=c.device_id,
        command_id=c.command_id,
        record_id=c.record_ids[0],
        township=c.township,
        alert_id=ALERTS.get(county, 0),
    )


def _denials(sessions: sessionmaker[Session]) -> int:
    # Refusals repeated within a minute share a row and count up (controller/accounts/admins.py).
    with sessions() as session:
        return session.scalar(select(func.sum(AccessDenial.count))) or 0


async def _send(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    form: str = "",
) -> Any:
    if body is not None:
        return await client.request(method, path, json=body, headers=headers)
    if method == "POST":
        return await client.request(
            method,
            path,
            content=form.encode(),
            headers={**headers, "content-type": "application/x-www-form-urlencoded"},
        )
    return await client.request(method, path, headers=headers)


def _form_for(path: str, world: World) -> str:
    """The form a page would post, aimed at the neighbour."""
    c = world.counties[NEIGHBOUR]
    if path == "/codes":
        return f"township={c.township}&profile=simulator&valid_hours=24"
    if path == "/deadlines":
        return f"phase=collection&region={NEIGHBOUR}&due=2026-12-01"
    if path.startswith("/review/"):
        return "action=approve"
    if path == "/forward":
        return f"region={NEIGHBOUR}"
    if path == "/tasks":
        return f"run_id=1&township={c.township}"
    if path == "/accounts/admins":
        return f"username=li.new&role=township&region={NEIGHBOUR}001&password=abc12345"
    if path == "/accounts/admins/disable":
        return "username=neighbour"
    if path == "/accounts/clerks":
        return f"township={c.township}&username=li.new&display_name=x&password=abc12345"
    if path == "/accounts/clerks/disable":
        return f"township={c.township}&username=li.new"
    if path == "/confirmation/self-service":
        return f"year=2026&county={NEIGHBOUR}&attempt=1&verdict=accept&reason=x"
    if path == "/confirmation/deaths":
        return f"year=2026&county={NEIGHBOUR}&id_number=x&death_date=2026-11-01"
    return "note=x"


def test_every_route_has_an_access_rule_and_a_scope_test(
    sessions: sessionmaker[Session],
) -> None:
    """A route added later without a line in the access table, or without a case here, fails
    this test (the table itself refuses unknown routes to everybody)."""
    app = create_admin_app(sessions, clock=VirtualClock(NOW), upload_keys=lambda: {})
    served = set(routes_of(app))
    ruled = {(m, p) for m, p, _ in ROUTE_ACTIONS}
    assert served - ruled - {("GET", "/login"), ("POST", "/login")} == set()
    tried = {
        (
            m,
            match_rule(
                m,
                p.split("?")[0].format(
                    region="1",
                    device_id="d",
                    command_id="c",
                    record_id="r",
                    township="370902001000",
                    alert_id="1",
                ),
            )[0],
        )
        for m, p, _ in NEIGHBOUR_ATTEMPTS
    }  # type: ignore[index]
    assert served - tried - REGIONLESS == set()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    NEIGHBOUR_ATTEMPTS,
    ids=[f"{m} {p}" for m, p, _ in NEIGHBOUR_ATTEMPTS],
)
async def test_county_admin_cannot_reach_the_neighbouring_county(
    client: httpx.AsyncClient,
    world: World,
    sessions: sessionmaker[Session],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    """The 泰山区 admin aims the route at 岱岳区: refused with 403, the refusal stored, nothing
    of the neighbour in the answer, and nothing changed there."""
    before = _denials(sessions)
    filled = _fill(path, world, NEIGHBOUR)
    filled_body = (
        {k: _fill(v, world, NEIGHBOUR) for k, v in body.items()} if body is not None else None
    )
    with sessions() as session:
        commands = session.scalar(select(func.count()).select_from(Command)) or 0
        statuses = dict(session.execute(select(Record.record_id, Record.review_status)).all())
    response = await _send(
        client, method, filled, filled_body, bearer(world.tokens["county"]), _form_for(path, world)
    )
    assert response.status_code == 403, response.text
    neighbour = world.counties[NEIGHBOUR]
    for secret in (neighbour.device_id, neighbour.record_ids[0], *neighbour.people):
        assert secret not in response.text or secret in filled
    assert _denials(sessions) == before + 1
    with sessions() as session:
        assert (session.scalar(select(func.count()).select_from(Command)) or 0) == commands
        assert (
            dict(session.execute(select(Record.record_id, Record.review_status)).all()) == statuses
        )
        assert (
            session.scalar(
                select(func.count())
                .select_from(EnrollmentCode)
                .where(EnrollmentCode.township_code.startswith(NEIGHBOUR))
            )
            == 1
        )


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/devices",
        "/api/v1/review?status=",
        "/api/v1/audit",
        "/api/v1/progress",
        "/api/v1/enrollment-codes",
        "/api/v1/summary",
        "/api/v1/accounts",
    ],
)
async def test_unfiltered_lists_hold_only_the_admins_own_area(
    client: httpx.AsyncClient, world: World, path: str
) -> None:
    """Without a region filter a county admin gets their own county, never the neighbour's."""
    response = await client.get(path, headers=bearer(world.tokens["county"]))
    assert response.status_code == 200, response.text
    text = response.text
    assert world.counties[NEIGHBOUR].device_id not in text
    assert world.counties[NEIGHBOUR].township not in text
    assert world.counties[NEIGHBOUR].record_ids[0] not in text
    if path == "/api/v1/summary":
        assert response.json()["devices"] == 1


# (route, own-area target, the action it needs): tried by every role over HOME.
ROLE_ATTEMPTS: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("GET", "/api/v1/progress?region={region}", None, "read"),
    ("GET", "/progress.xlsx?region={region}", None, "export"),
    ("POST", "/api/v1/devices/{device_id}/commands", {"kind": "restart"}, "command"),
    ("POST", "/api/v1/townships/{township}/declare", {"note": "两人已迁出"}, "declare"),
    ("POST", "/api/v1/records/{record_id}/approve", None, "review"),
    ("POST", "/api/v1/forward", {"region": HOME}, "forward"),
    ("PUT", "/api/v1/deadlines/review", {"region": HOME, "due": "2026-12-20"}, "deadline"),
    (
        "POST",
        "/api/v1/clerks",
        {
            "township": "370902001000",
            "username": "role.clerk",
            "display_name": "张三",
            "password": "abc12345",
        },
        "accounts",
    ),
]


@pytest.mark.parametrize("who", sorted(set(ADMINS) - {"neighbour"}))
@pytest.mark.parametrize(
    ("method", "path", "body", "action"),
    ROLE_ATTEMPTS,
    ids=[a for *_, a in ROLE_ATTEMPTS],
)
async def test_each_role_may_do_what_the_role_table_says(
    client: httpx.AsyncClient,
    world: World,
    sessions: sessionmaker[Session],
    who: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    action: str,
) -> None:
    """In their own area, each role is allowed exactly the actions of its line in PERMISSIONS;
    a refusal is a logged 403, never a change."""
    role = ADMINS[who][0]
    before = _denials(sessions)
    response = await _send(
        client, method, _fill(path, world, HOME), body, bearer(world.tokens[who])
    )
    if action in PERMISSIONS[role]:
        # Allowed: the request is taken (a business refusal such as "forward" from a county
        # level with nothing below it is a 409, not a 403).
        assert response.status_code in (200, 201, 409), (who, response.text)
    else:
        assert response.status_code == 403, (who, response.text)
        assert _denials(sessions) == before + 1


async def test_no_session_no_entry(
    client: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    """Without credentials the API answers 401, a page sends the browser to the login page, a
    made-up token is refused; each attempt is logged."""
    first = _denials(sessions)
    assert (await client.get("/api/v1/devices")).status_code == 401
    page = await client.get("/progress?region=37")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login?next=%2Fprogress")
    assert _denials(sessions) == first + 2
    before = _denials(sessions)
    assert (await client.get("/api/v1/devices", headers=bearer("mst_made-up"))).status_code == 401
    assert _denials(sessions) == before + 1


async def test_login_sets_a_strict_cookie_and_logout_ends_it(
    client: httpx.AsyncClient, world: World
) -> None:
    """A right password gets an HttpOnly SameSite=Strict session cookie that opens the pages;
    a wrong one is refused with the same words as an unknown name; after logout the cookie
    no longer works."""
    wrong = await client.post("/login", data={"username": "county", "password": "nope-123456"})
    unknown = await client.post("/login", data={"username": "nobody", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    ok = await client.post(
        "/login", data={"username": "county", "password": PASSWORD, "next": "/progress"}
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/progress"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = await client.get("/progress")
    assert page.status_code == 200 and "泰山区" in page.text and "岱岳区" not in page.text
    session_cookie = client.cookies["muster_session"]
    await client.post(
        "/logout",
        data={"csrf_token": csrf_token_for(session_cookie)},
        headers={"Origin": "http://admin.test"},
    )
    assert (await client.get("/progress")).status_code == 303


def test_sessions_expire_when_idle_and_absolutely(
    sessions: sessionmaker[Session], world: World
) -> None:
    """A session ends after IDLE_TIMEOUT without use, and after ABSOLUTE_TIMEOUT however busy."""
    with sessions.begin() as session:
        idle, _ = login(session, "county", PASSWORD, NOW)
        busy, _ = login(session, "county", PASSWORD, NOW)
    with sessions.begin() as session, pytest.raises(LoginRequired):
        resolve_session(session, idle, NOW + IDLE_TIMEOUT + timedelta(seconds=1))
    at = NOW
    while at < NOW + ABSOLUTE_TIMEOUT - IDLE_TIMEOUT:
        at += IDLE_TIMEOUT - timedelta(minutes=1)
        with sessions.begin() as session:
            assert resolve_session(session, busy, at).username == "county"
    with sessions.begin() as session, pytest.raises(LoginRequired):
        resolve_session(session, busy, NOW + ABSOLUTE_TIMEOUT)
