"""Attacks on signing in and out, replayed against the real admin app over a real database
(issue 15): lockouts that a restart forgot, a spoofed X-Forwarded-For, a huge login body, a
cross-site GET /logout, and a flood of refused requests filling the audit table."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi import FastAPI
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.admin import create_admin_app
from controller.admin.login import LOGIN_BODY_MAX
from controller.admin.login_guard import (
    FORGET_AFTER,
    LOCKOUT,
    USER_FAILURES,
)
from controller.db.models import AccessDenial, AdminSession, LoginLockout
from muster.client_address import client_address, parse_trusted_proxies
from muster.clock import VirtualClock
from muster.errors import ConfigError
from tests.unit.test_admin_attacks import (
    BASE,
    FAST,
    FAST_PASSWORD,
    SITE,
    _client,
    _count,
    _login,
    clock,
    sessions,
    world,
)

__all__ = ["clock", "sessions", "world"]  # the fixtures, shared with test_admin_attacks


@pytest.fixture
def apps(sessions: sessionmaker[Session], clock: VirtualClock) -> Iterator[list[FastAPI]]:
    made: list[FastAPI] = []
    yield made
    for app in made:
        app.state.password_workers.close()
    with sessions.begin() as session:
        session.execute(delete(LoginLockout))


def _app(
    apps: list[FastAPI], sessions: sessionmaker[Session], clock: VirtualClock, **kw: object
) -> FastAPI:
    app = create_admin_app(sessions, clock=clock, upload_keys=lambda: {}, **kw)  # type: ignore[arg-type]
    apps.append(app)
    return app


async def test_a_lockout_survives_a_restart(
    apps: list[FastAPI], sessions: sessionmaker[Session], world: object, clock: VirtualClock
) -> None:
    """Attack: guess until the name is locked, then wait for (or cause) a controller restart
    and guess on. Before: the counters lived in memory and the new process forgot them. Now
    the new app on the same database still refuses the right password."""
    async with _client(_app(apps, sessions, clock)) as first:
        for n in range(USER_FAILURES):
            assert (await _login(first, FAST, f"wrong-{n}")).status_code == 401
    sessions_before = _count(sessions, AdminSession)
    async with _client(_app(apps, sessions, clock), "10.2.2.2") as after_restart:
        refused = await _login(after_restart, FAST, FAST_PASSWORD)
    assert refused.status_code == 429 and "该账号" in refused.text
    assert _count(sessions, AdminSession) == sessions_before


async def test_a_spoofed_forwarded_for_does_not_reset_the_address_limit(
    apps: list[FastAPI], sessions: sessionmaker[Session], world: object, clock: VirtualClock
) -> None:
    """Attack: a machine connecting directly sends a new X-Forwarded-For with every guess so
    each looks like another address. It is not a trusted proxy, so its socket address is
    counted and locked; through a trusted proxy the forwarded address is what counts."""
    app = _app(apps, sessions, clock)
    app.state.login_throttle.address_failures = 3
    async with _client(app, "10.9.8.7") as attacker:
        for n in range(3):
            spoof = {"X-Forwarded-For": f"192.0.2.{n}"}
            assert (await _login(attacker, f"name{n}.y", "guess", **spoof)).status_code == 401
        refused = await _login(attacker, FAST, FAST_PASSWORD, **{"X-Forwarded-For": "192.0.2.99"})
    assert refused.status_code == 429 and "本机地址" in refused.text

    proxied = _app(apps, sessions, clock, trusted_proxies=["10.0.0.1"])
    proxied.state.login_throttle.address_failures = 3
    async with _client(proxied, "10.0.0.1") as proxy:
        for n in range(3):
            hops = {"X-Forwarded-For": f"198.51.100.{n}, 203.0.113.7"}
            assert (await _login(proxy, f"other{n}.y", "guess", **hops)).status_code == 401
        locked = await _login(proxy, FAST, FAST_PASSWORD, **{"X-Forwarded-For": "203.0.113.7"})
        assert locked.status_code == 429 and "本机地址" in locked.text
        other = await _login(proxy, FAST, FAST_PASSWORD, **{"X-Forwarded-For": "203.0.113.8"})
        assert other.status_code == 303


def test_the_client_address_rule() -> None:
    proxies = parse_trusted_proxies(["10.0.0.0/24"])
    assert client_address("192.0.2.1", ["1.2.3.4"], proxies) == "192.0.2.1"
    assert client_address("10.0.0.1", ["1.2.3.4, 5.6.7.8"], proxies) == "5.6.7.8"
    assert client_address("10.0.0.1", ["1.2.3.4, 10.0.0.9"], proxies) == "1.2.3.4"
    assert client_address("10.0.0.1", ["not-an-ip"], proxies) == "10.0.0.1"
    assert client_address("10.0.0.1", [], proxies) == "10.0.0.1"
    with pytest.raises(ConfigError, match="bogus"):
        parse_trusted_proxies(["bogus"])


async def test_a_huge_login_body_is_refused_before_it_is_read(
    apps: list[FastAPI], sessions: sessionmaker[Session], world: object, clock: VirtualClock
) -> None:
    """Attack: POST /login with a 50 MB body, streamed with no length and with a declared
    length. Refused 413 saying the bound; nothing reaches the password workers."""
    app = _app(apps, sessions, clock)
    sent = 0

    async def fifty_megabytes() -> AsyncIterator[bytes]:
        nonlocal sent
        chunk = b"username=" + b"a" * (1024 * 1024)
        for _ in range(50):
            sent += len(chunk)
            yield chunk

    async with _client(app) as client:
        streamed = await client.post("/login", content=fifty_megabytes(), headers=SITE)
        declared = await client.post(
            "/login",
            content=b"x" * (LOGIN_BODY_MAX + 1),
            headers={**SITE, "content-type": "application/x-www-form-urlencoded"},
        )
    assert streamed.status_code == 413 and "KiB" in streamed.text
    assert declared.status_code == 413
    assert app.state.password_workers.jobs == 0


async def test_a_cross_site_get_of_logout_signs_nobody_out(
    apps: list[FastAPI], sessions: sessionmaker[Session], world: object, clock: VirtualClock
) -> None:
    """Attack: another site's <img src=/logout> (a GET with the admin's cookie), and a
    cross-site POST /logout. Before: the GET signed the admin out. Now the GET shows a page
    asking, the foreign POST is refused, and only the page's own form signs out."""
    app = _app(apps, sessions, clock)
    async with _client(app) as admin:
        assert (await _login(admin, FAST, FAST_PASSWORD, **SITE)).status_code == 303
        page = await admin.get("/logout")
        assert page.status_code == 200 and 'action="/logout"' in page.text
        assert (await admin.get("/api/v1/me")).status_code == 200
        foreign = await admin.post("/logout", headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403
        assert (await admin.get("/api/v1/me")).status_code == 200
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        done = await admin.post("/logout", data={"csrf_token": token}, headers={"Origin": BASE})
        assert done.status_code == 303
        admin.cookies.clear()
        assert (await admin.get("/api/v1/me")).status_code == 401


async def test_a_flood_of_refused_requests_is_one_counted_row_a_minute(
    apps: list[FastAPI], sessions: sessionmaker[Session], world: object, clock: VirtualClock
) -> None:
    """Attack: a stranger repeats a refused request 300 times to fill the audit table. Each
    is still refused and counted, in one row for that name and path this minute; the next
    minute starts a new row."""
    with sessions() as session:
        rows_before = session.scalar(select(func.count()).select_from(AccessDenial)) or 0
    async with _client(_app(apps, sessions, clock)) as stranger:
        for _ in range(300):
            assert (await stranger.get("/api/v1/flood-probe")).status_code in (401, 404)
        clock.advance_now(60)
        await stranger.get("/api/v1/flood-probe")
    with sessions() as session:
        rows = (
            session.execute(
                select(AccessDenial.count).where(AccessDenial.path == "/api/v1/flood-probe")
            )
            .scalars()
            .all()
        )
        total_rows = session.scalar(select(func.count()).select_from(AccessDenial)) or 0
    assert sorted(rows) == [1, 300]
    assert total_rows == rows_before + 2


async def test_made_up_names_do_not_pile_up_in_the_lockout_table(
    apps: list[FastAPI], sessions: sessionmaker[Session], world: object, clock: VirtualClock
) -> None:
    """Attack: a stranger behind a proxy tries one password on each of 6 made-up names from
    6 addresses, to grow ``login_lockouts`` by a row a try for ever. Before: every row stayed.
    Now a row quiet for a day is forgotten on a later failure, while a name locked now stays
    locked (and is forgotten only a day after its lockout ended)."""
    app = _app(apps, sessions, clock, trusted_proxies=["10.0.0.1"])
    async with _client(app, "10.0.0.1") as proxy:
        for n in range(6):
            hop = {"X-Forwarded-For": f"198.51.100.{n}"}
            assert (await _login(proxy, f"made-up-{n}.x", "guess", **hop)).status_code == 401
    assert _count(sessions, LoginLockout) >= 12  # a name and an address a try

    clock.advance_now(FORGET_AFTER.total_seconds() + 60)
    async with _client(app, "10.0.0.1") as proxy:
        for n in range(USER_FAILURES):
            await _login(proxy, FAST, f"wrong-{n}", **{"X-Forwarded-For": "192.0.2.50"})
        refused = await _login(proxy, FAST, FAST_PASSWORD, **{"X-Forwarded-For": "192.0.2.60"})
    assert refused.status_code == 429 and "该账号" in refused.text
    with sessions() as session:
        keys = set(session.scalars(select(LoginLockout.key)))
    assert not any("made-up" in key or "198.51.100." in key for key in keys)
    assert f"user:{FAST}" in keys

    clock.advance_now((LOCKOUT + FORGET_AFTER).total_seconds() + 60)
    async with _client(app, "10.0.0.1") as proxy:
        late = await _login(proxy, "one-more.x", "guess", **{"X-Forwarded-For": "192.0.2.51"})
        assert late.status_code == 401
    with sessions() as session:
        keys = set(session.scalars(select(LoginLockout.key)))
    assert keys == {"user:one-more.x", "addr:192.0.2.51"}
