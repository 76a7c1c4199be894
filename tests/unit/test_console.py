"""The console's rules that do not need a browser: passwords and lockout, two different clerks,
the licence gate, CSRF, drafts encrypted at rest and gone once sealed (S-07, S-06, S-13).
The real app runs in-process over HTTP with real stores on disk."""

from __future__ import annotations

import datetime as dt
import random
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.console.accounts import ClerkAccounts, LoginRefused
from edge.console.app import ConsoleServices, create_console_app
from edge.console.drafts import DraftStore
from edge.console.search import PeopleSearch, entry, matches
from edge.console.workflow import WorkflowError, new_draft, review, submit
from edge.licence_guard import Verdict
from muster.clock import VirtualClock
from muster.passwords import hash_password, verify_password
from muster.records import RecordPayload
from muster.synthetic import person
from muster.v1 import data_pb2

PASSWORD = "abc12345"
NOW = dt.datetime(2018, 10, 8, 9, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def hashed() -> str:
    return hash_password(PASSWORD)


def accounts(directory: Path, hashed: str, clock: VirtualClock) -> ClerkAccounts:
    store = ClerkAccounts(directory, clock=clock)
    store.replace(
        [
            data_pb2.ClerkAccount(username="li", display_name="李丽", password_hash=hashed),
            data_pb2.ClerkAccount(username="wang", display_name="王芳", password_hash=hashed),
            data_pb2.ClerkAccount(
                username="gone", display_name="赵", password_hash=hashed, disabled=True
            ),
        ]
    )
    return store


def test_scrypt_hashes_verify_and_differ() -> None:
    """The same password hashes differently each time and verifies; a wrong one does not."""
    a, b = hash_password(PASSWORD), hash_password(PASSWORD)
    assert a != b and a.startswith("scrypt$")
    assert verify_password(PASSWORD, a) and not verify_password("abc12346", a)
    assert not verify_password(PASSWORD, "garbage")


def test_lockout_survives_a_restart_and_expires(tmp_path: Path, hashed: str) -> None:
    """Five wrong passwords lock the account, even for the right one and across a restart of
    the console; after the lockout the right password works again."""
    clock = VirtualClock(NOW)
    store = accounts(tmp_path, hashed, clock)
    for attempt in range(4):
        with pytest.raises(LoginRefused) as caught:
            store.authenticate("li", "wrong")
        assert caught.value.reason == "wrong"
        assert f"还可尝试 {4 - attempt} 次" in str(caught.value)
    with pytest.raises(LoginRefused, match="锁定"):
        store.authenticate("li", "wrong")
    restarted = ClerkAccounts(tmp_path, clock=clock)
    with pytest.raises(LoginRefused) as caught:
        restarted.authenticate("li", PASSWORD)
    assert caught.value.reason == "locked"
    clock.advance_now(16 * 60)
    assert restarted.authenticate("li", PASSWORD).display_name == "李丽"
    with pytest.raises(LoginRefused) as caught:
        restarted.authenticate("gone", PASSWORD)
    assert caught.value.reason == "disabled"


def test_the_entering_clerk_cannot_review() -> None:
    """Review by the clerk who entered the record is refused; another clerk may approve."""
    draft = new_draft(record_id="r1", clerk="li", now=NOW, category="retired_soldier")
    entered = draft.model_copy(update={"state": "entered", "entered_by": "li"})
    with pytest.raises(WorkflowError) as caught:
        review(entered, clerk="li", now=NOW, approve=True)
    assert caught.value.code == "same_clerk"
    assert review(entered, clerk="wang", now=NOW, approve=True).reviewed_by == "wang"


def test_submit_refuses_an_incomplete_record() -> None:
    """An empty draft cannot go to review; the message counts what is missing."""
    draft = new_draft(record_id="r1", clerk="li", now=NOW, category="martyr_family")
    with pytest.raises(WorkflowError, match="处需要修改"):
        submit(draft, clerk="li", now=NOW)


def test_pinyin_name_and_id_number_search() -> None:
    """Full pinyin, initials, part of the name and the tail of the ID number all find a person."""
    e = entry({"name": "张建国", "id_number": "37090219600504001X"})
    for query in ("zhangjianguo", "zhangj", "zjg", "建国", "0504001x", "ZJG"):
        assert matches(e, query), query
    for query in ("wang", "李", "12"):
        assert not matches(e, query), query


def make_app(
    tmp_path: Path, hashed: str, verdict: Verdict, sealed: list[RecordPayload]
) -> tuple[httpx.AsyncClient, ConsoleServices]:
    rng = random.Random(5)
    people: list[dict[str, Any]] = []
    for _ in range(3):
        p = person(rng, "370902")
        people.append(
            {
                "name": p.name,
                "id_number": p.id_number,
                "sex": p.sex,
                "birth_date": p.birth_date.isoformat(),
                "category": p.category.value,
                "relation": p.relation or "",
            }
        )
    services = ConsoleServices(
        accounts=accounts(tmp_path / "console", hashed, VirtualClock(NOW)),
        drafts=DraftStore(tmp_path / "console" / "drafts.sqlite3", tmp_path / "drafts.key"),
        people=PeopleSearch(lambda: people, lambda: 1),
        township_code="370902001000",
        township_name="泰山区 001 乡镇",
        verdict=lambda: verdict,
        seal=lambda record, attachments: sealed.append(record),
        already_sealed=lambda record_id: False,
        clock=VirtualClock(NOW),
    )
    transport = httpx.ASGITransport(app=create_console_app(services))
    client = httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1", follow_redirects=True
    )
    return client, services


async def login(client: httpx.AsyncClient, username: str) -> str:
    response = await client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200
    match = re.search(r'name="csrf" value="([^"]+)"', response.text)
    assert match
    return match.group(1)


async def test_licence_refusal_is_said_and_enforced(tmp_path: Path, hashed: str) -> None:
    """Without a valid licence every page says why, and no record can be started (S-06)."""
    verdict = Verdict(False, "expired", "授权已过期，请联系技术支持续期", 0)
    client, services = make_app(tmp_path, hashed, verdict, [])
    csrf = await login(client, "li")
    page = await client.get("/")
    assert "采集已暂停：授权已过期，请联系技术支持续期" in page.text
    person_id = services.people.search("3709")[0].id_number
    response = await client.post("/records", data={"csrf": csrf, "id_number": person_id})
    assert response.status_code == 409
    assert "采集已暂停" in response.text
    assert services.drafts.all() == []
    await client.aclose()


async def test_posts_need_the_sessions_csrf_token(tmp_path: Path, hashed: str) -> None:
    """A form post without the session's token changes nothing."""
    client, services = make_app(tmp_path, hashed, Verdict(True, "", "授权有效", 300), [])
    await login(client, "li")
    response = await client.post("/records", data={"csrf": "forged", "category": "retired_soldier"})
    assert response.status_code == 403
    assert services.drafts.all() == []
    await client.aclose()


async def test_drafts_are_encrypted_at_rest(tmp_path: Path, hashed: str) -> None:
    """A saved draft's name and ID number do not appear in the draft store's files."""
    client, services = make_app(tmp_path, hashed, Verdict(True, "", "授权有效", 300), [])
    csrf = await login(client, "li")
    found = services.people.search("3709")[0]
    response = await client.post("/records", data={"csrf": csrf, "id_number": found.id_number})
    assert response.status_code == 200
    await client.aclose()
    services.drafts.close()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "console").glob("drafts.sqlite3*"))
    assert found.name.encode() not in raw
    assert found.id_number.encode() not in raw


async def test_classified_text_never_reaches_the_draft_even_with_the_person_incomplete(
    tmp_path: Path, hashed: str
) -> None:
    """S-03 on the console: a designation typed into a form field, the person's name or the
    relation is refused and not stored, also while the person section is still empty (the state
    in which the draft used to keep it), and the rest of what was typed is kept."""
    client, services = make_app(tmp_path, hashed, Verdict(True, "", "授权有效", 300), [])
    csrf = await login(client, "li")
    created = await client.post("/records", data={"csrf": csrf})
    record_id = str(created.url).rstrip("/").rsplit("/", 1)[-1]
    response = await client.post(
        f"/records/{record_id}/save",
        data={
            "csrf": csrf,
            "category": "retired_soldier",
            "name": "王三師",
            "service_unit": "陆军第３８集团军１１２师",
            "address": "泰安市泰山区人民路12号",
        },
    )
    assert response.status_code == 422
    assert "未保存" in response.text and "按保密规定不得录入" in response.text
    draft = services.drafts.get(record_id)
    assert draft is not None
    assert "service_unit" not in draft.fields
    assert draft.person.get("name", "") == ""
    assert draft.fields.get("address") == "泰安市泰山区人民路12号"
    await client.aclose()
    services.drafts.close()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "console").glob("drafts.sqlite3*"))
    assert "集团军".encode() not in raw
