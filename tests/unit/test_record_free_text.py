"""S-03 over every string a record or an import row carries, not only the form's text fields:
each row is an attack that got through before (a designation in the name, the audit trail, the
clerk's name, an import column the filter did not look at) and is now refused with the reason."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from edge.simulators.collector import simulated_record
from muster.initial_data import RowRejected, parse_row
from muster.records import AuditEntry, RecordError, RecordPayload, parse_record
from muster.synthetic import dataset_row

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TOWNSHIP = "370902001000"


def record() -> RecordPayload:
    return simulated_record(random.Random(11), TOWNSHIP, NOW)


def with_audit_note(note: str) -> RecordPayload:
    base = record()
    audit = (*base.audit, AuditEntry(at=NOW, clerk=base.reviewed_by, action="edited", note=note))
    return base.model_copy(update={"audit": audit})


def with_audit_change(after: str) -> RecordPayload:
    base = record()
    entry = AuditEntry(
        at=NOW, clerk=base.reviewed_by, action="edited", changes={"address": ("旧址", after)}
    )
    return base.model_copy(update={"audit": (*base.audit, entry)})


def with_audit_change_key(key: str) -> RecordPayload:
    """A change list keyed by what was typed (an older device's free-text field name)."""
    base = record()
    entry = AuditEntry(at=NOW, clerk=base.reviewed_by, action="edited", changes={key: ("", "x")})
    return base.model_copy(update={"audit": (*base.audit, entry)})


def with_audit_change_nested(after: object) -> RecordPayload:
    base = record()
    entry = AuditEntry(
        at=NOW, clerk=base.reviewed_by, action="edited", changes={"service": ([], after)}
    )
    return base.model_copy(update={"audit": (*base.audit, entry)})


def with_person_name(name: str) -> RecordPayload:
    base = record()
    return base.model_copy(update={"person": base.person.model_copy(update={"name": name})})


ATTACKS: list[tuple[str, RecordPayload, str]] = [
    ("name", with_person_name("张3师5团"), "人员信息"),
    ("audit note", with_audit_note("核实：原属第38集团军"), "审计记录"),
    ("audit change", with_audit_change("66017部队营区"), "审计记录"),
    ("audit change key", with_audit_change_key("原38军所属"), "审计记录"),
    (
        "audit change nested",
        with_audit_change_nested([{"unit": "Unit 61398 of the PLA"}]),
        "审计记录",
    ),
]


def test_a_clean_simulated_record_passes() -> None:
    """The baseline: the record the attacks start from is accepted."""
    assert parse_record(record().to_bytes(), today=NOW.date()).record_id == record().record_id


@pytest.mark.parametrize(("where", "payload", "part"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_designations_anywhere_in_a_record_are_refused(
    where: str, payload: RecordPayload, part: str
) -> None:
    """Ingest refuses the record with code "classified" and a message naming the part."""
    with pytest.raises(RecordError) as caught:
        parse_record(payload.to_bytes(), today=NOW.date())
    assert caught.value.code == "classified", where
    assert part in str(caught.value) and "不得录入" in str(caught.value)


@pytest.mark.parametrize("clerk_field", ["entered_by", "reviewed_by"])
def test_a_designation_as_a_clerk_name_is_refused(clerk_field: str) -> None:
    """Who entered or reviewed is free text from the device too."""
    base = record()
    payload = base.model_copy(update={clerk_field: "三師五團"})
    with pytest.raises(RecordError) as caught:
        parse_record(payload.to_bytes(), today=NOW.date())
    # The audit check may speak first (its clerk no longer matches); either way it is refused.
    assert caught.value.code in ("classified", "audit")
    audit = tuple(
        e.model_copy(update={"clerk": "三師五團"}) if e.clerk == getattr(base, clerk_field) else e
        for e in base.audit
    )
    consistent = payload.model_copy(update={"audit": audit})
    with pytest.raises(RecordError) as caught:
        parse_record(consistent.to_bytes(), today=NOW.date())
    assert caught.value.code == "classified"


def row(**changes: str) -> dict[str, Any]:
    from muster.initial_data import COLUMNS

    data = dataset_row(random.Random(4), TOWNSHIP, NOW.date()) | changes
    return {c.header: data[c.key] for c in COLUMNS}


@pytest.mark.parametrize(
    "column", ["name", "service_unit", "household_registration", "service_number"]
)
def test_import_refuses_a_designation_in_any_column(column: str) -> None:
    """An import row with a designation in any column, the name included, is refused as
    classified and names the column."""
    assert parse_row(row(), today=NOW.date())  # the row itself is fine
    with pytest.raises(RowRejected) as caught:
        parse_row(row(**{column: "王１２（师）"}), today=NOW.date())
    assert caught.value.code == "classified"
