"""S-30 on the controller's database (SQLite, migrated): departments, routing, drafts,
submission with the outbox in the same transaction, materials reused and re-sent, and the
applicant's plain-language status."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.applications.departments import add_department, disable_department, route
from controller.applications.status_text import applicant_status
from controller.applications.store import (
    application_by_token,
    new_application,
    save_draft,
    submit,
    upload_material,
)
from controller.db import make_engine, migrate, session_factory
from controller.db.models import Application, ApplicationItem, Delivery
from muster.errors import ConfigError, ConflictError, NotFoundError
from muster.one_application import ApplicationError, materials_for
from tests.fixtures.applications import APPLICANT, PDF

NOW = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC)


@pytest.fixture
def db(tmp_path: Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate(url)
    return session_factory(make_engine(url))


def test_departments_are_checked_and_routed_by_the_longest_prefix(
    db: sessionmaker[Session],
) -> None:
    with db.begin() as s:
        for bad in (
            {"kind": "nope", "url": "https://x/"},
            {"kind": "hukou", "url": "http://x/"},
            {"kind": "hukou", "url": "https:///nohost"},
            {"kind": "hukou", "url": "https://x/", "secret": "plain"},
            {"kind": "hukou", "url": "https://x/", "region_prefix": "37ab"},
        ):
            with pytest.raises(ConfigError):
                add_department(s, now=NOW, **bad)  # type: ignore[arg-type]
        city, _ = add_department(
            s, kind="hukou", url="https://city/", region_prefix="3710", now=NOW
        )
        county, secret = add_department(
            s, kind="hukou", url="https://c/", region_prefix="371002", now=NOW
        )
        assert secret.startswith("whsec_")
        assert route(s, "hukou", "371002001000").id == county.id  # type: ignore[union-attr]
        assert route(s, "hukou", "371003001000").id == city.id  # type: ignore[union-attr]
        assert route(s, "hukou", "370902001000") is None
        assert route(s, "idcard", "371002001000") is None
        disable_department(s, county.id)
        assert route(s, "hukou", "371002001000").id == city.id  # type: ignore[union-attr]
        with pytest.raises(NotFoundError):
            disable_department(s, 999)


def _draft(s: Session, items: list[str]) -> Application:
    app_id, token = new_application(s, now=NOW)
    application = application_by_token(s, token)
    assert application.id == app_id
    assert save_draft(s, application, items, APPLICANT, now=NOW) == ()
    return application


def test_a_submission_missing_materials_changes_nothing(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        application = _draft(s, ["hukou", "idcard"])
        with pytest.raises(ApplicationError) as refused:
            submit(s, application, now=NOW)
        missing = {p.field for p in refused.value.problems}
        assert missing == set(materials_for(["hukou", "idcard"], "conscript"))
        assert application.state == "draft"
        assert s.scalar(select(func.count()).select_from(ApplicationItem)) == 0


def test_a_draft_keeps_only_good_values_and_a_submitted_form_is_closed(
    db: sessionmaker[Session],
) -> None:
    with db.begin() as s:
        application = _draft(s, ["idcard"])
        assert set(application.fields) == {
            "name",
            "id_number",
            "phone",
            "police_station",
            "township",
        }
        problems = save_draft(s, application, ["idcard"], {"phone": "123"}, now=NOW)
        assert problems and application.fields["phone"] == APPLICANT["phone"]
        upload_material(s, application, "photo", PDF, "application/pdf", now=NOW)
        add_department(s, kind="idcard", url="https://p/", region_prefix="3710", now=NOW)
        [item] = submit(s, application, now=NOW)
        assert item.state == "queued"
        with pytest.raises(ConflictError):
            save_draft(s, application, ["idcard"], APPLICANT, now=NOW)
        with pytest.raises(ConflictError):
            submit(s, application, now=NOW)


def test_an_item_without_a_department_is_unrouted_and_says_so(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        application = _draft(s, ["employment"])
        [item] = submit(s, application, now=NOW)
        assert item.state == "unrouted" and item.department_id is None
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0


def test_a_material_asked_for_is_uploaded_once_and_the_item_sent_again(
    db: sessionmaker[Session],
) -> None:
    with db.begin() as s:
        application = _draft(s, ["hukou", "idcard"])
        for key in materials_for(["hukou", "idcard"], "conscript"):
            upload_material(s, application, key, PDF, "", now=NOW)
        for kind in ("hukou", "idcard"):
            add_department(s, kind=kind, url="https://d/", region_prefix="3710", now=NOW)
        hukou, idcard = submit(s, application, now=NOW)
        idcard.state, idcard.wanted = "more_materials", ["photo"]
        hukou.state = "received"
        resent = upload_material(
            s, application, "photo", b"\x89PNG\r\n\x1a\nnew", "image/png", now=NOW
        )
        assert resent == [idcard.id] and idcard.state == "queued" and hukou.state == "received"
        bodies = [
            json.loads(d.body)
            for d in s.scalars(select(Delivery).where(Delivery.item_id == idcard.id))
        ]
        assert len(bodies) == 2 and len({b["delivery_id"] for b in bodies}) == 2
        assert {b["materials"][0]["content_type"] for b in bodies} == {
            "application/pdf",
            "image/png",
        }


def test_plain_language_status() -> None:
    at = dt.datetime(2027, 6, 12, 1, 0, tzinfo=dt.UTC)
    text = applicant_status(
        "accepted",
        appointment_at=at,
        place="环翠区退役军人服务中心",
        bring=["discharge_certificate", "photo"],
    )
    assert text == "请于 6 月 12 日 9:00 到环翠区退役军人服务中心办理，携带：退役证件、证件照。"
    assert applicant_status("accepted", appointment_at=at, place="X", lang="en") == (
        "Please come to X on 2027-06-12 at 09:00."
    )
    assert applicant_status("more_materials", wanted=["photo"]).startswith("请补充：证件照")
    assert applicant_status("rejected", message="不符合条件") == "未通过：不符合条件"
    assert "暂未开通" in applicant_status("unrouted")
    assert applicant_status("received") == "部门已接收，正在办理。"


def test_callback_ids_are_forgotten_after_a_week(db: sessionmaker[Session]) -> None:
    from controller.applications.sender import prune_seen_callbacks
    from controller.db.models import SeenCallback

    with db.begin() as s:
        dept, _ = add_department(s, kind="hukou", url="https://d/", now=NOW)
        for n, age in enumerate((0, 6, 8)):
            s.add(
                SeenCallback(
                    id=f"cb_{n}",
                    department_id=dept.id,
                    body_sha256="0" * 64,
                    received_at=NOW - dt.timedelta(days=age),
                )
            )
    with db.begin() as s:
        assert prune_seen_callbacks(s, NOW) == 1
        assert set(s.scalars(select(SeenCallback.id))) == {"cb_0", "cb_1"}
