"""Horizontal bar charts as inline SVG, drawn by our own code (no script, nothing fetched).

Bar lengths are computed with ``Decimal`` arithmetic from the values (an
amount is never turned into a float); the label beside each bar is the
chart's exact text.  Negative values draw their bar in another colour,
its length from the absolute value.
"""
from __future__ import annotations

from decimal import Decimal
from xml.sax.saxutils import escape

from engine.reports.model import Chart

BAR_H = 18
GAP = 6
LABEL_W = 190
PLOT_W = 330
TEXT_W = 190
PAD = 8


def _len(value: Decimal | int | float, top: Decimal) -> Decimal:
    v = abs(Decimal(str(value)) if isinstance(value, float) else Decimal(value))
    if not top:
        return Decimal(0)
    return (v / top * PLOT_W).quantize(Decimal("0.1"))


def _clip(text: str, n: int = 30) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def bar_chart(chart: Chart, chart_id: str) -> str:
    """An ``<svg>`` element: one row per bar, title in ``<title>`` and an aria label."""
    values = [abs(Decimal(str(b.value)) if isinstance(b.value, float) else Decimal(b.value)) for b in chart.bars]
    top = max(values, default=Decimal(0))
    width = LABEL_W + PLOT_W + TEXT_W + 2 * PAD
    height = max(1, len(chart.bars)) * (BAR_H + GAP) + 2 * PAD
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{chart_id}" role="img" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'aria-label="{escape(chart.title, {chr(34): "&quot;"})}">',
             f"<title>{escape(chart.title)}</title>"]
    if not chart.bars:
        parts.append(f'<text x="{PAD}" y="{PAD + BAR_H - 4}" class="empty">no data in this period</text>')
    for i, bar in enumerate(chart.bars):
        y = PAD + i * (BAR_H + GAP)
        length = _len(bar.value, top)
        negative = (Decimal(str(bar.value)) if isinstance(bar.value, float) else Decimal(bar.value)) < 0
        cls = "bar neg" if negative else "bar"
        parts.append(
            f'<g class="row"><text x="{LABEL_W - 6}" y="{y + BAR_H - 5}" text-anchor="end" class="label">'
            f"{escape(_clip(bar.label))}</text>"
            f'<rect class="{cls}" x="{LABEL_W}" y="{y}" width="{length}" height="{BAR_H}" rx="2">'
            f"<title>{escape(bar.label)}: {escape(bar.text)}</title></rect>"
            f'<text x="{LABEL_W + length + 6}" y="{y + BAR_H - 5}" class="value">{escape(bar.text)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["bar_chart"]
