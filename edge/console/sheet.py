"""The printable confirmation sheet (S-07): what was collected, for the person to check and
sign. A PDF rendered with a CJK TrueType font from the system (Debian: fonts-droid-fallback)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from fpdf import FPDF

from edge.console.workflow import PERSON_LABELS, Draft
from muster.errors import ConfigError
from muster.forms.codelists import ETHNICITIES, RELATIONS
from muster.records import category_name

FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),
    Path("/usr/share/fonts-droid-fallback/truetype/DroidSansFallback.ttf"),
)


# The CJK font has no Latin glyphs: digits and letters come from DejaVu.
LATIN_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def cjk_font() -> Path:
    for path in FONT_CANDIDATES:
        if path.exists():
            return path
    raise ConfigError(
        "找不到中文字体，无法生成确认单：请安装 fonts-droid-fallback（bash scripts/setup.sh 会安装）"
    )


def _fonts(pdf: FPDF) -> None:
    cjk = cjk_font()
    if not LATIN_FONT.exists():
        raise ConfigError("找不到 DejaVu 字体，无法生成确认单：请安装 fonts-dejavu-core")
    pdf.add_font("latin", fname=str(LATIN_FONT))
    pdf.add_font("cjk", fname=str(cjk))
    pdf.set_fallback_fonts(["cjk"])


def display_value(draft: Draft, key: str, value: Any) -> str:
    """A stored value as a clerk reads it: labels for codes, 男/女, lists joined."""
    if value in (None, "", []):
        return ""
    if key == "sex":
        return {"1": "男", "2": "女"}.get(str(value), str(value))
    if key == "ethnicity":
        return ETHNICITIES.get(str(value), str(value)) + ("族" if value not in ("97", "98") else "")
    if key == "category":
        return category_name(str(value))
    if key == "relation":
        return RELATIONS.get(str(value), str(value))
    f = draft.form.by_key.get(key)
    if f is not None and f.options:
        if isinstance(value, list):
            return "、".join(f.options.get(str(v), str(v)) for v in value)
        return f.options.get(str(value), str(value))
    return str(value)


def field_label(draft: Draft, key: str) -> str:
    if key in PERSON_LABELS:
        return PERSON_LABELS[key]
    if key == "photo":
        return "照片"
    f = draft.form.by_key.get(key)
    return f.label if f else key


def confirmation_sheet(draft: Draft, *, township_name: str, clerks: dict[str, str]) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    _fonts(pdf)
    pdf.add_page()
    pdf.set_font("latin", size=16)
    pdf.cell(0, 10, "优抚对象信息采集确认单", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("latin", size=9)
    pdf.cell(
        0,
        6,
        f"{township_name}    {draft.form.title}（第 {draft.form.version} 版）    记录编号 {draft.record_id}",
        align="C",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(2)
    if draft.photo_jpeg:
        pdf.image(io.BytesIO(base64.b64decode(draft.photo_jpeg)), x=165, y=32, w=30)
    pdf.set_font("latin", size=10)
    rows: list[tuple[str, str]] = [
        (PERSON_LABELS[k], display_value(draft, k, draft.person.get(k, "")))
        for k in ("name", "id_number", "sex", "birth_date", "ethnicity")
    ]
    rows.append(("类别", display_value(draft, "category", draft.category)))
    if draft.relation:
        rows.append(("与军人关系", draft.relation))
    for f in draft.form.fields:
        rows.append((f.label, display_value(draft, f.key, draft.fields.get(f.key))))
    for label, value in rows:
        pdf.set_x(15)
        pdf.cell(42, 7, label, border=1)
        pdf.multi_cell(
            100 if pdf.get_y() < 75 else 138,
            7,
            value or "—",
            border=1,
            new_x="LMARGIN",
            new_y="NEXT",
        )
    pdf.ln(4)
    pdf.cell(
        0,
        7,
        f"录入人：{clerks.get(draft.entered_by, draft.entered_by) or '—'}    "
        f"复核人：{clerks.get(draft.reviewed_by, draft.reviewed_by) or '—'}",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.multi_cell(0, 7, "本人确认以上信息真实、准确。", new_x="LMARGIN", new_y="NEXT")
    y = pdf.get_y() + 2
    pdf.cell(0, 10, "本人签字：", new_x="LMARGIN", new_y="NEXT")
    if draft.signature_png:
        pdf.image(io.BytesIO(base64.b64decode(draft.signature_png)), x=40, y=y, h=18)
        pdf.ln(12)
    else:
        pdf.line(40, y + 8, 110, y + 8)
    pdf.cell(0, 10, "日期：        年      月      日", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
