"""The S-30 form, materials and checks (muster.one_application) and the signed wire
(muster.application_wire): each rule with good input and hostile input."""

from __future__ import annotations

import datetime as dt
import json
from datetime import UTC, datetime, timedelta

import pytest
from stdnum import luhn
from stdnum.cn import ric

from muster.application_wire import (
    TRANSITIONS,
    Callback,
    CallbackRefused,
    delivery_delay,
    new_secret,
    parse_callback,
    retryable_status,
    sign,
    verify,
)
from muster.errors import ConfigError
from muster.one_application import (
    FIELDS,
    ITEMS,
    MATERIAL_MAX_BYTES,
    ApplicationError,
    check_application,
    check_material,
    fields_for,
    materials_for,
    payload_for_item,
)

TODAY = dt.date(2026, 12, 1)
NUMBER = "37100219900307001" + ric.calc_check_digit("37100219900307001" + "0")
ACCOUNT = "621700123456789012" + luhn.calc_check_digit("621700123456789012")
GOOD = {
    "name": "张伟",
    "id_number": NUMBER,
    "phone": "13800000000",
    "township": "371002001000",
    "address": "环翠区文化中路 1 号",
    "service_type": "conscript",
    "placement": "self_employed",
    "enlisted_on": "2022-09-01",
    "discharged_on": "2024-09-01",
    "police_station": "环翠派出所",
    "bank_name": "中国建设银行",
    "bank_account": ACCOUNT,
    "job_wish": "驾驶员",
    "training_wish": "电工",
    "contribution_grade": "60",
}


def test_ten_items_and_every_field_and_material_they_name_exists() -> None:
    """The table is whole: ten items, each naming only known fields and materials."""
    assert len(ITEMS) == 10
    for item in ITEMS.values():
        assert set(item.fields) <= set(FIELDS)


def test_a_field_needed_by_several_items_is_asked_once() -> None:
    """No field asked twice: the form for all ten items lists each field once."""
    form = fields_for(ITEMS)
    assert len(form) == len(set(form)) == len(FIELDS)
    assert fields_for(["idcard", "sscard"]).count("name") == 1


def test_materials_follow_the_items_and_the_service_type() -> None:
    """A material several items need appears once; conscripts bring the conscript's medical
    transfer, officers the account transfer and the annuity record."""
    assert (
        materials_for(["discharge", "grant", "hukou"], "conscript").count("discharge_certificate")
        == 1
    )
    assert "conscript_medical" in materials_for(["medtransfer"], "conscript")
    assert "medical_account" not in materials_for(["medtransfer"], "conscript")
    officer = materials_for(["medtransfer", "pension"], "officer")
    assert {"medical_account", "annuity_paid"} <= set(officer)
    assert materials_for(["employment"], "officer") == ()


def test_a_complete_application_has_no_problems() -> None:
    assert check_application(ITEMS, GOOD, today=TODAY) == ()


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("id_number", NUMBER[:-1] + ("0" if NUMBER[-1] != "0" else "1"), "校验位"),
        ("id_number", "12345", "18位"),
        ("phone", "2380000000", "11 位"),
        ("township", "37100200", "12 位"),
        ("bank_account", ACCOUNT[:-1] + str((int(ACCOUNT[-1]) + 1) % 10), "校验位"),
        ("bank_account", "1234", "16 至 19"),
        ("discharged_on", "2024-13-01", "年-月-日"),
        ("discharged_on", "2030-01-01", "晚于今天"),
        ("service_type", "general", "选择"),
        ("name", "张\x00伟", "控制字符"),
        ("address", "长" * 101, "100"),
    ],
)
def test_each_bad_field_is_named_with_what_to_do(field: str, value: str, needle: str) -> None:
    problems = check_application(ITEMS, {**GOOD, field: value}, today=TODAY)
    assert [p.field for p in problems] == [field], problems
    assert needle in problems[0].zh


def test_rules_between_fields() -> None:
    """Discharged before enlisting, enlisted under 16, a grant for a non-self-employed."""
    wrong = check_application(ITEMS, {**GOOD, "enlisted_on": "2025-01-01"}, today=TODAY)
    assert "discharged_on" in [p.field for p in wrong]
    young = check_application(ITEMS, {**GOOD, "enlisted_on": "2005-01-01"}, today=TODAY)
    assert "16 周岁" in young[0].zh
    assigned = check_application(["grant"], {**GOOD, "placement": "assigned"}, today=TODAY)
    assert assigned[0].field == "placement"


def test_a_draft_may_be_incomplete_but_not_wrong() -> None:
    assert check_application(["idcard"], {"name": "张伟"}, today=TODAY, draft=True) == ()
    assert (
        check_application(["idcard"], {"phone": "1"}, today=TODAY, draft=True)[0].field == "phone"
    )
    missing = check_application(["idcard"], {"name": "张伟"}, today=TODAY)
    assert {p.field for p in missing} == {"id_number", "phone", "police_station", "township"}


def test_unknown_items_and_fields_are_refused() -> None:
    assert check_application(["nope"], GOOD, today=TODAY)[0].field == "items"
    assert check_application([], {}, today=TODAY)[0].field == "items"
    assert check_application(["idcard"], {**GOOD, "evil": "x"}, today=TODAY)[0].field == "evil"


def test_materials_are_checked_by_content() -> None:
    """Only PDF/JPEG/PNG, by their bytes; oversize, empty, mislabelled and unknown refused."""
    assert check_material("photo", b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert check_material("photo", b"%PDF-1.7 x", "application/pdf") == "application/pdf"
    with pytest.raises(ApplicationError, match="PDF、JPG 或 PNG"):
        check_material("photo", b"MZ\x90\x00 an exe")
    with pytest.raises(ApplicationError, match="不符"):
        check_material("photo", b"%PDF-1.7 x", "image/png")
    with pytest.raises(ApplicationError, match="超过 5 MB"):
        check_material("photo", b"%PDF-" + b"0" * MATERIAL_MAX_BYTES)
    with pytest.raises(ApplicationError, match="空"):
        check_material("photo", b"")
    with pytest.raises(ApplicationError, match="没有这种材料"):
        check_material("../etc/passwd", b"%PDF-")


def test_each_department_gets_only_its_fields_and_materials() -> None:
    """Data minimisation: the police never see the bank account; the ID card office gets the
    photo and no discharge certificate."""
    materials = dict.fromkeys(materials_for(ITEMS, "conscript"), "sha")
    fields, sent = payload_for_item("idcard", GOOD, materials)
    assert "bank_account" not in fields and set(fields) == set(ITEMS["idcard"].fields)
    assert set(sent) == {"photo"}
    hukou_fields, _ = payload_for_item("hukou", GOOD, materials)
    assert "bank_account" not in hukou_fields and "job_wish" not in hukou_fields
    grant_fields, _ = payload_for_item("grant", GOOD, materials)
    assert grant_fields["bank_account"] == ACCOUNT
    with pytest.raises(ApplicationError, match="尚未上传"):
        payload_for_item("idcard", GOOD, {})


NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_a_signed_message_verifies_and_any_change_is_refused() -> None:
    secret = new_secret()
    body = Callback("msg_1", "received").to_json()
    headers = sign(secret, "cb_1", NOW, body)
    assert verify(secret, headers, body, now=NOW + timedelta(seconds=10)) == "cb_1"
    cases = [
        (new_secret(), headers, body, "bad_signature"),
        (secret, headers, body + b" ", "bad_signature"),
        (secret, {**headers, "webhook-id": "cb_2"}, body, "bad_signature"),
        (secret, {**headers, "webhook-signature": "v1,!!!"}, body, "bad_signature"),
        (secret, {**headers, "webhook-signature": "garbage"}, body, "bad_signature"),
        (secret, {**headers, "webhook-timestamp": "abc"}, body, "bad_headers"),
        (secret, {"webhook-id": "x"}, body, "missing_headers"),
        (secret, headers, b"\xff\xfe", "bad_body"),
    ]
    for key, hdrs, data, reason in cases:
        with pytest.raises(CallbackRefused) as refused:
            verify(key, hdrs, data, now=NOW)
        assert refused.value.reason == reason


def test_a_replay_outside_the_tolerance_is_refused() -> None:
    secret = new_secret()
    body = b"{}"
    headers = sign(secret, "cb_1", NOW, body)
    for skew in (-301, 301):
        with pytest.raises(CallbackRefused) as refused:
            verify(secret, headers, body, now=NOW + timedelta(seconds=skew))
        assert refused.value.reason == "stale_timestamp"


def test_the_signature_is_the_standard_webhooks_one() -> None:
    """The package's own verify accepts what we sign (so departments can use any SW library)."""
    from standardwebhooks.webhooks import Webhook

    secret = new_secret()
    body = b'{"a": 1}'
    at = datetime.now(UTC)  # the package's verify reads the wall clock itself
    assert Webhook(secret).verify(body, sign(secret, "m", at, body)) == {"a": 1}
    with pytest.raises(ConfigError):
        sign("whsec_", "m", at, body)


def test_callbacks_are_read_strictly() -> None:
    ok = parse_callback(
        json.dumps(
            {"delivery_id": "d", "status": "more_materials", "materials": ["photo"]}
        ).encode()
    )
    assert ok.materials == ("photo",)
    for body, reason in [
        (b"[]", "bad_body"),
        (b"not json", "bad_body"),
        (b'{"delivery_id": "d", "status": "won"}', "bad_status"),
        (b'{"status": "done"}', "bad_body"),
        (b'{"delivery_id": "d", "status": "more_materials"}', "bad_body"),
        (b'{"delivery_id": "d", "status": "done", "materials": [1]}', "bad_body"),
        (b'{"delivery_id": "d", "status": "accepted", "appointment_at": "tomorrow"}', "bad_body"),
        (b" " * 70000, "too_large"),
    ]:
        with pytest.raises(CallbackRefused) as refused:
            parse_callback(body)
        assert refused.value.reason == reason, body[:60]


def test_transitions_and_retry_rules() -> None:
    assert "done" in TRANSITIONS["accepted"] and TRANSITIONS["done"] == ()
    assert [s for s in (200, 400, 404, 408, 409, 429, 500, 503) if retryable_status(s)] == [
        408,
        429,
        500,
        503,
    ]


def test_the_delivery_backoff_grows_with_jitter_and_replays() -> None:
    delays = [delivery_delay(n, "msg_x") for n in range(1, 8)]
    assert delays == [delivery_delay(n, "msg_x") for n in range(1, 8)]
    assert delays != [delivery_delay(n, "msg_y") for n in range(1, 8)]
    for n, delay in enumerate(delays, start=1):
        assert 0.5 * 2.0 * 2 ** (n - 1) <= delay < 1.5 * 2.0 * 2 ** (n - 1)
    assert delivery_delay(40, "msg_x") < 1.5 * 3600
