"""Records the county sent back for correction (S-09), as the controller lists them in every
Health answer: kept in ``STATE_DIR/returned.json`` so the console can show the clerks which
records to redo and why, also while the device is offline. The file is replaced whole (written
beside, synced, renamed), so a crash leaves the old list or the new one."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from muster.v1 import data_pb2

__all__ = ["FILE_NAME", "read_returned", "write_returned"]

FILE_NAME = "returned.json"


def _entries(records: Sequence[data_pb2.ReturnedRecord]) -> list[dict[str, Any]]:
    return [
        {
            "record_id": r.record_id,
            "id_number": r.id_number,
            "name": r.name,
            "reason": r.reason,
            "returned_at": r.returned_at.ToDatetime().isoformat() + "Z",
        }
        for r in records
    ]


def write_returned(state_dir: Path, records: Sequence[data_pb2.ReturnedRecord]) -> bool:
    """Store the list; True when it changed."""
    path = state_dir / FILE_NAME
    text = json.dumps(_entries(records), ensure_ascii=False, indent=1)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    partial = path.with_name(FILE_NAME + ".partial")
    with partial.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    partial.replace(path)
    return True


def read_returned(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / FILE_NAME
    if not path.exists():
        return []
    loaded = json.loads(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, list) else []
