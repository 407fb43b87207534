"""Helpers for the transaction tests: real loopback servers, real ledgers (no mocks)."""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "engine"))

from kit import Client, compile_text, deals, free_port, json_counterpart, running  # noqa: E402


def rows(ledger: Path, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        cur = con.execute(sql, params or [])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        con.close()


class Counterpart:
    """Counts each request by (op, reference); answers by a rule."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.counts: Counter = Counter()
        self.refuse = refuse or set()

    def answer(self, req: dict) -> dict:
        op = req.get("op", "post")
        self.counts[(op, req.get("ref"))] += 1
        if req.get("ref") in self.refuse and op != "cancel":
            return {"status": "NO", "ref": req.get("ref")}
        return {"status": "OK", "ref": req.get("ref"), "conf": f"C-{req.get('ref')}-{op}"}


__all__ = ["Client", "Counterpart", "REPO", "compile_text", "deals", "free_port", "json_counterpart",
           "rows", "running"]
