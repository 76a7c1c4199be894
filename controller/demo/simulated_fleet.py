"""Registering the load simulator's devices (``muster sim fleet``) without enrolling each one: a
simulator facility for the benchmark and for trying the admin pages at national scale.

The rows are marked as simulated (no certificate, ``device_model`` says so), so they can never
connect over gRPC: the data port admits only the certificate serial enrolment recorded.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Device
from muster.fleet_layout import SIMULATED_MARK, simulated_fleet

SIMULATED_MODEL = "模拟设备 (muster sim fleet)"
_CHUNK = 5000


def register_simulated(
    sessions: sessionmaker[Session],
    count: int,
    *,
    first: int = 0,
    now: datetime,
    progress: bool = False,
) -> int:
    """Insert the simulated devices ``first .. first+count-1`` that are not registered yet;
    returns how many were added. Safe to run again."""
    added = 0
    devices = simulated_fleet(count, first)
    for start in range(0, len(devices), _CHUNK):
        chunk = devices[start : start + _CHUNK]
        with sessions.begin() as session:
            known = set(
                session.scalars(
                    select(Device.id).where(Device.id.in_([d.device_id for d in chunk]))
                )
            )
            rows = [
                {
                    "id": d.device_id,
                    "township_code": d.township_code,
                    "profile": d.profile,
                    "device_model": SIMULATED_MODEL,
                    "certificate_pem": "",
                    "certificate_serial": f"simulated{SIMULATED_MARK}{d.index:06d}",
                    "fingerprint": {},
                    "software_version": "",
                    "enrolled_at": now,
                    "revoked_reason": "",
                    "online": False,
                    "heartbeat_sequence": 0,
                    "outbox_depth": 0,
                    "collection_allowed": False,
                    "collection_refusal": "",
                    "clock_skew_s": 0.0,
                    "records_received": 0,
                    "last_heartbeat": {},
                    "state": "offline",
                    "state_reason": "尚未上线",
                    "backlog_rising": 0,
                }
                for d in chunk
                if d.device_id not in known
            ]
            if rows:
                session.execute(insert(Device), rows)
            added += len(rows)
        if progress:
            print(f"\r已登记 registered {start + len(chunk)}/{count}", end="", flush=True)
    if progress:
        print(flush=True)
    return added
