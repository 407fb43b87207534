"""The terminal report's "differences by place": the channel and field columns are as wide as their
longest entry (a field up to 64 characters), so the counts line up.  Until 2026-11-27 they were 12 and 24
wide: an ISO 20022 path (`FIToFICstmrCdtTrf.CdtTrfTxInf.RmtInf.Ustrd`) or a channel named
`clm_mainframe` pushed its count out of the column, and a count read as part of the field."""
from __future__ import annotations

from engine.replay.diff import Difference, DiffResult
from engine.replay.report import ReplayReport


def test_counts_line_up_with_long_channels_and_fields() -> None:
    diffs = [Difference(1, "R1", "clm_clearing", "call", "FIToFICstmrCdtTrf.CdtTrfTxInf.RmtInf.Ustrd", "a", "b", 0)]
    diffs += [Difference(n, f"R{n}", "clm_mainframe", "call", "(call)", "sent", "<none>", 0) for n in (2, 3)]
    diffs += [Difference(4, "R4", "api", "reply", "code", "00", "61")]
    report = ReplayReport("cap.duckdb", "v2", "v1", ["routes/x"], "fast",
                          DiffResult(exchanges=4, differences=diffs))
    lines = report.text().splitlines()
    start = lines.index("differences by place:") + 1
    rows = lines[start:start + 3]
    assert len(rows) == 3 and all("unexpected" in r for r in rows), rows
    ends = {r.index("  unexpected") for r in rows}
    assert len(ends) == 1, rows          # the counts end in one column
