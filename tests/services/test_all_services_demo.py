"""The all-services demo: one engine, every service, a mixed load, the summary and the reports."""
from __future__ import annotations

from io import StringIO

from rich.console import Console

from engine.sim.services.catalog import SERVICES
from engine.sim.services.demo import run_all_services_demo


def test_demo_runs_every_service_in_one_engine(tmp_path):
    console = Console(file=StringIO(), width=160)
    res = run_all_services_demo(per_service=30, ledger_path=tmp_path / "demo.duckdb", console=console)
    assert res["unexpected"] == 0
    assert res["sent"] == res["replies"] == 30 * (len(SERVICES) + 1)
    names = {r["service"] for r in res["services"]}
    assert {s.name for s in SERVICES} | {"bill_payment"} <= names
    for row in res["services"]:
        if row["service"] in ("unrouted",):
            continue
        assert row["deals"] > 0 and row["p50_ms"] is not None
        assert row["committed"] + row["rejected"] + row["failed"] == row["deals"]
    assert any(p.endswith(".html") for p in res["reports"])
    text = console.file.getvalue()
    assert "every service in one engine" in text and "reports written" in text
