"""A report on the terminal: key figures, then each table as a rich table."""
from __future__ import annotations

import sys
from typing import TextIO

from engine.reports.model import Report
from engine.reports.text import cell

_STYLE = {"committed": "green", "matched": "green", "rejected": "yellow", "failed": "red",
          "only_in_ledger": "yellow", "only_in_statement": "yellow", "amount_mismatch": "red",
          "date_mismatch": "red"}
_NUMERIC = ("int", "money", "rate", "ms")
_FOLD = ("note", "reason", "deal_id", "statement_line", "route")   # long free text may fold; the rest never


def print_report(report: Report, file: TextIO | None = None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table as RichTable

    out = file or sys.stdout
    console = Console(file=out, soft_wrap=False, width=None if out.isatty() else 200, highlight=False)
    console.print(f"[bold]{escape(report.title)}[/]  " +
                  "  ".join(f"{escape(k)}: {escape(v)}" for k, v in report.params.items()))
    if report.figures:
        console.print("  ".join(f"{escape(k)} [bold]{escape(v)}[/]" for k, v in report.figures))
    for table in report.tables:
        names = [c.name for c in table.columns]
        rt = RichTable(title=table.title, title_justify="left")
        for c in table.columns:
            rt.add_column(c.label, justify="right" if c.kind in _NUMERIC else "left", no_wrap=c.name not in _FOLD,
                          overflow="fold", min_width=len(c.label) if c.name not in _FOLD else None)
        for row in table.rows:
            byname = dict(zip(names, row))
            shown = [escape(cell(c, v, byname)) for c, v in zip(table.columns, row)]
            if "status" in byname and byname["status"] in _STYLE:
                i = names.index("status")
                shown[i] = f"[{_STYLE[byname['status']]}]{shown[i]}[/]"
            rt.add_row(*shown)
        console.print(rt)
        if not table.rows:
            console.print("  (no rows)")


__all__ = ["print_report"]
