"""The comparison runs of the admin's area (read-only): which department, when, who, which
extract, and what was found. Chinese by default, English with ``?lang=en``; the text table is
kept here while the admin's shared text tables are being reorganised."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.admin.access import admin_of
from controller.db.models import ComparisonRun
from muster.departments import DEPARTMENTS

__all__ = ["TEXT", "comparison_router"]

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "title": "部门比对",
        "none": "本区域还没有比对记录",
        "run_at": "比对时间",
        "department": "部门",
        "region": "区域",
        "run_by": "比对人",
        "extract": "部门数据",
        "source": "采集数据",
        "linked": "匹配（身份号码/概率）",
        "problems": "问题数据",
        "missing": "遗漏人员",
        "deaths": "死亡人员",
        "centre": "中心已存记录",
        "all": "全部",
    },
    "en": {
        "title": "Department comparisons",
        "none": "No comparison has been run in this area yet",
        "run_at": "Run at",
        "department": "Department",
        "region": "Region",
        "run_by": "Run by",
        "extract": "Extract",
        "source": "Collected data",
        "linked": "Linked (ID number / probabilistic)",
        "problems": "Problems",
        "missing": "Missing",
        "deaths": "Deaths",
        "centre": "records at the centre",
        "all": "all",
    },
}
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
        t = TEXT[lang]
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
        other = "en" if lang == "zh" else "zh"
        html = (
            f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
            f"<title>{escape(t['title'])}</title></head><body><h1>{escape(t['title'])}</h1>"
            f'<p><a href="?lang={other}">{"English" if other == "en" else "中文"}</a></p>{body}'
            "</body></html>"
        )
        return HTMLResponse(html)

    return router
