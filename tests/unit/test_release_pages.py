"""The releases page and API as a county admin sees them: versions of the own area only, the
rollouts with their waves, failures with their reasons, a device's update history; Chinese by
default and English with ``?lang=en``; hostile queries refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from controller.admin import create_admin_app
from controller.db import make_engine, migrate, session_factory
from controller.db.models import Device
from controller.releases.keys import load_release_keys
from controller.releases.rollouts import advance_rollouts, create_rollout, record_report
from controller.releases.store import add_release
from muster.clock import VirtualClock
from tests.unit.admin_world import HOME, NEIGHBOUR, NOW, World, bearer, build_world
from tests.unit.test_releases import artifact


@pytest.fixture
def world_db(tmp_path: Path) -> tuple[sessionmaker[Session], World]:
    url = f"sqlite:///{tmp_path / 'controller.db'}"
    migrate(url)
    sessions = session_factory(make_engine(url))
    world = build_world(sessions)
    ring = load_release_keys(tmp_path / "pki")
    with sessions.begin() as session:
        session.execute(update(Device).values(software_version="0.1.0"))
        add_release(
            session, tmp_path, artifact(tmp_path, ring.signing.key), ring.trusted(), now=NOW
        )
        rollout = create_rollout(
            session,
            version="0.2.0",
            region_prefix=HOME,
            profiles=[],
            waves=[100],
            soak_s=0,
            health_window_s=900,
            failure_threshold=0.5,
            now=NOW,
        )
        device = world.counties[HOME].device_id
        record_report(
            session,
            device,
            rollout_id=rollout.id,
            version="0.2.0",
            state="rolled_back",
            reason="crash_loop: <script>x</script>",
            running_version="0.1.0",
            now=NOW + timedelta(minutes=3),
        )
        advance_rollouts(session, NOW + timedelta(minutes=4))
    return sessions, world


@pytest.fixture
async def client(
    world_db: tuple[sessionmaker[Session], World],
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_admin_app(world_db[0], clock=VirtualClock(NOW), upload_keys=lambda: {})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://admin.test"
    ) as c:
        yield c


async def test_the_county_admin_sees_the_own_area(
    client: httpx.AsyncClient, world_db: tuple[sessionmaker[Session], World]
) -> None:
    world = world_db[1]
    county = bearer(world.tokens["county"])
    api = (await client.get("/api/v1/releases", headers=county)).json()
    assert api["area"] == HOME
    assert [(v["version"], v["devices"]) for v in api["versions"]] == [("0.1.0", 1)]
    assert api["versions"][0]["region"].startswith(HOME)
    [rollout] = api["rollouts"]
    assert rollout["state"] == "paused" and rollout["waves"][0]["states"] == {"rolled_back": 1}
    assert api["failures"][0]["reason"].startswith("crash_loop")
    page = await client.get("/releases", headers=county)
    assert page.status_code == 200
    assert "软件版本与发布" in page.text and "已暂停" in page.text and "已回滚" in page.text
    assert "<script>x</script>" not in page.text and "&lt;script&gt;" in page.text
    english = await client.get("/releases?lang=en", headers=county)
    assert "Software versions and rollouts" in english.text and "rolled back" in english.text
    history = await client.get(
        f"/api/v1/devices/{world.counties[HOME].device_id}/updates", headers=county
    )
    assert [e["state"] for e in history.json()] == ["rolled_back"]


async def test_the_neighbour_and_hostile_queries_are_refused(
    client: httpx.AsyncClient, world_db: tuple[sessionmaker[Session], World]
) -> None:
    world = world_db[1]
    neighbour = bearer(world.tokens["neighbour"])
    mine = (await client.get("/api/v1/releases", headers=neighbour)).json()
    assert mine["area"] == NEIGHBOUR and not mine["failures"]
    assert [r["region"] for r in mine["rollouts"]] == []
    for path in (
        f"/api/v1/releases?region={HOME}",
        f"/releases?region={HOME}",
        f"/api/v1/devices/{world.counties[HOME].device_id}/updates",
    ):
        assert (await client.get(path, headers=neighbour)).status_code in (403, 404), path
    county = bearer(world.tokens["county"])
    for path in (
        "/releases?region=abc",
        "/releases?lang=fr",
        "/api/v1/releases?region=" + "1" * 13,
    ):
        assert (await client.get(path, headers=county)).status_code == 422, path
    assert (await client.get("/releases")).status_code in (302, 303, 401)
