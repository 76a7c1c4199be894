"""The console's tasks from the centre and its guards against collecting twice, through the real
app over HTTP with real stores on disk: a returned record opens its earlier values with the
county's reason, is corrected, checked by a second clerk, signed, confirmed and sealed; a
comparison task is disputed with a reason that waits for the next Health call; search marks
who is collected; hostile task ids, reasons and kinds change nothing."""

from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.centre_tasks import CentreTaskStore
from edge.licence_guard import Verdict
from muster.records import RecordPayload
from muster.v1 import data_pb2
from tests.unit import test_console
from tests.unit.test_console import PASSWORD, make_app

hashed = test_console.hashed  # the console tests' fixture, shared

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


def _csrf(text: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', text)
    assert match
    return match.group(1)


async def _login(client: httpx.AsyncClient, username: str) -> str:
    response = await client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200
    return _csrf(response.text)


def _world(
    tmp_path: Path, hashed: str, sealed: list[RecordPayload]
) -> tuple[httpx.AsyncClient, httpx.AsyncClient, Any, CentreTaskStore]:
    client, services = make_app(tmp_path, hashed, Verdict(True, "", "授权有效", 300), sealed)
    other = httpx.AsyncClient(
        transport=client._transport, base_url="http://127.0.0.1", follow_redirects=True
    )
    centre = CentreTaskStore(tmp_path / "centre.sqlite3", tmp_path / "centre.key")
    services.centre = centre
    services.new_id = lambda: str(uuid.uuid4())
    return client, other, services, centre


def _health(services: Any, centre: CentreTaskStore, returned_id: str) -> dict[str, Any]:
    person = services.people.search("3709")[0]
    d = person.details
    values = {
        "person": {
            "name": d["name"],
            "id_number": d["id_number"],
            "sex": d["sex"],
            "birth_date": d["birth_date"],
            "ethnicity": "01",
        },
        "category": d["category"],
        "relation": d["relation"],
        "fields": {"address": "泰安市泰山区旧地址1号", "phone": "13905381234"},
    }
    response = data_pb2.HealthResponse(
        returned_records=[
            data_pb2.ReturnedRecord(
                record_id=returned_id,
                id_number=d["id_number"],
                name=d["name"],
                reason="住址与户籍不符，请核实",
                values_json=json.dumps(values, ensure_ascii=False).encode(),
            )
        ],
        tasks=[
            data_pb2.CentreTask(
                task_id="T7",
                kind="problem",
                id_number=d["id_number"],
                name=d["name"],
                department="civil_affairs",
                department_label="民政",
                differences=[
                    data_pb2.TaskDifference(
                        field="出生日期",
                        collected_value="1960-01-01",
                        department_value="1961-01-01",
                    )
                ],
                person_json=b"{not json" * 1000,  # damaged: the task still shows
            )
        ],
    )
    assert centre.take_health(response)
    assert not centre.take_health(response), "the same answer changes nothing"
    return d


def _complete(draft: Any, now: Any) -> Any:
    """Answer whatever the form still asks with a valid value of each field's kind."""
    from edge.console.workflow import check, edit

    for _ in range(5):
        problems = check(draft, now.date()).problems
        if not problems:
            return draft
        fields = dict(draft.fields)
        for problem in problems:
            f = draft.form.by_key.get(problem.field)
            if f is None:
                continue
            if f.options:
                first = next(iter(f.options))
                fields[f.key] = [first] if f.kind == "multi" else first
            elif f.kind == "date":
                fields[f.key] = "2001-03-04"
            elif f.kind in ("number", "int", "decimal"):
                fields[f.key] = "86"
            else:
                fields[f.key] = "13905381234" if "phone" in f.key else "核实"
        draft = edit(draft, clerk="li", now=now, fields=fields)
    raise AssertionError(check(draft, now.date()).problems)


async def test_a_returned_record_is_corrected_rechecked_and_resealed(
    tmp_path: Path, hashed: str
) -> None:
    sealed: list[RecordPayload] = []
    a, b, services, centre = _world(tmp_path, hashed, sealed)
    returned_id = str(uuid.uuid4())
    person = _health(services, centre, returned_id)
    csrf_a = await _login(a, "li")
    home = await a.get("/")
    assert "中心下发的任务（2）" in home.text
    assert "住址与户籍不符，请核实" in home.text and "县级退回" in home.text
    assert "民政" in home.text and "1961-01-01" in home.text

    started = await a.post(f"/tasks/returned/{returned_id}/start", data={"csrf": csrf_a})
    assert started.status_code == 200
    record_id = str(started.url).rsplit("/", 1)[-1]
    assert "县级退回：住址与户籍不符，请核实" in started.text
    assert "泰安市泰山区旧地址1号" in started.text, "the earlier values, not a blank form"
    again = await a.post(f"/tasks/returned/{returned_id}/start", data={"csrf": csrf_a})
    assert str(again.url).endswith(record_id), "the same correction is reopened, not a second"

    draft = services.drafts.get(record_id)
    assert draft is not None and draft.corrects == returned_id
    from edge.console.workflow import edit, submit

    fixed = edit(
        draft,
        clerk="li",
        now=services.clock.now(),
        fields={**draft.fields, "address": "泰安市泰山区新地址2号"},
        photo_jpeg=JPEG,
    )
    fixed = _complete(fixed, services.clock.now())
    services.drafts.save(submit(fixed, clerk="li", now=services.clock.now()))
    csrf_b = await _login(b, "wang")
    page = await b.post(
        f"/records/{record_id}/review", data={"csrf": csrf_b, "decision": "approve"}
    )
    assert "复核通过" in page.text
    signed = await b.post(
        f"/records/{record_id}/sign",
        data={
            "csrf": csrf_b,
            "signature": "data:image/png;base64," + base64.b64encode(PNG).decode(),
        },
    )
    assert "已签字" in signed.text
    ask = await b.post(f"/records/{record_id}/seal", data={"csrf": csrf_b})
    assert "确认封存" in ask.text and person["name"] in ask.text
    assert sealed == [], "nothing is sealed before the confirmation"
    done = await b.post(f"/records/{record_id}/seal", data={"csrf": csrf_b, "confirm": "yes"})
    assert f"{person['name']} 的记录已封存" in done.text
    assert record_id not in done.text.split('id="sealed"')[1].split("</p>")[0]
    assert len(sealed) == 1 and sealed[0].fields["address"] == "泰安市泰山区新地址2号"
    assert "已重新封存" in done.text
    # Search marks the person as collected and offers no blank record.
    found = await b.get("/", params={"q": person["id_number"][-8:]})
    row = found.text.split(person["id_number"])[1].split("</tr>")[0]
    assert "待上传" in row and "开始采集" not in row
    refused = await b.post("/records", data={"csrf": csrf_b, "id_number": person["id_number"]})
    assert refused.status_code == 409 and "不能重复采集" in refused.text
    assert "今日封存 1 条，累计 1 条" in (await a.get("/")).text
    await a.aclose()
    await b.aclose()


async def test_my_drafts_are_mine_and_an_open_draft_is_reopened(
    tmp_path: Path, hashed: str
) -> None:
    a, b, services, _ = _world(tmp_path, hashed, [])
    csrf_a = await _login(a, "li")
    person = services.people.search("3709")[0]
    first = await a.post("/records", data={"csrf": csrf_a, "id_number": person.id_number})
    record_id = str(first.url).rsplit("/", 1)[-1]
    csrf_b = await _login(b, "wang")
    second = await b.post("/records", data={"csrf": csrf_b, "id_number": person.id_number})
    assert str(second.url).endswith(record_id), "the existing record, not a blank one"
    assert len(services.drafts.all()) == 1
    home_b = (await b.get("/")).text
    mine = home_b.split("我的录入")[1].split("</section>")[0]
    assert person.name not in mine
    assert person.name in home_b.split("其他工作人员的录入")[1].split("</section>")[0]
    await a.aclose()
    await b.aclose()


@pytest.mark.parametrize(
    ("path", "data", "status"),
    [
        ("/tasks/centre/T7/dispute", {"reason": ""}, 422),
        ("/tasks/centre/T7/dispute", {"reason": "理" * 501}, 422),
        ("/tasks/centre/T999/dispute", {"reason": "核对了户口本"}, 422),
        ("/tasks/centre/T0/dispute", {"reason": "x"}, 404),
        ("/tasks/centre/..%2F..%2Fetc/dispute", {"reason": "x"}, 404),
        ("/tasks/centre/T7' OR 1=1/start", {}, 404),
        ("/tasks/returned/not-a-record/start", {}, 404),
        (f"/tasks/returned/{uuid.UUID(int=1)}/start", {}, 404),
        (f"/tasks/rejected/{uuid.UUID(int=2)}/start", {}, 404),
        ("/tasks/everything/T7/start", {}, 404),
        ("/tasks/centre/" + "T" + "9" * 5000 + "/start", {}, 404),
    ],
)
async def test_hostile_task_requests_change_nothing(
    tmp_path: Path, hashed: str, path: str, data: dict[str, str], status: int
) -> None:
    a, b, services, centre = _world(tmp_path, hashed, [])
    _health(services, centre, str(uuid.uuid4()))
    csrf = await _login(a, "li")
    response = await a.post(path, data={"csrf": csrf, **data})
    assert response.status_code == status, response.text
    assert services.drafts.all() == []
    assert centre.answers() == []
    forged = await a.post("/tasks/centre/T7/dispute", data={"csrf": "forged", "reason": "x"})
    assert forged.status_code == 403 and centre.answers() == []
    await a.aclose()
    await b.aclose()


async def test_a_dispute_waits_for_health_and_its_result_is_kept(
    tmp_path: Path, hashed: str
) -> None:
    a, b, services, centre = _world(tmp_path, hashed, [])
    _health(services, centre, str(uuid.uuid4()))
    csrf = await _login(a, "li")
    answered = await a.post(
        "/tasks/centre/T7/dispute", data={"csrf": csrf, "reason": "  核对了户口本，出生日期无误  "}
    )
    assert answered.status_code == 200 and "将在下次连接中心时上报" in answered.text
    assert "（待上报）" in answered.text
    twice = await a.post("/tasks/centre/T7/dispute", data={"csrf": csrf, "reason": "再说一次"})
    assert twice.status_code == 422 and "已经答复过" in twice.text
    request = centre.add_answers(data_pb2.HealthRequest())
    (sent,) = request.task_answers
    assert (sent.task_id, sent.answer, sent.reason, sent.clerk) == (
        "T7",
        "disputed",
        "核对了户口本，出生日期无误",
        "li",
    )
    centre.take_health(
        data_pb2.HealthResponse(
            task_answer_results=[data_pb2.TaskAnswerResult(task_id="T7", accepted=True)]
        )
    )
    assert not centre.add_answers(data_pb2.HealthRequest()).task_answers
    assert "中心下发的任务（0）" in (await a.get("/")).text
    await a.aclose()
    await b.aclose()
