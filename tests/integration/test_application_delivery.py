"""S-30 delivery end to end below the pages, on PostgreSQL: an application submitted, its ten
items delivered by the outbox sender to ten simulated departments over HTTP, signed; one
department failing three times first; callbacks verified and applied; a material asked for,
uploaded, delivered again; every item done; nothing delivered twice as different deliveries."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from controller.applications.hooks import hooks_router
from controller.applications.sender import DeliverySender, pending_count
from controller.applications.store import upload_material
from controller.applications.tracking import department_loads, items_of
from controller.db import make_engine, migrate, session_factory
from controller.db.models import Application, Delivery, ItemEvent, SeenCallback
from muster.application_wire import Callback, sign
from muster.clock import VirtualClock
from muster.department_sim import DepartmentScript
from muster.one_application import ITEMS
from tests.fixtures.applications import APPLICANT, fill_and_submit, serve, ten_departments

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

START = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC)


def _world(postgres_url: str):  # type: ignore[no-untyped-def]
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    return engine, session_factory(engine)


async def _until(predicate, clock: VirtualClock, sender: DeliverySender, rounds: int = 400) -> None:  # type: ignore[no-untyped-def]
    for _ in range(rounds):
        if await asyncio.to_thread(predicate):
            return
        if await sender.pump_once() == 0:
            clock.advance_now(30)  # retries come due on the virtual clock
            await asyncio.sleep(0.02)
    raise AssertionError("the deliveries did not settle")


async def test_ten_items_reach_ten_departments_and_end_done(postgres_url: str) -> None:
    """The whole path: routing, signing, a department failing 3 times, a material asked for
    and uploaded, duplicate callbacks, and every item done with where and when to come."""
    engine, sessions = _world(postgres_url)
    clock = VirtualClock(START)
    public = FastAPI()
    public.include_router(hooks_router(sessions, clock))
    scripts = {
        "hukou": DepartmentScript(
            fail_first=3,
            appointment_at="2027-06-12T09:00:00+08:00",
            place="环翠派出所",
            bring=("discharge_certificate",),
        ),
        "idcard": DepartmentScript(
            outcome="more_materials",
            wanted=("photo",),
            appointment_at="2027-06-13T14:30:00+08:00",
            place="环翠派出所",
        ),
        "sscard": DepartmentScript(
            duplicate_callbacks=True,
            place="环翠区人社局",
            appointment_at="2027-06-12T09:00:00+08:00",
        ),
    }
    async with (
        serve(public) as public_url,
        ten_departments(sessions, clock, public_url, scripts) as departments,
    ):
        app_id = fill_and_submit(sessions, clock.now())
        sender = DeliverySender(sessions, clock)

        def settled_or_waiting() -> bool:
            with sessions() as s:
                states = {i.code: i.state for i in items_of(s, app_id, clock.now())}
            return states["idcard"] == "more_materials" and all(
                v == "done" for k, v in states.items() if k != "idcard"
            )

        await _until(settled_or_waiting, clock, sender)
        with sessions.begin() as s:
            application = s.get(Application, app_id)
            assert application is not None
            assert upload_material(
                s, application, "photo", b"\xff\xd8\xff\xe0new photo", "", now=clock.now()
            )

        def all_done() -> bool:
            with sessions() as s:
                return all(i.state == "done" for i in items_of(s, app_id, clock.now()))

        await _until(all_done, clock, sender)
        await sender.aclose()
        for sim in departments.sims.values():
            await sim.drain()
        with sessions() as s:
            views = {i.code: i for i in items_of(s, app_id, clock.now())}
            deliveries = s.scalars(select(Delivery)).all()
            assert pending_count(s) == 0
            loads = department_loads(s, clock.now())
    engine.dispose()

    # each department got each of its deliveries once as a delivery (resends carry its id)
    assert {k: sim.stats()["unique_deliveries"] for k, sim in departments.sims.items()} == {
        k: (2 if k == "idcard" else 1) for k in ITEMS
    }
    assert departments.sims["hukou"].answered == 4  # three 500s, then the delivery
    assert len(deliveries) == 11 and all(d.state == "sent" for d in deliveries)
    hukou = views["hukou"]
    assert hukou.attempts == 4 and [e.state for e in hukou.history][:2] == ["queued", "delivered"]
    assert [e.state for e in views["idcard"].history] == [
        "queued",
        "delivered",
        "received",
        "more_materials",
        "queued",
        "delivered",
        "received",
        "accepted",
        "done",
    ]
    # the ID-card office's second delivery carries the new photo and only its own fields
    second = json.loads(
        max(
            (d for d in deliveries if d.item_id == views["idcard"].id), key=lambda d: d.created_at
        ).body
    )
    assert set(second["fields"]) == set(ITEMS["idcard"].fields)
    assert [m["key"] for m in second["materials"]] == ["photo"]
    assert views["sscard"].appointment_at == dt.datetime(2027, 6, 12, 1, 0, tzinfo=dt.UTC)
    assert all(load.by_state == {"done": 1} for load in loads)


async def test_data_minimisation_on_the_wire(postgres_url: str) -> None:
    """What each department receives holds its item's fields and materials and no other."""
    engine, sessions = _world(postgres_url)
    clock = VirtualClock(START)
    public = FastAPI()
    public.include_router(hooks_router(sessions, clock))
    async with serve(public) as public_url, ten_departments(sessions, clock, public_url):
        fill_and_submit(sessions, clock.now())
        with sessions() as s:
            bodies = {d.item_id: json.loads(d.body) for d in s.scalars(select(Delivery))}
    engine.dispose()
    for body in bodies.values():
        item = ITEMS[body["item"]]
        assert set(body["fields"]) == set(item.fields)
        assert body["delivery_id"].startswith("msg_")
        if "bank_account" not in item.fields:
            assert APPLICANT["bank_account"] not in json.dumps(body)


async def test_hostile_callbacks_are_refused_and_change_nothing(postgres_url: str) -> None:
    """Wrong signature, replay, unknown delivery, a reused id with another body, an impossible
    transition, an unknown material: each refused with its reason; the database unchanged."""
    engine, sessions = _world(postgres_url)
    clock = VirtualClock(START)
    public = FastAPI()
    public.include_router(hooks_router(sessions, clock))
    async with (
        serve(public) as public_url,
        ten_departments(
            sessions, clock, public_url, {k: DepartmentScript(callback_delay_s=3600) for k in ITEMS}
        ) as departments,
    ):
        app_id = fill_and_submit(sessions, clock.now(), items=("idcard",))
        with sessions() as s:
            delivery = s.scalars(select(Delivery)).one()
        dept = departments.ids["idcard"]
        secret = departments.sims["idcard"].secret
        url = f"{public_url}/hooks/departments/{dept}"

        def snapshot() -> tuple[object, ...]:
            with sessions() as s:
                return (
                    s.scalar(select(func.count()).select_from(ItemEvent)),
                    s.scalar(select(func.count()).select_from(SeenCallback)),
                    [(i.state, i.wanted) for i in items_of(s, app_id, clock.now())],
                )

        good = Callback(delivery.id, "received", "已接收").to_json()
        async with httpx.AsyncClient() as client:

            async def post(
                body: bytes, headers: dict[str, str], target: str = url
            ) -> httpx.Response:
                return await client.post(target, content=body, headers=headers)

            before = snapshot()
            cases = [
                (
                    good,
                    sign("whsec_" + "A" * 44, "cb_1", clock.now(), good),
                    url,
                    401,
                    "bad_signature",
                ),
                (
                    good,
                    sign(secret, "cb_1", clock.now() - dt.timedelta(minutes=6), good),
                    url,
                    401,
                    "stale_timestamp",
                ),
                (good, {"webhook-id": "cb_1"}, url, 401, "missing_headers"),
                (Callback("msg_nope", "received").to_json(), None, url, 404, "unknown_delivery"),
                (Callback(delivery.id, "done").to_json(), None, url, 409, "bad_transition"),
                (
                    Callback(delivery.id, "more_materials", materials=("passport",)).to_json(),
                    None,
                    url,
                    400,
                    "unknown_material",
                ),
                (b'{"delivery_id": 1}', None, url, 400, "bad_body"),
                (good, None, f"{public_url}/hooks/departments/99999", 404, "unknown_department"),
                (b"x" * 70_000, None, url, 413, "too_large"),
            ]
            for body, headers, target, status, reason in cases:
                answer = await post(
                    body, headers or sign(secret, "cb_x", clock.now(), body), target
                )
                assert (answer.status_code, answer.json()["error"]) == (status, reason), body[:80]
                assert snapshot() == before
            # applied once; the same message again is answered as applied and changes nothing
            first = await post(good, sign(secret, "cb_ok", clock.now(), good))
            assert first.json() == {"applied": True, "duplicate": False, "state": "received"}
            after = snapshot()
            again = await post(good, sign(secret, "cb_ok", clock.now(), good))
            assert again.status_code == 200 and again.json()["duplicate"] is True
            assert snapshot() == after
            other = Callback(delivery.id, "rejected", "x").to_json()
            reused = await post(other, sign(secret, "cb_ok", clock.now(), other))
            assert (reused.status_code, reused.json()["error"]) == (409, "replayed_id")
            assert snapshot() == after
        for sim in departments.sims.values():
            sim._tasks.clear()  # the delayed callbacks are not part of this test
    engine.dispose()


@pytest.mark.parametrize(
    ("status", "retried"), [(429, True), (408, True), (503, True), (404, False), (422, False)]
)
async def test_which_answers_are_retried(postgres_url: str, status: int, retried: bool) -> None:
    """5xx, 408 and 429 come back later (same delivery); any other 4xx fails the item with the
    department's reason and is never sent again."""
    engine, sessions = _world(postgres_url)
    clock = VirtualClock(START)
    public = FastAPI()
    public.include_router(hooks_router(sessions, clock))
    script = DepartmentScript(fail_first=1, fail_status=status, silent=True)
    async with (
        serve(public) as public_url,
        ten_departments(sessions, clock, public_url, {"medins": script}) as departments,
    ):
        app_id = fill_and_submit(sessions, clock.now(), items=("medins",))
        sender = DeliverySender(sessions, clock)
        assert await sender.pump_once() == 1
        clock.advance_now(3600)
        assert await sender.pump_once() == (1 if retried else 0)
        await sender.aclose()
        with sessions() as s:
            [view] = items_of(s, app_id, clock.now())
            delivery = s.scalars(select(Delivery)).one()
    engine.dispose()
    sim = departments.sims["medins"]
    if retried:
        assert (delivery.state, delivery.attempts, sim.answered) == ("sent", 2, 2)
        assert view.state == "delivered"
    else:
        assert (delivery.state, delivery.attempts, sim.answered) == ("failed", 1, 1)
        assert view.state == "failed" and str(status) in view.message
