"""Hostile records at the centre's door: every malformed or oversized record is refused alone,
with a ``RecordError`` that says why, and no other exception escapes ``parse_record`` (an
exception of another kind would abort the whole upload batch)."""

from __future__ import annotations

import contextlib
import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.simulators.collector import simulated_record
from muster.forms import current_form
from muster.records import RECORD_MAX_BYTES, RecordError, parse_record

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TODAY = NOW.date()


def base() -> dict[str, Any]:
    payload = simulated_record(random.Random(21), "370902001000", NOW)
    data: dict[str, Any] = json.loads(payload.to_bytes())
    return data


def number_field(category: str) -> str:
    return next(f.key for f in current_form(category).fields if f.kind == "number")


def refused(data: dict[str, Any] | bytes) -> RecordError:
    raw = data if isinstance(data, bytes) else json.dumps(data, ensure_ascii=False).encode()
    with pytest.raises(RecordError) as caught:
        parse_record(raw, today=TODAY)
    return caught.value


def test_the_base_record_is_accepted() -> None:
    """The starting point of every attack below is a record the centre stores."""
    assert parse_record(json.dumps(base()).encode(), today=TODAY)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_a_nan_or_infinite_number_is_refused_as_a_form_problem(value: str) -> None:
    """NaN and Infinity pass the JSON parser; they are refused as a bad number, not raised."""
    data = None
    for seed in range(50):
        candidate = json.loads(
            simulated_record(random.Random(seed), "370902001000", NOW).to_bytes()
        )
        try:
            key = number_field(candidate["category"])
        except StopIteration:
            continue
        data = candidate
        break
    assert data is not None, "no category with a number field"
    data["fields"][key] = 1
    text = json.dumps(data).replace(f'"{key}": 1', f'"{key}": {value}')
    error = refused(text.encode())
    assert error.code == "form" and "数字" in str(error)


@pytest.mark.parametrize(
    "record_id",
    [
        "x" * 41,
        'abc"; filename="evil.exe',
        "0f8b\r\nSet-Cookie: a=b",
        "0f8b\x00",
        "../../etc/passwd",
        "",
        "0F8B1C2D-0000-4000-8000-000000000000",  # upper case: not the device's spelling
    ],
)
def test_record_ids_must_be_canonical_uuids(record_id: str) -> None:
    """A record id names files, keys and download headers: anything but a canonical UUID is a
    schema error, before the database sees it."""
    data = base() | {"record_id": record_id}
    error = refused(data)
    assert error.code == "schema" and "record_id" in str(error)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("entered_by",), "e" * 65),
        (("relation",), "父" * 17),
        (("form_version",), "v" * 17),
        (("person", "id_number"), "1" * 33),
        (("audit", 0, "note"), "备" * 501),
    ],
)
def test_every_string_part_is_bounded(path: tuple[Any, ...], value: str) -> None:
    """Each free string of the envelope has a length bound checked before any rule or the
    database (a 40-character record id used to abort a PostgreSQL batch with DataError)."""
    data = base()
    target: Any = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    assert refused(data).code == "schema"


def test_an_oversized_record_is_refused_before_it_is_parsed() -> None:
    """5.8 MB of audit changes used to be stored; a record over the bound is refused whole."""
    data = base()
    data["audit"][0]["changes"] = {"address": ["", "x" * (RECORD_MAX_BYTES + 1)]}
    error = refused(data)
    assert error.code == "too_large" and "KiB" in str(error)


def test_too_many_audit_entries_or_changes_are_refused() -> None:
    """Counts are bounded too, not only sizes."""
    data = base()
    entry = data["audit"][0]
    data["audit"] = [entry] * 201
    assert refused(data).code == "schema"
    data = base()
    data["audit"][0]["changes"] = {f"k{i}": ["", "y"] for i in range(101)}
    assert refused(data).code == "schema"


_json: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    key_path=st.lists(
        st.sampled_from(["person", "fields", "audit", "attachments", "name", "note"]), max_size=3
    ),
    value=_json,
    seed=st.integers(0, 30),
)
def test_any_mutation_of_a_record_is_accepted_or_refused_never_raised(
    key_path: list[str], value: Any, seed: int
) -> None:
    """Fuzz: put any JSON value anywhere along a path into a valid record; ``parse_record``
    either accepts it or raises ``RecordError`` — nothing else (ValueError, OverflowError,
    TypeError, KeyError used to escape and abort the batch)."""
    data: Any = json.loads(simulated_record(random.Random(seed), "370902001000", NOW).to_bytes())
    target = data
    for key in key_path[:-1]:
        if isinstance(target, dict) and isinstance(target.get(key), dict):
            target = target[key]
    if key_path and isinstance(target, dict):
        target[key_path[-1]] = value
    elif isinstance(data.get("fields"), dict):
        for field in list(data["fields"])[: seed % 5]:
            data["fields"][field] = value
    raw = json.dumps(data, ensure_ascii=False, allow_nan=True).encode()
    with contextlib.suppress(RecordError):
        parse_record(raw, today=TODAY)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_are_refused_with_a_reason(raw: bytes) -> None:
    """Bytes that are not a record at all are a schema refusal."""
    with pytest.raises(RecordError):
        parse_record(raw, today=TODAY)
