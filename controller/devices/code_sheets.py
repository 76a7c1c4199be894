"""Enrolment codes in bulk: a CSV of townships and profiles in, a printable PDF sheet of QR
codes and a CSV of the codes out (``muster provision code create --bulk``).

The input is one device per row: ``township code, profile`` (a header row is allowed and
skipped). UTF-8 (with or without BOM) or GBK as Chinese Excel saves it. Every row is checked
before any code is created; one bad row refuses the whole file, naming each bad line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import segno
from fpdf import FPDF

from muster.enrolment_codes import EnrolmentTicket
from muster.errors import ConfigError, MusterError
from muster.profiles import load_profile
from muster.region_names import describe
from muster.regions import parse_township
from muster.spreadsheets import csv_row

__all__ = ["MAX_ROWS", "BulkRow", "IssuedCode", "codes_csv", "codes_pdf", "parse_bulk_csv"]

MAX_ROWS = 2000
MAX_BYTES = 1 * 2**20
_HEADER_WORDS = ("township", "乡镇", "profile", "型号", "code")

# The same system fonts as the device's confirmation sheet (fonts-droid-fallback, DejaVu); the
# controller may not import the device's code, so the two paths are named here as well.
_CJK_FONTS = (
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),
    Path("/usr/share/fonts-droid-fallback/truetype/DroidSansFallback.ttf"),
)
_LATIN_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@dataclass(frozen=True, slots=True)
class BulkRow:
    line: int
    township: str
    profile: str


@dataclass(frozen=True, slots=True)
class IssuedCode:
    row: BulkRow
    ticket: EnrolmentTicket
    expires: datetime


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise ConfigError(
            "乡镇清单不是 UTF-8 或 GBK 编码的 CSV：请在 Excel 中“另存为 CSV (UTF-8)”后重试"
        ) from None


def parse_bulk_csv(data: bytes) -> list[BulkRow]:
    """The rows of a townships CSV; :class:`ConfigError` listing every bad line."""
    if len(data) > MAX_BYTES:
        raise ConfigError(f"乡镇清单过大（{len(data)} 字节）：一次最多 {MAX_ROWS} 行")
    text = _decode(data)
    if "\x00" in text:
        raise ConfigError("乡镇清单含有空字符：这不是文本 CSV 文件")
    rows: list[BulkRow] = []
    problems: list[str] = []
    profiles: dict[str, str | None] = {}
    try:
        lines = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise ConfigError(f"乡镇清单不是有效的 CSV：{exc}") from None
    for number, cells in enumerate(lines, start=1):
        cells = [c.strip() for c in cells]
        if not any(cells):
            continue
        if number == 1 and any(w in cells[0].lower() for w in _HEADER_WORDS):
            continue
        if len(rows) + len(problems) >= MAX_ROWS:
            raise ConfigError(f"乡镇清单超过 {MAX_ROWS} 行：请分成几个文件")
        if len([c for c in cells if c]) != 2 or (len(cells) > 2 and any(cells[2:])):
            problems.append(f"第 {number} 行：应为两列“乡镇代码,型号”，这里是 {len(cells)} 列")
            continue
        township_text, profile = cells[0], cells[1]
        try:
            township = parse_township(township_text).code
        except ConfigError:
            problems.append(
                f"第 {number} 行：乡镇代码 {township_text[:20]!r} 无效（应为 12 位，如 370902001000）"
            )
            continue
        if profile not in profiles:
            profiles[profile] = _profile_problem(profile)
        problem = profiles[profile]
        if problem is not None:
            problems.append(f"第 {number} 行：{problem}")
            continue
        rows.append(BulkRow(number, township, profile))
    if problems:
        shown = "；".join(problems[:20]) + ("；……" if len(problems) > 20 else "")
        raise ConfigError(
            f"乡镇清单有 {len(problems)} 行错误，未创建任何注册码：{shown}。改正后重新运行"
        )
    if not rows:
        raise ConfigError("乡镇清单没有数据行：每行写“乡镇代码,型号”，如 370902001000,fixed-kiosk")
    return rows


def _profile_problem(profile: str) -> str | None:
    # Only the shipped profiles by name: a path in a spreadsheet cell must not open files.
    if not profile.replace("-", "").replace("_", "").isalnum() or len(profile) > 64:
        return f"型号 {profile[:30]!r} 无效（如 fixed-kiosk、portable-tablet）"
    try:
        load_profile(profile)
    except MusterError:
        return f"型号 {profile!r} 不存在（如 fixed-kiosk、portable-tablet）"
    return None


def codes_csv(issued: Sequence[IssuedCode]) -> bytes:
    """The codes as CSV (UTF-8 with BOM, so Excel shows the Chinese)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["乡镇代码", "乡镇", "型号", "注册码", "有效期至 (UTC)", "二维码内容"])
    for item in issued:
        writer.writerow(
            csv_row(
                [
                    item.row.township,
                    describe(item.row.township),
                    item.row.profile,
                    item.ticket.code,
                    item.expires.strftime("%Y-%m-%d %H:%M"),
                    item.ticket.payload(),
                ]
            )
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _fonts(pdf: FPDF) -> None:
    cjk = next((p for p in _CJK_FONTS if p.exists()), None)
    if cjk is None or not _LATIN_FONT.exists():
        raise ConfigError(
            "找不到中文字体，无法生成注册码单：请安装 fonts-droid-fallback 和 fonts-dejavu-core"
            "（bash scripts/setup.sh 会安装）"
        )
    pdf.add_font("latin", fname=str(_LATIN_FONT))
    pdf.add_font("cjk", fname=str(cjk))
    pdf.set_fallback_fonts(["cjk"])


def codes_pdf(issued: Sequence[IssuedCode], *, ca_cert_name: str) -> bytes:
    """An A4 sheet, eight codes a page: each with its QR code, the code in text, township,
    profile and expiry, to be cut out and handed to the technician."""
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=False)
    _fonts(pdf)
    columns, rows_per_page = 2, 4
    cell_w, cell_h = 95.0, 68.0
    for index, item in enumerate(issued):
        slot = index % (columns * rows_per_page)
        if slot == 0:
            pdf.add_page()
            pdf.set_font("latin", size=9)
            pdf.set_xy(10, 6)
            pdf.cell(
                0,
                5,
                f"muster 设备注册码（每个只能使用一次）  注册：muster provision enroll "
                f"--qr-image 照片 --ca-cert {ca_cert_name}",
            )
        x = 10 + (slot % columns) * cell_w
        y = 14 + (slot // columns) * cell_h
        pdf.rect(x, y, cell_w - 4, cell_h - 4)
        png = io.BytesIO()
        segno.make(item.ticket.payload(), error="m").save(png, kind="png", scale=6, border=2)
        png.seek(0)
        pdf.image(png, x=x + 2, y=y + 2, w=40, h=40)
        pdf.set_xy(x + 44, y + 4)
        pdf.set_font("latin", size=10)
        lines = [
            describe(item.row.township),
            f"乡镇代码 {item.row.township}",
            f"型号 {item.row.profile}",
            f"有效期至 {item.expires:%Y-%m-%d %H:%M} UTC",
            f"中心 {item.ticket.controller}",
        ]
        for text in lines:
            pdf.set_x(x + 44)
            pdf.multi_cell(cell_w - 50, 5, text, new_x="LEFT", new_y="NEXT")
        pdf.set_xy(x + 2, y + 45)
        pdf.set_font("latin", size=14)
        pdf.cell(cell_w - 8, 8, item.ticket.code, align="C")
        pdf.set_xy(x + 2, y + 54)
        pdf.set_font("latin", size=7)
        pdf.multi_cell(cell_w - 8, 3.5, f"CA SHA-256 {item.ticket.ca_sha256}")
    return bytes(pdf.output())
