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
        assert row["committed"] + row["rejected"] + row["failed"] + row["duplicate"] == row["deals"]
    assert any(p.endswith(".html") for p in res["reports"])
    text = console.file.getvalue()
    assert "every service in one engine" in text and "reports written" in text
    # the default share (2%) sends nothing again at this load: 15 requests a connection < the window
    assert res["repeats"] == res["duplicates"] == 0


def test_demo_repeats_are_answered_with_the_original_reply_and_never_made_twice(tmp_path):
    """The simulators send a share of their good requests to keyed routes again after the reply (here
    20%, window 4, so that 30 a channel give repeats): each gets its original's reply bytes, is a
    ``duplicate`` deal in the ledger, and no reference reaches a counterpart twice."""
    console = Console(file=StringIO(), width=160)
    res = run_all_services_demo(per_service=30, bill_count=200, ledger_path=tmp_path / "demo.duckdb",
                                console=console, window=4, repeats=0.2)
    assert res["lost"] == 0, res["lost_examples"]
    assert res["unexpected"] == 0
    assert res["sent"] == res["replies"] == res["in_ledger"] == 200 + 30 * len(SERVICES)
    assert res["repeats"] >= 20
    assert res["repeats_differ"] == 0
    assert res["twice"] == 0, res["twice_examples"]
    assert res["duplicates"] == res["repeats"]
    rows = {r["service"]: r for r in res["services"]}
    assert rows["bill_payment"]["duplicate"] > 0
    assert rows["customer_service"]["duplicate"] == 0 and rows["receivables_payables"]["duplicate"] == 0
    total = res["summary"][-1]
    assert total["committed"] + total["rejected"] + total["failed"] + total["duplicate"] == total["replies"]
    text = console.file.getvalue()
    assert (f"repeats: {res['repeats']:,} good requests sent again after their reply" in text
            and f"{res['repeats']:,} answered with the original reply byte for byte; 0 of " in text)
