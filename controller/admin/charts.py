"""Charts as inline SVG, drawn on the server: no script and no asset from outside.

Every bar carries its label and value as a tooltip and as ``data-label``/``data-value``; with
up to ``LABEL_ALL`` bars each is also labelled under the axis and its value written on top,
beyond that the axis is labelled at evenly spaced bars (a day of minutes cannot be read bar by
bar). ``scale_max`` fixes the scale (completion is always 0–100 %), so charts of different
areas compare at a glance; otherwise the scale is the largest value."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

__all__ = ["LABEL_ALL", "bar_chart"]

LABEL_ALL = 48
_AXIS_LABELS = 8


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


def bar_chart(
    points: Sequence[tuple[str, float]],
    *,
    title: str,
    width: int = 720,
    height: int = 200,
    colour: str = "#2f6fbb",
    testid: str = "",
    scale_max: float | None = None,
    unit: str = "",
) -> Markup:
    """Bars for (label, value) pairs, on 0..``scale_max`` (default: the largest value)."""
    every = len(points) <= LABEL_ALL
    rotate = every and len(points) > 12
    pad_left, pad_top = 48, 18
    pad_bottom = 64 if rotate else 24
    plot_w, plot_h = width - pad_left - 8, height - pad_bottom - pad_top
    top = scale_max if scale_max is not None else max((v for _, v in points), default=0)
    top = top or 1
    slot = plot_w / max(len(points), 1)
    base = pad_top + plot_h
    bars, labels = [], []
    step = 1 if every else max(1, len(points) // _AXIS_LABELS)
    for i, (label, value) in enumerate(points):
        h = plot_h * min(max(value, 0), top) / top
        x = pad_left + i * slot
        centre = x + slot / 2
        text = f"{escape(label)}: {_num(value)}{escape(unit)}"
        bars.append(
            f'<rect x="{x + slot * 0.1:.1f}" y="{base - h:.1f}" width="{max(slot * 0.8, 1):.1f}" '
            f'height="{h:.1f}" fill="{colour}" data-label="{escape(label)}" '
            f'data-value="{_num(value)}"><title>{text}</title></rect>'
        )
        if every:
            bars.append(
                f'<text x="{centre:.1f}" y="{base - h - 3:.1f}" text-anchor="middle" '
                f'class="value">{_num(value)}{escape(unit)}</text>'
            )
        if i % step == 0:
            if rotate:
                labels.append(
                    f'<text x="{centre:.1f}" y="{base + 10}" text-anchor="end" '
                    f'transform="rotate(-40 {centre:.1f} {base + 10})">{escape(label)}</text>'
                )
            else:
                labels.append(
                    f'<text x="{centre:.1f}" y="{height - 6}" text-anchor="middle">'
                    f"{escape(label)}</text>"
                )
    ticks = "".join(
        f'<line x1="{pad_left}" y1="{base - plot_h * f:.1f}" x2="{width - 8}" '
        f'y2="{base - plot_h * f:.1f}" stroke="#e4e7eb"/>'
        f'<text x="{pad_left - 4}" y="{base - plot_h * f + 4:.1f}" text-anchor="end">'
        f"{_num(top * f)}{escape(unit)}</text>"
        for f in (0.5, 1.0)
    )
    axis = (
        f'<line x1="{pad_left}" y1="{base}" x2="{width - 8}" y2="{base}" stroke="#9aa5b1"/>'
        f'<text x="{pad_left - 4}" y="{base + 4}" text-anchor="end">0</text>{ticks}'
    )
    attr = f' data-testid="{escape(testid)}"' if testid else ""
    # Every piece of text above went through escape(); the rest is numbers we formatted.
    return Markup(  # noqa: S704
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img"{attr} '
        f'aria-label="{escape(title)}" font-size="11" fill="#52606d" data-scale-max="{_num(top)}">'
        f"<title>{escape(title)}</title>{axis}{''.join(bars)}{''.join(labels)}</svg>"
    )
