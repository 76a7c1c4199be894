"""The applicant's pages over HTTP on the public app (PostgreSQL): a whole application made
through the forms, and hostile input refused with a reason and nothing changed."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select

from controller.applications.public_app import create_public_app
from controller.db import make_engine, migrate, session_factory
from controller.db.models import Application, ApplicationMaterial, Delivery
from muster.clock import VirtualClock
from muster.one_application import ITEMS, MATERIAL_MAX_BYTES, materials_for
from tests.fixtures.applications import APPLICANT, PDF, serve

pytestmark = [pytest.mark.postgres]

FORM = {"content-type": "application/x-www-form-urlencoded"}


async def _post_form(client: httpx.AsyncClient, pairs: list[tuple[str, str]]) -> httpx.Response:
    return await client.post("/apply/form", content=urlencode(pairs), headers=FORM)


START = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC)


async def test_apply_through_the_pages_and_refuse_hostile_input(postgres_url: str) -> None:
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    sessions = session_factory(engine)
    clock = VirtualClock(START)
    async with (
        serve(create_public_app(sessions, clock)) as url,
        httpx.AsyncClient(base_url=url, follow_redirects=True) as client,
    ):
        landing = await client.get("/apply")
        assert "开始申请" in landing.text
        assert "Start an application" in (await client.get("/apply?lang=en")).text
        # no cookie: the form says so instead of making one up
        assert (await client.get("/apply/form")).status_code == 404
        assert (
            await client.post("/apply/new", headers={"origin": "http://evil.example"})
        ).status_code == 403
        started = await client.post("/apply/new")
        assert started.status_code == 200 and "更新事项" in started.text
        items = [("items", code) for code in ITEMS]
        chosen = await _post_form(client, [*items, ("action", "choose")])
        for key in ("bank_account", "police_station", "contribution_grade"):
            assert f'name="{key}"' in chosen.text
        assert chosen.text.count('name="name"') == 1  # asked once for ten items
        # a wrong field: refused, with the field named, the draft as it was
        wrong = await _post_form(
            client,
            [*items, *{**APPLICANT, "bank_account": "6217001234"}.items(), ("action", "save")],
        )
        assert wrong.status_code == 400 and "16 至 19 位数字" in wrong.text
        with sessions() as s:
            application = s.scalars(select(Application)).one()
            assert application.fields == {} and application.state == "draft"
        saved = await _post_form(client, [*items, *APPLICANT.items(), ("action", "save")])
        assert saved.status_code == 200 and "草稿已保存" in saved.text
        # submitting before the materials are in names each missing one
        early = await _post_form(client, [*items, *APPLICANT.items(), ("action", "submit")])
        assert early.status_code == 400 and "请上传这份材料" in early.text
        # hostile uploads
        too_big = await client.post(
            "/apply/material",
            data={"key": "photo"},
            files={
                "file": (
                    "p.pdf",
                    b"%PDF-" + b"0" * (MATERIAL_MAX_BYTES + 70_000),
                    "application/pdf",
                )
            },
        )
        assert too_big.status_code == 413 and "5 MB" in too_big.text
        exe = await client.post(
            "/apply/material",
            data={"key": "photo"},
            files={"file": ("p.jpg", b"MZ\x90\x00", "image/jpeg")},
        )
        assert exe.status_code == 400 and "只收 PDF、JPG 或 PNG" in exe.text
        liar = await client.post(
            "/apply/material", data={"key": "photo"}, files={"file": ("p.png", PDF, "image/png")}
        )
        assert liar.status_code == 400 and "不符" in liar.text
        nokey = await client.post(
            "/apply/material",
            data={"key": "../../etc"},
            files={"file": ("p.pdf", PDF, "application/pdf")},
        )
        assert nokey.status_code == 400
        with sessions() as s:
            assert s.scalar(select(func.count()).select_from(ApplicationMaterial)) == 0
        for key in materials_for(ITEMS, APPLICANT["service_type"]):
            ok = await client.post(
                "/apply/material",
                data={"key": key},
                files={"file": (f"{key}.pdf", PDF, "application/pdf")},
            )
            assert ok.status_code == 200, ok.text[-500:]
        done = await _post_form(client, [*items, *APPLICANT.items(), ("action", "submit")])
        assert done.status_code == 200 and "申请已提交" in done.text
        # no department is set up in this world: each item says so, in plain words
        assert done.text.count('data-state="unrouted"') == 10 and "本地区暂未开通" in done.text
        # once submitted the form cannot be changed
        again = await _post_form(client, [*items, *APPLICANT.items(), ("action", "submit")])
        assert "办理进度" in again.text
        with sessions() as s:
            assert s.scalar(select(func.count()).select_from(Delivery)) == 0
        # a stranger's cookie reaches nothing
        async with httpx.AsyncClient(
            base_url=url, cookies={"muster_applicant": "x" * 32}
        ) as stranger:
            assert (await stranger.get("/apply/status")).status_code == 404
    engine.dispose()
