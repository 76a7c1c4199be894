"""The comparison runs of the admin's area (read-only): which department, when, who, which
extract, and what was found. Chinese by default, English with ``?lang=en``; the words are
``controller/admin/text/comparison.py``'s."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.admin.access import admin_of
from controller.admin.text import other_lang, texts
from controller.db.models import ComparisonRun
from muster.departments import DEPARTMENTS

__all__ = ["comparison_router"]

_REGION = r"^\d{0,12}$"


def _view(run: ComparisonRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "run_at": run.run_at.isoformat(timespec="seconds"),
        "department": run.department,
        "region": run.region_prefix,
        "run_by": run.run_by,
        "extract_id": run.extract_id,
        "collected_source": run.collected_source,
        "engine": run.engine,
        "department_rows": run.department_rows,
        "collected_rows": run.collected_rows,
        "linked_exact": run.linked_exact,
        "linked_probabilistic": run.linked_probabilistic,
        "problems": run.problems,
        "missing": run.missing,
        "deaths": run.deaths,
    }


def comparison_router(sessions: sessionmaker[Session]) -> APIRouter:
    router = APIRouter()

    def runs(area: str) -> list[dict[str, Any]]:
        with sessions() as session:
            query = (
                select(ComparisonRun)
                .where(ComparisonRun.region_prefix.startswith(area))
                .order_by(ComparisonRun.run_at.desc(), ComparisonRun.id.desc())
                .limit(500)
            )
            return [_view(r) for r in session.scalars(query)]

    @router.get("/api/v1/comparisons", tags=["comparison"])
    def api_comparisons(
        request: Request, region: str = Query("", pattern=_REGION)
    ) -> list[dict[str, Any]]:
        """Comparison runs in your area, newest first."""
        return runs(admin_of(request).narrow(region))

    @router.get("/comparisons", response_class=HTMLResponse, include_in_schema=False)
    def comparisons_page(
        request: Request,
        lang: str = Query("zh", pattern="^(zh|en)$"),
        region: str = Query("", pattern=_REGION),
    ) -> HTMLResponse:
        t = texts(lang, "comparison")
        found = runs(admin_of(request).narrow(region))
        heads = (
            "run_at",
            "department",
            "region",
            "run_by",
            "extract",
            "source",
            "linked",
            "problems",
            "missing",
            "deaths",
        )
        rows = []
        for r in found:
            spec = DEPARTMENTS.get(r["department"])
            name = (spec.name if lang == "zh" else spec.kind) if spec else r["department"]
            source = t["centre"] if r["collected_source"] == "centre" else r["collected_source"]
            cells = (
                r["run_at"],
                name,
                r["region"] or t["all"],
                r["run_by"],
                r["extract_id"][:16],
                source,
                f"{r['linked_exact']} / {r['linked_probabilistic']}",
                r["problems"],
                r["missing"],
                r["deaths"],
            )
            rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
        body = (
            "<table><thead><tr>"
            + "".join(f"<th>{escape(t[h])}</th>" for h in heads)
            + "</tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table>"
            if rows
            else f"<p>{escape(t['none'])}</p>"
        )
        other = other_lang(lang)
        html = (
            f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
            f"<title>{escape(t['title'])}</title></head><body><h1>{escape(t['title'])}</h1>"
            f'<p><a href="?lang={other}">{escape(t["switch"])}</a></p>{body}'
            "</body></html>"
        )
        return HTMLResponse(html)

    return router
