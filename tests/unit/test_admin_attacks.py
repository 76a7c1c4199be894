"""Attacks on the admin app, replayed over HTTP against the real app (httpx's ASGI transport):
password guessing, a flood of logins, cross-site posts, probing for pages, and record ids built
to break a header. Each is refused with a reason and changes nothing else.

The freeze of the whole controller by a flood of logins is replayed against a real controller
process in tests/integration/test_admin_attacks.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.accounts.admins import add_admin
from controller.admin import create_admin_app
from controller.admin.attachments import content_disposition
from controller.admin.csrf import csrf_token_for
from controller.admin.login_guard import LOCKOUT, USER_FAILURES, PasswordWorkers
from controller.db import make_engine, migrate, session_factory
from controller.db.models import AdminSession, EnrollmentCode, LoginLockout
from muster.clock import VirtualClock
from muster.passwords import hash_password
from tests.unit.admin_world import NEIGHBOUR, NOW, PASSWORD, TOWNSHIP, World, bearer, build_world

BASE = "http://admin.test"
SITE = {"Origin": BASE}
# An admin whose hash is cheap (scrypt 2**14, the clerks' cost), so a test can guess wrong
# many times; verify_password reads the cost from the hash, so the rules under test are the
# same as for the dearer admin hashes.
FAST, FAST_PASSWORD = "fast.admin", "Fast-passw0rd"


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('attacks') / 'controller.db'}"
    migrate(url)
    engine = make_engine(url)
    factory = session_factory(engine)
    with factory.begin() as session:
        add_admin(
            session,
            username=FAST,
            role="county",
            region=NEIGHBOUR,
            password=FAST_PASSWORD,
            now=NOW,
            password_hash=hash_password(FAST_PASSWORD),
        )
    yield factory
    engine.dispose()


@pytest.fixture(scope="module")
def world(sessions: sessionmaker[Session]) -> World:
    return build_world(sessions)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(NOW)


@pytest.fixture
def app(sessions: sessionmaker[Session], world: World, clock: VirtualClock) -> Iterator[FastAPI]:
    app = create_admin_app(sessions, clock=clock, upload_keys=lambda: {})
    yield app
    app.state.password_workers.close()
    # Lockouts are kept in the database (they outlive an app); each test starts from none.
    with sessions.begin() as session:
        session.execute(delete(LoginLockout))


def _client(app: FastAPI, address: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=BASE)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app) as c:
        yield c


async def _login(
    client: httpx.AsyncClient, username: str, password: str, **headers: str
) -> httpx.Response:
    return await client.post(
        "/login", data={"username": username, "password": password}, headers=headers
    )


def _count(sessions: sessionmaker[Session], model: type[AdminSession | EnrollmentCode]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


# --- password guessing -----------------------------------------------------------------------


async def test_wrong_passwords_lock_the_account_until_the_clock_says_so(
    client: httpx.AsyncClient, sessions: sessionmaker[Session], clock: VirtualClock
) -> None:
    """Attack: guess passwords for one name. After USER_FAILURES wrong ones the account is
    locked: the right password is refused too (429, saying until when, no session made) and
    stays refused until LOCKOUT has passed on the clock; then it works as before."""
    for attempt in range(USER_FAILURES):
        wrong = await _login(client, FAST, f"guess-{attempt}-x")
        assert wrong.status_code == 401, wrong.text
    assert "已被锁定" in wrong.text  # the last wrong guess says it locked the account
    before = _count(sessions, AdminSession)

    refused = await _login(client, FAST, FAST_PASSWORD)
    assert refused.status_code == 429
    assert "该账号密码错误次数过多" in refused.text and "之后再试" in refused.text
    assert "2026-11-23 17:15" in refused.text  # NOW + 15 min, in Beijing time
    assert int(refused.headers["retry-after"]) == LOCKOUT.total_seconds()
    assert "set-cookie" not in refused.headers
    clock.advance_now(LOCKOUT.total_seconds() - 1)
    assert (await _login(client, FAST, FAST_PASSWORD)).status_code == 429
    assert _count(sessions, AdminSession) == before

    clock.advance_now(1)
    ok = await _login(client, FAST, FAST_PASSWORD)
    assert ok.status_code == 303 and "muster_session" in ok.headers["set-cookie"]


async def test_each_lockout_that_follows_lasts_twice_as_long(
    client: httpx.AsyncClient, clock: VirtualClock
) -> None:
    """Attack: wait out the lockout and guess again. The second lockout lasts twice the first
    (30 minutes), the right password is refused through all of it, and works after."""
    for round_ in range(2):
        for attempt in range(USER_FAILURES):
            assert (await _login(client, FAST, f"r{round_}-{attempt}-x")).status_code == 401
        if round_ == 0:
            clock.advance_now(LOCKOUT.total_seconds())
    clock.advance_now(LOCKOUT.total_seconds())
    still = await _login(client, FAST, FAST_PASSWORD)
    assert still.status_code == 429 and "约 15 分钟" in still.text  # 15 of the 30 left
    clock.advance_now(LOCKOUT.total_seconds())
    assert (await _login(client, FAST, FAST_PASSWORD)).status_code == 303


async def test_unknown_names_are_answered_and_locked_like_real_ones(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """Attack: tell which names exist from the answers. An unknown name gets the very words a
    wrong password gets, costs a password check on the worker pool (against a dummy hash, as
    dear as an admin's), and is locked after as many tries."""
    workers: PasswordWorkers = app.state.password_workers
    answers = []
    for username in (FAST, "no.such.admin"):
        jobs = workers.jobs
        for attempt in range(USER_FAILURES):
            answer = await _login(client, username, f"guess-{attempt}-x")
            assert answer.status_code == 401
        assert workers.jobs == jobs + USER_FAILURES  # every one was hashed, off the loop
        locked = await _login(client, username, FAST_PASSWORD)
        assert locked.status_code == 429
        answers.append((answer.text.replace(username, "NAME"), locked.text))
    assert answers[0] == answers[1]


async def test_many_names_from_one_address_lock_the_address(
    app: FastAPI, sessions: sessionmaker[Session], clock: VirtualClock
) -> None:
    """Attack: one machine tries a password on name after name (none locked on its own).
    Once the address has failed ADDRESS_FAILURES times in the window it is locked, even for a
    right password; another address is not, and the lock ends with the clock."""
    app.state.login_throttle.address_failures = 3  # the default is 20; the rule is the same
    async with _client(app, "10.9.8.7") as attacker, _client(app, "10.1.1.1") as colleague:
        for n in range(3):
            assert (await _login(attacker, f"name{n}.x", "guess-1-x")).status_code == 401
        refused = await _login(attacker, FAST, FAST_PASSWORD)
        assert refused.status_code == 429 and "本机地址" in refused.text
        assert (await _login(colleague, FAST, FAST_PASSWORD)).status_code == 303
        clock.advance_now(LOCKOUT.total_seconds())
        assert (await _login(attacker, FAST, FAST_PASSWORD)).status_code == 303


async def test_a_saturated_password_pool_answers_busy_at_once(
    sessions: sessionmaker[Session], world: World, clock: VirtualClock
) -> None:
    """Attack: more logins at once than there are password workers. With every slot taken a
    login is answered 503 "登录繁忙" at once, neither queued nor counted as a failure; once
    the slot is free the same login works."""
    workers = PasswordWorkers(workers=1, waiting=0)
    app = create_admin_app(sessions, clock=clock, password_workers=workers)
    release = threading.Event()
    try:
        held = workers.run(lambda: release.wait(10))
        async with _client(app) as client:
            holding = asyncio.ensure_future(held)
            await asyncio.sleep(0.01)
            busy = await _login(client, FAST, FAST_PASSWORD)
            assert busy.status_code == 503 and "登录繁忙，请稍后再试" in busy.text
            assert busy.headers["retry-after"] == "1"
            release.set()
            assert await holding is True
            assert (await _login(client, FAST, FAST_PASSWORD)).status_code == 303
    finally:
        release.set()
        workers.close()


# --- cross-site requests ----------------------------------------------------------------------


async def _signed_in(client: httpx.AsyncClient) -> str:
    ok = await _login(client, "county", PASSWORD, **SITE)
    assert ok.status_code == 303, ok.text
    return client.cookies["muster_session"]


def _code_form(token: str | None) -> dict[str, str]:
    form = {"township": TOWNSHIP["370902"], "profile": "simulator", "valid_hours": "24"}
    return form if token is None else {**form, "csrf_token": token}


async def test_a_cross_site_post_is_refused_and_creates_nothing(
    client: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    """Attack: another site's page posts the enrolment-code form with the admin's cookie. A
    foreign Origin (or Referer), no origin at all, and ``Origin: null`` are each refused 403
    with the reason, even with the right token, and no code is created."""
    cookie = await _signed_in(client)
    before = _count(sessions, EnrollmentCode)
    for headers in (
        {"Origin": "https://evil.example"},
        {"Referer": "http://admin.test.evil.example/form"},
        {"Origin": "null"},
        {},
    ):
        answer = await client.post(
            "/codes", data=_code_form(csrf_token_for(cookie)), headers=headers
        )
        assert answer.status_code == 403, (headers, answer.text)
        assert "跨站请求" in answer.text
    assert _count(sessions, EnrollmentCode) == before


async def test_a_post_without_the_sessions_token_is_refused_and_creates_nothing(
    client: httpx.AsyncClient, sessions: sessionmaker[Session], app: FastAPI
) -> None:
    """Attack: a same-site post that lacks the form's CSRF token, or carries another
    session's. Refused 403 saying the token is missing or not this login's; no code created.
    The page's own form, token included, still creates one."""
    cookie = await _signed_in(client)
    before = _count(sessions, EnrollmentCode)
    missing = await client.post("/codes", data=_code_form(None), headers=SITE)
    assert missing.status_code == 403 and "缺少安全令牌" in missing.text
    foreign = await client.post("/codes", data=_code_form(csrf_token_for("x" * 43)), headers=SITE)
    assert foreign.status_code == 403 and "不属于当前登录" in foreign.text
    assert _count(sessions, EnrollmentCode) == before

    page = await client.get("/codes")
    assert f'name="csrf_token" value="{csrf_token_for(cookie)}"' in page.text
    made = await client.post("/codes", data=_code_form(csrf_token_for(cookie)), headers=SITE)
    assert made.status_code == 200, made.text
    assert _count(sessions, EnrollmentCode) == before + 1


async def test_bearer_calls_need_no_csrf_token(
    client: httpx.AsyncClient, world: World, sessions: sessionmaker[Session]
) -> None:
    """A script's API call with ``Authorization: Bearer`` carries no cookie a browser adds by
    itself: it needs neither Origin nor token, and still works."""
    before = _count(sessions, EnrollmentCode)
    made = await client.post(
        "/api/v1/enrollment-codes",
        json={"township": TOWNSHIP["370902"], "profile": "simulator", "valid_hours": 24},
        headers=bearer(world.tokens["county"]),
    )
    assert made.status_code == 201, made.text
    assert _count(sessions, EnrollmentCode) == before + 1


async def test_another_site_cannot_sign_a_browser_in(
    client: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    """Attack: login CSRF, a foreign page posting the login form with the attacker's own
    account. Refused 403 before the password is looked at; no session is made."""
    before = _count(sessions, AdminSession)
    answer = await _login(client, FAST, FAST_PASSWORD, Origin="https://evil.example")
    assert answer.status_code == 403 and "跨站请求" in answer.text
    assert "set-cookie" not in answer.headers
    assert _count(sessions, AdminSession) == before


# --- probing ----------------------------------------------------------------------------------


async def test_unknown_pages_answer_404_and_name_no_file(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    """Attack: probe for pages. A signed-in admin gets 404 for a page or API path the app does
    not have; an anonymous request is sent to the login page. No answer names a source file
    or the rule table."""
    await _signed_in(client)
    page = await client.get("/admin/../../etc/passwd-ish")
    api = await client.get("/api/v1/secrets", headers=bearer(world.tokens["county"]))
    method = await client.delete("/codes", headers=SITE | {"x-csrf-token": "x"})
    assert page.status_code == 404 and "没有这个页面" in page.text
    assert api.status_code == 404 and api.json()["detail"].startswith("没有这个页面")
    assert method.status_code in (403, 404)
    async with _client(app) as anonymous:
        probe = await anonymous.get("/server-status")
    assert probe.status_code == 303 and probe.headers["location"].startswith("/login")
    for answer in (page, api, method, probe):
        assert ".py" not in answer.text and "controller/" not in answer.text


@pytest.mark.parametrize(
    "record_id",
    [
        'a"; filename="evil.exe',
        "00000000-0000%0d%0aSet-Cookie:%20x=1",
        "00000000-0000-0000-0000-00000000000%00",
        "00000000-0000-0000-0000-00000000000A",
    ],
)
async def test_hostile_record_ids_never_reach_a_header(
    client: httpx.AsyncClient, world: World, record_id: str
) -> None:
    """Attack: a record id with a quote, CR/LF or NUL (or just not canonical) in the
    attachment URL. Answered 404 before any lookup, with no Content-Disposition and no header
    of the attacker's making."""
    answer = await client.get(
        f"/api/v1/records/{record_id}/attachments/photo.jpg",
        headers=bearer(world.tokens["ministry"]),
    )
    assert answer.status_code == 404, answer.text
    assert "content-disposition" not in answer.headers
    assert "set-cookie" not in answer.headers


def test_content_disposition_quotes_whatever_it_is_given() -> None:
    """The header builder (RFC 6266) keeps quotes, semicolons, CR, LF and NUL of a name out
    of the header, and gives the exact name in ``filename*``."""
    header = content_disposition("inline", 'a"b;\r\nc\x00d-照片.jpg')
    assert header == (
        "inline; filename=\"a_b___c_d-__.jpg\"; filename*=UTF-8''"
        "a%22b%3B%0D%0Ac%00d-%E7%85%A7%E7%89%87.jpg"
    )
    assert not set("\r\n\x00") & set(header)
