"""Charts as inline SVG, drawn on the server: no script and no asset from outside."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup


def bar_chart(
    points: Sequence[tuple[str, float]],
    *,
    title: str,
    width: int = 720,
    height: int = 180,
    colour: str = "#2f6fbb",
    testid: str = "",
) -> Markup:
    """Bars for (label, value) pairs; the first and last labels are written under the axis and
    every bar carries its label and value as a tooltip."""
    pad_left, pad_bottom, pad_top = 48, 22, 18
    plot_w, plot_h = width - pad_left - 8, height - pad_bottom - pad_top
    top = max((v for _, v in points), default=0) or 1
    slot = plot_w / max(len(points), 1)
    bars = []
    for i, (label, value) in enumerate(points):
        h = plot_h * value / top
        x = pad_left + i * slot
        bars.append(
            f'<rect x="{x + slot * 0.1:.1f}" y="{pad_top + plot_h - h:.1f}" '
            f'width="{max(slot * 0.8, 1):.1f}" height="{h:.1f}" fill="{colour}">'
            f"<title>{escape(label)}: {value:g}</title></rect>"
        )
    axis = (
        f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{width - 8}" y2="{pad_top + plot_h}" '
        'stroke="#9aa5b1"/>'
        f'<text x="{pad_left - 4}" y="{pad_top + 4}" text-anchor="end">{top:g}</text>'
        f'<text x="{pad_left - 4}" y="{pad_top + plot_h}" text-anchor="end">0</text>'
    )
    labels = ""
    if points:
        labels = (
            f'<text x="{pad_left}" y="{height - 4}">{escape(points[0][0])}</text>'
            f'<text x="{width - 8}" y="{height - 4}" text-anchor="end">'
            f"{escape(points[-1][0])}</text>"
        )
    attr = f' data-testid="{escape(testid)}"' if testid else ""
    # Every piece of text above went through escape(); the rest is numbers we formatted.
    return Markup(  # noqa: S704
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img"{attr} '
        f'aria-label="{escape(title)}" font-size="11" fill="#52606d">'
        f"<title>{escape(title)}</title>{axis}{''.join(bars)}{labels}</svg>"
    )
