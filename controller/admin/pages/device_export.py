"""The device list of the current filter (region, state, alerting, search) as XLSX or CSV, of
the admin's area only; every text goes through ``muster.spreadsheets`` so a device id or a
state reason that reads as a formula stays text."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from openpyxl import Workbook
from sqlalchemy.orm import Session, sessionmaker

from controller.admin import fleet_queries as q
from controller.admin.access import admin_of
from controller.admin.pages.rendering import LANG, REGION, Store, xlsx_response
from controller.admin.reader_time import reader_time
from controller.admin.text import texts
from controller.records.xlsx_reports import stamp
from muster.clock import Clock
from muster.spreadsheets import csv_row, xlsx_row

__all__ = ["EXPORT_LIMIT", "device_export_router", "device_rows"]

# The fleet's planned size: one file holds every device of a province.
EXPORT_LIMIT = 100_000
_COLUMNS = (
    "device_id",
    "township",
    "profile",
    "state",
    "reason",
    "last_seen",
    "outbox",
    "licence",
    "alerts",
)


def device_rows(session: Session, f: q.DeviceFilter, lang: str) -> Iterator[list[Any]]:
    """The header row in ``lang``, then one row per device of the filter (every page)."""
    t = texts(lang, "fleet")
    yield [t[c] for c in _COLUMNS]
    found = q.devices(
        session, q.DeviceFilter(f.region, f.state, f.alerting, f.query, 1, EXPORT_LIMIT)
    )
    for d in found.devices:
        yield [
            d.id,
            d.township_code,
            d.profile,
            t.get(d.state, d.state),
            d.state_reason,
            reader_time(d.last_seen, lang) if d.last_seen else "",
            d.outbox_depth,
            d.licence_days_left,
            " ".join(t.get(f"alert_{k}", k) for k in found.open_alerts.get(d.id, [])),
        ]


def device_export_router(sessions: sessionmaker[Session], clock: Clock) -> APIRouter:
    router = APIRouter()
    store = Store(sessions)

    def chosen(
        request: Request, region: str, state: str, alerting: bool, query: str
    ) -> q.DeviceFilter:
        return q.DeviceFilter(admin_of(request).narrow(region), state, alerting, query)

    def name(f: q.DeviceFilter, now: datetime, suffix: str) -> str:
        return f"devices-{f.region or 'all'}-{stamp(now)}.{suffix}"

    @router.get("/devices.xlsx", tags=["exports"])
    def devices_xlsx(
        request: Request,
        lang: str = Query("zh", pattern=LANG),
        region: str = Query("", pattern=REGION),
        state: str = Query("", pattern=r"^(|online|stale|offline)$"),
        alerting: bool = False,
        q_: str = Query("", alias="q", max_length=40),
    ) -> Response:
        """The device list of the filter (your area, or a part of it) as XLSX."""
        f = chosen(request, region, state, alerting, q_)

        def build(path: Any) -> None:
            book = Workbook(write_only=True)
            sheet = book.create_sheet(texts(lang, "fleet")["devices"])
            store.read(
                lambda s: [sheet.append(xlsx_row(sheet, r)) for r in device_rows(s, f, lang)]
            )
            book.save(path)

        return xlsx_response(build, name(f, clock.now(), "xlsx"))

    @router.get("/devices.csv", tags=["exports"])
    def devices_csv(
        request: Request,
        lang: str = Query("zh", pattern=LANG),
        region: str = Query("", pattern=REGION),
        state: str = Query("", pattern=r"^(|online|stale|offline)$"),
        alerting: bool = False,
        q_: str = Query("", alias="q", max_length=40),
    ) -> Response:
        """The device list of the filter (your area, or a part of it) as CSV (UTF-8 with BOM,
        so Excel opens the Chinese correctly)."""
        f = chosen(request, region, state, alerting, q_)
        out = io.StringIO()
        writer = csv.writer(out)
        store.read(lambda s: [writer.writerow(csv_row(r)) for r in device_rows(s, f, lang)])
        return Response(
            "\ufeff" + out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name(f, clock.now(), "csv")}"'
            },
        )

    return router
