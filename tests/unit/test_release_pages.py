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


async def test_the_device_page_shows_its_update_history_and_retries_a_failed_update(
    client: httpx.AsyncClient, world_db: tuple[sessionmaker[Session], World]
) -> None:
    world = world_db[1]
    county = bearer(world.tokens["county"])
    device = world.counties[HOME].device_id
    page = await client.get(f"/devices/{device}", headers=county)
    assert page.status_code == 200
    assert "软件更新记录" in page.text and "已回滚" in page.text and "重新尝试更新" in page.text
    assert "<script>x</script>" not in page.text
    english = await client.get(f"/devices/{device}?lang=en", headers=county)
    assert "Software updates" in english.text and "Retry the update" in english.text
    rollout_id = (await client.get("/api/v1/releases", headers=county)).json()["rollouts"][0]["id"]
    # The rollout paused itself on this failure; a retry by hand is allowed while paused.
    answer = await client.post(
        f"/api/v1/devices/{device}/update-retry?rollout_id={rollout_id}", headers=county
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # (The app's clock stands before the world's rollback: order by state, not by time.)
    assert sorted(e["state"] for e in body["history"]) == ["retry", "rolled_back"]
    assert body["retryable"] == []
    again = await client.post(
        f"/api/v1/devices/{device}/update-retry?rollout_id={rollout_id}", headers=county
    )
    assert again.status_code == 409 and "无需重试" in again.json()["detail"]
    after = await client.get(f"/devices/{device}", headers=county)
    assert "手动重试" in after.text and 'data-testid="update-retry"' not in after.text


async def test_hostile_retries_are_refused_and_change_nothing(
    client: httpx.AsyncClient, world_db: tuple[sessionmaker[Session], World]
) -> None:
    world = world_db[1]
    county, neighbour = bearer(world.tokens["county"]), bearer(world.tokens["neighbour"])
    device = world.counties[HOME].device_id
    rollout_id = (await client.get("/api/v1/releases", headers=county)).json()["rollouts"][0]["id"]
    retry = f"/api/v1/devices/{device}/update-retry"
    for path, headers, codes in [
        (f"{retry}?rollout_id={rollout_id}", neighbour, (403, 404)),
        (f"{retry}?rollout_id=0", county, (422,)),
        (f"{retry}?rollout_id=-1", county, (422,)),
        (f"{retry}?rollout_id=abc", county, (422,)),
        (f"{retry}?rollout_id=" + "9" * 40, county, (422,)),
        (retry, county, (422,)),
        (f"{retry}?rollout_id={rollout_id + 5}", county, (404,)),
        (f"/api/v1/devices/nosuch/update-retry?rollout_id={rollout_id}", county, (403, 404)),
    ]:
        answer = await client.post(path, headers=headers)
        assert answer.status_code in codes, (path, answer.status_code, answer.text)
    for value in ("", "x", "１", "0", "1" * 30, "<script>"):
        answer = await client.post(
            f"/devices/{device}/update-retry",
            headers={**county, "content-type": "application/x-www-form-urlencoded"},
            content=f"rollout_id={value}&lang=zh",
        )
        assert answer.status_code == 400, (value, answer.status_code)
    history = (await client.get(f"/api/v1/devices/{device}/updates", headers=county)).json()
    assert [e["state"] for e in history] == ["rolled_back"]
