"""The admin's data-flow and alert queries run on the current SQLAlchemy without deprecated calls
(tests run with warnings as errors) and answer what the pages show."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from controller.admin.fleet_queries import open_alerts, records_per_hour, regions
from controller.db.models import Alert, Device, Record
from edge.simulators.collector import simulated_record
from tests.unit.conftest import NOW


def _device(session: Session, device_id: str, township: str) -> None:
    session.add(
        Device(
            id=device_id,
            township_code=township,
            profile="simulator",
            certificate_pem="",
            certificate_serial=device_id,
            fingerprint={},
            enrolled_at=NOW,
            last_heartbeat={},
        )
    )


def test_records_per_hour_and_open_alerts(sessions: sessionmaker[Session]) -> None:
    """Records are counted in their hour and region; only unresolved alerts in the region show."""
    with sessions.begin() as session:
        _device(session, "370902001000-AAAAAA", "370902001000")
        _device(session, "370911001000-BBBBBB", "370911001000")
        session.flush()
        rng = random.Random(1)
        for i, (device, township, ago) in enumerate(
            [
                ("370902001000-AAAAAA", "370902001000", 0),
                ("370902001000-AAAAAA", "370902001000", 0),
                ("370902001000-AAAAAA", "370902001000", 2),
                ("370911001000-BBBBBB", "370911001000", 0),
            ]
        ):
            payload = simulated_record(rng, township, NOW)
            session.add(
                Record(
                    record_id=f"r{i}",
                    device_id=device,
                    content_hash=f"h{i}",
                    schema_version="x/1",
                    key_version=1,
                    township_code=township,
                    category=payload.category.value,
                    sealed_at=NOW,
                    received_at=NOW - timedelta(hours=ago),
                    payload=payload.model_dump(mode="json"),
                )
            )
        session.add(
            Alert(
                device_id="370902001000-AAAAAA",
                kind="offline",
                message="离线",
                raised_at=NOW,
                open_key="a:offline",
            )
        )
        session.add(
            Alert(
                device_id="370911001000-BBBBBB",
                kind="offline",
                message="离线",
                raised_at=NOW,
                open_key="b:offline",
            )
        )
        session.add(
            Alert(
                device_id="370902001000-AAAAAA",
                kind="backlog",
                message="积压",
                raised_at=NOW,
                resolved_at=NOW,
            )
        )
    with sessions() as session:
        hours = records_per_hour(session, NOW, hours=4, prefix="370902")
        alerts = open_alerts(session, prefix="370902")
    assert [n for _label, n in hours] == [0, 1, 0, 2]
    assert [(a.kind, township) for a, township in alerts] == [("offline", "370902001000")]


def test_regions_count_one_level_down_and_stop_at_the_township(
    sessions: sessionmaker[Session],
) -> None:
    """The rows under a prefix are its children one level down (the nation's are provinces, a
    county's are townships, named by the region tree or else "泰山区 001 乡镇"); a township has no rows below it."""
    with sessions.begin() as session:
        _device(session, "370902001000-AAAAAA", "370902001000")
        _device(session, "370902002000-CCCCCC", "370902002000")
        _device(session, "370911001000-BBBBBB", "370911001000")
        _device(session, "110101001000-DDDDDD", "110101001000")
    with sessions() as session:
        assert [(r.code, r.devices) for r in regions(session, "")] == [("11", 1), ("37", 3)]
        assert [(r.code, r.devices) for r in regions(session, "37")] == [("3709", 3)]
        assert [(r.code, r.name, r.devices) for r in regions(session, "3709")] == [
            ("370902", "泰山区", 2),
            ("370911", "岱岳区", 1),
        ]
        assert [(r.code, r.name) for r in regions(session, "370902")] == [
            ("370902001", "泰山区 001 乡镇"),
            ("370902002", "泰山区 002 乡镇"),
        ]
        assert regions(session, "370902001") == []
