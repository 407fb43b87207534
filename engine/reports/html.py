"""A report as one self-contained HTML page: inline CSS, inline SVG charts, no script.

Nothing is fetched when the page is viewed (no fonts, scripts or images from
anywhere); it can be mailed or archived as one file.  Values are shown with
``engine.reports.text`` (exact money in the currency's decimals, rates as
percentages).  Key figures sit at the top (``<dl class="figures">``), then the
charts, then every table.
"""
from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Iterator

from engine.reports.model import Report, Table
from engine.reports.svg import bar_chart
from engine.reports.text import cell

CSS = """
:root { --ink:#1d2433; --muted:#5b6578; --line:#d9dee8; --bar:#2f6fb3; --neg:#c0392b; --bg:#f6f8fb; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0; background: var(--bg); }
header { background: #fff; border-bottom: 1px solid var(--line); padding: 18px 28px; }
h1 { font-size: 22px; margin: 0 0 6px; }
h2 { font-size: 16px; margin: 28px 0 10px; }
main { padding: 8px 28px 40px; }
.params { color: var(--muted); margin: 0; }
.params span { margin-right: 18px; }
dl.figures { display: flex; flex-wrap: wrap; gap: 12px; margin: 18px 0 4px; }
dl.figures div { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 16px; min-width: 150px; }
dl.figures dt { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
dl.figures dd { margin: 2px 0 0; font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
figure { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 0; padding: 10px 12px; }
figcaption { font-weight: 600; margin-bottom: 4px; }
figcaption small { font-weight: normal; color: var(--muted); margin-left: 6px; }
svg.chart text { font: 12px system-ui, sans-serif; fill: var(--ink); }
svg.chart text.value { fill: var(--muted); }
svg.chart rect.bar { fill: var(--bar); }
svg.chart rect.bar.neg { fill: var(--neg); }
table { border-collapse: collapse; background: #fff; border: 1px solid var(--line); font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
th { background: #eef2f8; font-weight: 600; position: sticky; top: 0; }
td.num { text-align: right; }
.scroll { overflow-x: auto; max-width: 100%; }
tr.status-only_in_ledger td, tr.status-only_in_statement td { background: #fff4e5; }
tr.status-amount_mismatch td, tr.status-date_mismatch td { background: #fdecea; }
footer { color: var(--muted); padding: 0 28px 24px; font-size: 12px; }
"""

_NUMERIC = ("int", "money", "rate", "ms")


def table_html(table: Table) -> str:
    return "".join(table_parts(table))


def table_parts(table: Table) -> Iterator[str]:
    """One table's section, a row at a time (``table_html`` joined)."""
    names = [c.name for c in table.columns]
    status_at = names.index("status") if "status" in names else None
    head = "".join(f'<th scope="col" data-col="{escape(c.name)}">{escape(c.label)}</th>' for c in table.columns)
    yield (f'<section class="table" id="table-{escape(table.name)}"><h2>{escape(table.title)}</h2>'
           f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>')
    for row in table.rows:
        byname = dict(zip(names, row))
        tds = "".join(
            f'<td class="num" data-col="{escape(c.name)}">{escape(cell(c, v, byname))}</td>' if c.kind in _NUMERIC
            else f'<td data-col="{escape(c.name)}">{escape(cell(c, v, byname))}</td>'
            for c, v in zip(table.columns, row))
        cls = f' class="status-{escape(str(row[status_at]))}"' if status_at is not None else ""
        yield f"<tr{cls}>{tds}</tr>"
    if not table.rows:
        yield f'<tr><td colspan="{len(names)}">no rows in this period</td></tr>'
    yield "</tbody></table></div></section>"


def render(report: Report, *, generated: datetime | None = None) -> str:
    return "".join(render_parts(report, generated=generated))


def render_parts(report: Report, *, generated: datetime | None = None) -> Iterator[str]:
    """The page in pieces, its tables a row at a time: ``write_html`` writes them as they come, so a
    200,000-line form is never one string in memory."""
    generated = generated or datetime.now(timezone.utc)
    params = "".join(f"<span><b>{escape(k)}:</b> {escape(v)}</span>" for k, v in report.params.items())
    figures = "".join(f'<div><dt>{escape(k)}</dt><dd data-figure="{escape(k)}">{escape(v)}</dd></div>'
                      for k, v in report.figures)
    charts = "".join(
        f'<figure><figcaption>{escape(ch.title)}'
        f'{f"<small>{escape(ch.note)}</small>" if ch.note else ""}</figcaption>{bar_chart(ch, f"chart-{i}")}</figure>'
        for i, ch in enumerate(report.charts, start=1))
    yield f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{escape(report.title)}</title>
<style>{CSS}</style></head>
<body data-report="{escape(report.name)}">
<header><h1>{escape(report.title)}</h1><p class="params">{params}</p>
<dl class="figures">{figures}</dl></header>
<main>{f'<div class="charts">{charts}</div>' if charts else ''}"""
    for t in report.tables:
        yield from table_parts(t)
    yield f"""</main>
<footer>bsp {escape(report.name)}, generated {generated.strftime('%Y-%m-%d %H:%M:%S')} UTC.
Amounts are exact, in each currency's own unit; nothing on this page is converted.</footer>
</body></html>
"""


def write_html(report: Report, out: Path) -> list[Path]:
    with open(out, "w", encoding="utf-8") as f:
        batch: list[str] = []
        for part in render_parts(report):
            batch.append(part)
            if len(batch) == 2000:
                f.write("".join(batch))
                batch = []
        f.write("".join(batch))
    return [out]


__all__ = ["CSS", "render", "render_parts", "table_html", "table_parts", "write_html"]
