"""A large form on the terminal: at most MAX_ROWS rows per table, the breaks first, and a line saying how many
were left out and how to write them all; before, a 147,400-line reconciliation printed every row (203 s and
1.5 GB in rich), and its breaks came last, after every matched row."""
from __future__ import annotations

import io
from datetime import date, datetime, timezone
from decimal import Decimal

from engine.reconcile import LedgerDeal, StatementLine, reconcile
from engine.reconcile.form import build_form
from engine.reports.terminal import MAX_ROWS, print_report

N = MAX_ROWS + 200
AT = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def test_a_large_form_shows_its_breaks_and_says_what_is_left_out() -> None:
    deals = [LedgerDeal(f"d{i}", f"R{i:06d}", Decimal("10.00") + i, "EUR", AT) for i in range(N)]
    lines = [StatementLine(f"s.csv:{i + 2}", Decimal("10.00") + i, "EUR", date(2026, 11, 26), None, (f"R{i:06d}",))
             for i in range(N) if i not in (7, N - 3)]           # two deals missing from the statement
    lines.append(StatementLine("s.csv:9999", Decimal("5.00"), "EUR", date(2026, 11, 26), None, ("NOPE-1",)))
    report = build_form(reconcile(deals, lines, tolerance=Decimal("0"), days=1), {"ledger": "x"})
    buf = io.StringIO()
    print_report(report, file=buf)
    out = buf.getvalue()
    assert out.count("│ matched ") == MAX_ROWS - 3
    for ref in ("R000007", f"R{N - 3:06d}", "NOPE-1"):       # every break is shown
        assert ref in out
    assert (f"({MAX_ROWS:,} of {N + 1:,} rows shown, the ones not matched first, {N + 1 - MAX_ROWS:,} left out "
            f"here: write them all with --format csv, xlsx, html or json)") in out
    assert "Totals per currency" in out
