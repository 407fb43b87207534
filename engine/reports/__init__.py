"""Business reports over the deal ledger (``bsp report``), and the export formats.

    from engine.reports import build_report, write
    report = build_report("daily-summary", "var/bsp.duckdb", period("2026-03-01", "2026-03-31"))
    write(report, "html", "march.html")

Reports: ``daily-summary``, ``rejections``, ``counterparty-statement`` (needs
``party=``), ``statement-continuity``, ``operator-actions``.  Formats: csv, parquet, xlsx, html (see ``docs/reports.md``).
"""
from __future__ import annotations

from pathlib import Path

from engine import defaults
from engine.reports import counterparty, daily_summary, operator_actions, rejections, statement_continuity
from engine.reports.export import FORMATS, write
from engine.reports.model import Bar, Chart, Column, Report, ReportError, Table
from engine.reports.source import Period, period

REPORTS = defaults.REPORTS


def build_report(name: str, ledger: str | Path, when: Period, *, party: str | None = None) -> Report:
    if name == "daily-summary":
        return daily_summary.build(ledger, when)
    if name == "rejections":
        return rejections.build(ledger, when)
    if name == "counterparty-statement":
        return counterparty.build(ledger, when, party or "")
    if name == "statement-continuity":
        return statement_continuity.build(ledger, when)
    if name == "operator-actions":
        return operator_actions.build(ledger, when)
    raise ReportError(f"no report named {name!r}; the reports are: {', '.join(REPORTS)}")


__all__ = ["Bar", "Chart", "Column", "FORMATS", "Period", "REPORTS", "Report", "ReportError", "Table",
           "build_report", "period", "write"]
