"""A report on the terminal: key figures, then each table as a rich table.

No figure is ever cropped.  A table is printed across when it fits: figure
columns (numbers, dates, codes) keep their full width, only free-text
columns (note, reason, ids, places) fold onto more lines.  On a terminal too
narrow for that, the table is printed down instead: one block per row, one
``column  value`` line per cell.  When the output is not a terminal (a pipe, a
file) nothing limits the width: every table is printed across.

A table of more than ``MAX_ROWS`` rows is not printed whole (rich takes minutes and gigabytes for a
150,000-line reconciliation form): the rows that are not ``matched`` come first (the breaks of a
reconciliation), then the others, up to ``MAX_ROWS`` in their order, and a line says how many are left
out and how to write them all (``--format csv|xlsx|html|json``).
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Any, TextIO

from engine.reports.model import Report, Table
from engine.reports.text import cell, printable

_STYLE = {"committed": "green", "matched": "green", "rejected": "yellow", "failed": "red",
          "only_in_ledger": "yellow", "only_in_statement": "yellow", "amount_mismatch": "red",
          "date_mismatch": "red"}
_NUMERIC = ("int", "money", "rate", "ms")
_FOLD = ("note", "reason", "deal_id", "statement_line", "route")   # long free text may fold; the rest never
_FOLD_MIN = 12                     # narrowest a folding column gets before the table is printed down
MAX_ROWS = 1000                    # rows of one table printed; the files hold them all


def _shown(table: Table, max_rows: int) -> Table:
    """``table`` with at most ``max_rows`` rows: those not ``matched`` first, the original order kept."""
    if len(table.rows) <= max_rows:
        return table
    names = [c.name for c in table.columns]
    at = names.index("status") if "status" in names else None
    keep = [i for i, r in enumerate(table.rows) if at is None or r[at] != "matched"][:max_rows]
    if len(keep) < max_rows:
        kept = set(keep)
        keep += [i for i in range(len(table.rows)) if i not in kept][:max_rows - len(keep)]
    return dataclasses.replace(table, rows=[table.rows[i] for i in sorted(keep)])


def _cells(table: Table) -> list[list[str]]:
    names = [c.name for c in table.columns]
    return [[printable(cell(c, v, dict(zip(names, row)))) for c, v in zip(table.columns, row)]
            for row in table.rows]


def _widths(table: Table, cells: list[list[str]]) -> tuple[list[int], list[int]]:
    """(natural, least) width of each column: figure columns never shrink, folding ones down to _FOLD_MIN."""
    from rich.cells import cell_len

    natural, least = [], []
    for i, c in enumerate(table.columns):
        w = max([cell_len(c.label)] + [cell_len(r[i]) for r in cells])
        natural.append(w)
        least.append(min(w, max(_FOLD_MIN, max((cell_len(x) for x in c.label.split()), default=0)))
                     if c.name in _FOLD else w)
    return natural, least


def _table_width(widths: list[int]) -> int:
    return sum(widths) + 3 * len(widths) + 1        # one blank either side of each cell, and the rules


def _styled(table: Table, row: tuple, shown: list[str]) -> list[str]:
    from rich.markup import escape

    names = [c.name for c in table.columns]
    out = [escape(s) for s in shown]
    status = dict(zip(names, row)).get("status")
    if status in _STYLE:
        i = names.index("status")
        out[i] = f"[{_STYLE[status]}]{out[i]}[/]"
    return out


def _across(table: Table, cells: list[list[str]], natural: list[int], least: list[int]) -> Any:
    from rich.table import Table as RichTable

    rt = RichTable(title=table.title, title_justify="left")
    for c, w, m in zip(table.columns, natural, least):
        folds = c.name in _FOLD
        rt.add_column(c.label, justify="right" if c.kind in _NUMERIC else "left", no_wrap=not folds,
                      overflow="fold", min_width=m, max_width=None if folds else w)
    for row, shown in zip(table.rows, cells):
        rt.add_row(*_styled(table, row, shown))
    return rt


def _down(console: Any, table: Table, cells: list[list[str]]) -> None:
    """One block per row: ``label  value`` lines; values fold, never crop."""
    from rich.markup import escape
    from rich.table import Table as RichTable

    console.print(f"[italic]{escape(table.title)}[/] ({len(cells)} row(s), one block each: the terminal is too "
                  f"narrow to show them across)")
    for n, (row, shown) in enumerate(zip(table.rows, cells), start=1):
        console.print(f"[bold]{escape(table.title)} {n}/{len(cells)}[/]")
        block = RichTable(show_header=False, box=None, padding=(0, 1))
        block.add_column("column", style="dim", no_wrap=True)
        block.add_column("value", overflow="fold")
        for c, value in zip(table.columns, _styled(table, row, shown)):
            block.add_row(escape(c.label), value)
        console.print(block)


def print_report(report: Report, file: TextIO | None = None, width: int | None = None,
                 max_rows: int = MAX_ROWS) -> None:
    """Print ``report``; ``width`` stands for the terminal's (None: the terminal's own, or unlimited when
    ``file`` is not a terminal); at most ``max_rows`` rows of each table (see the module's doc)."""
    from rich.console import Console
    from rich.markup import escape

    out = file or sys.stdout
    tty = out.isatty()
    picked = [_shown(t, max_rows) for t in report.tables]
    left_out = {id(p): len(t.rows) - len(p.rows) for t, p in zip(report.tables, picked)}
    tables = [(t, _cells(t)) for t in picked]
    sized = [(t, cs, *_widths(t, cs)) for t, cs in tables]
    if width is None and not tty:       # a pipe or a file: as wide as the widest table, so nothing is cut
        width = max([120] + [_table_width(nat) for _, _, nat, _ in sized])
    console = Console(file=out, soft_wrap=False, width=width, highlight=False)
    console.print(f"[bold]{escape(printable(report.title))}[/]  " +
                  "  ".join(f"{escape(printable(k))}: {escape(printable(v))}" for k, v in report.params.items()))
    if report.figures:
        console.print("  ".join(f"{escape(printable(k))} [bold]{escape(printable(v))}[/]" for k, v in report.figures))
    for table, cells, natural, least in sized:
        if _table_width(least) <= console.width:
            console.print(_across(table, cells, natural, least))
        else:
            _down(console, table, cells)
        if not table.rows:
            console.print("  (no rows)")
        left = left_out[id(table)]
        if left > 0:
            first = ("the ones not matched first, " if any(c.name == "status" for c in table.columns)
                     else "the first ones, ")
            console.print(f"  ({len(table.rows):,} of {len(table.rows) + left:,} rows shown, {first}{left:,} "
                          f"left out here: write them all with --format csv, xlsx, html or json)")


__all__ = ["print_report"]
