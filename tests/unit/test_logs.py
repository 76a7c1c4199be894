"""Logs never carry ID numbers or secrets in clear (S-13)."""

from __future__ import annotations

from muster.logs import redact


def test_id_numbers_are_masked_wherever_they_appear() -> None:
    """An ID number inside any string value keeps only its region and its last four characters."""
    event = redact(
        None, "info", {"event": "read 11010519491231002X ok", "note": "x 370902194001011236"}
    )
    assert event["event"] == "read 110105********002X ok"
    assert "19400101" not in event["note"]


def test_secret_fields_are_replaced() -> None:
    """Passwords, enrolment codes, keys and tokens are never written."""
    event = redact(
        None, "info", {"event": "e", "password": "p", "enrollment_code": "K7QF-2M9D", "token": "t"}
    )
    assert event["password"] == event["enrollment_code"] == event["token"] == "***"
    assert redact(None, "info", {"event": "e", "status": "UNAVAILABLE"})["status"] == "UNAVAILABLE"
