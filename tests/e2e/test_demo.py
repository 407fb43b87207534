"""``bsp demo`` end to end, with a smaller load: every service in one engine,
nothing lost (counted against the replies and the ledger), the tables and the
report paths printed."""
from __future__ import annotations

import json

from io import StringIO

import duckdb
import typer
from rich.console import Console
from typer.testing import CliRunner

from engine.commands import demo as demo_cmd
from engine.sim.ledger_count import SentRequest, count_lost, row_keys
from engine.sim.services.catalog import SERVICES
from engine.sim.services.demo import run_all_services_demo


def test_demo_loses_nothing_and_shows_every_service(tmp_path):
    console = Console(file=StringIO(), width=100)
    ledger = tmp_path / "bsp.duckdb"
    res = run_all_services_demo(per_service=25, bill_count=120, ledger_path=ledger, console=console)
    assert res["lost"] == 0, res["lost_examples"]
    assert res["sent"] == res["replies"] == res["in_ledger"] == 120 + 25 * len(SERVICES)
    assert res["unexpected"] == 0
    names = {r["service"] for r in res["services"]}
    assert names == {s.name for s in SERVICES} | {"bill_payment"}
    total = res["summary"][-1]
    assert total["committed"] + total["rejected"] + total["failed"] + total["duplicate"] == total["sent"]
    bill = next(r for r in res["services"] if r["service"] == "bill_payment")
    assert bill["rejected"] > 0 and bill["failed"] > 0 and bill["committed"] > 0   # malformed/unrouted included
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        # and a deal per payroll file's end-of-file message (end_message = true), which no simulator sent
        ends = con.execute("SELECT count(*) FROM deals WHERE route = 'payroll_file_end'").fetchone()[0]
        assert ends >= 1
        # a salary the route refuses is in a payroll file of its own, refused whole (all_or_nothing): a rejected
        # deal of its own (kind refused_whole, not run), beside its file's end deal
        summaries = [json.loads(bytes.fromhex(json.loads(r))) for (r,) in con.execute(
            "SELECT CAST(request AS VARCHAR) FROM deals WHERE route = 'payroll_file_end'").fetchall()]
        refused = sum(s["status"] == "refused" for s in summaries)
        assert con.execute("SELECT count(*) FROM deals WHERE reason LIKE 'refused_whole: %'").fetchone()[0] \
            == refused
        assert con.execute("SELECT count(*) FROM deals").fetchone()[0] == res["sent"] + ends
    finally:
        con.close()
    text = console.file.getvalue()
    assert "lost" in text and "per service" in text and "reports written" in text
    assert all(len(line) <= 100 for line in text.splitlines())
    assert str(ledger.resolve()) in text
    assert any(p.endswith(".html") for p in res["reports"])


def test_lost_is_counted_not_assumed():
    keys = {("mainframe", "000000000001"), ("cs_crm", "CS1")}
    sent = [SentRequest("bill_payment", "mainframe", "000000000001", True),
            SentRequest("bill_payment", "mainframe", "000000000002", True),     # replied, no deal row
            SentRequest("customer_service", "cs_crm", "CS1", False),             # deal row, no reply
            SentRequest("customer_service", "mainframe", "CS1", True)]           # key on another channel
    acc = count_lost(sent, keys)
    assert (acc.sent, acc.replies, acc.in_ledger, acc.lost) == (4, 3, 2, 3)
    assert acc.by_service == {"bill_payment": 1, "customer_service": 2}
    assert "000000000002: no deal row" in acc.lost_examples[0]


def test_row_keys_reference_request_field_and_raw_frame():
    assert row_keys("REF1 ", None) == ["REF1"]
    assert row_keys(None, '{"trace_no": "000000000007", "amount": 1}') == ["000000000007"]
    assert row_keys(None, '"' + b"GARBAGE000000000034".hex() + '"') == ["GARBAGE000000000034", "000000000034"]
    assert row_keys(None, None) == [] and row_keys(None, "not json") == []


def test_bsp_demo_command_plain_output(tmp_path):
    app = typer.Typer()
    app.command("noop")(lambda: None)
    demo_cmd.register(app)
    out = CliRunner().invoke(app, ["demo", "--count", "40", "--per-service", "5",
                                   "--ledger", str(tmp_path / "d.duckdb")])
    assert out.exit_code == 0, out.output
    assert "progress:" in out.output          # not a terminal: plain lines, no bars
    assert "\x1b[" not in out.output
    assert "bill payment" in out.output and "ledger:" in out.output
    assert "ledger sync journal" in out.output                 # the default, as bsp run
    assert not list((tmp_path / "d.duckdb.journal").iterdir())  # closed: all loaded, segments gone


def test_bsp_demo_ledger_sync_duckdb_and_a_bad_mode(tmp_path):
    app = typer.Typer()
    app.command("noop")(lambda: None)
    demo_cmd.register(app)
    out = CliRunner().invoke(app, ["demo", "--count", "30", "--per-service", "3", "--ledger-sync", "duckdb",
                                   "--ledger", str(tmp_path / "s.duckdb")])
    assert out.exit_code == 0, out.output
    assert "ledger sync duckdb" in out.output
    with duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM deals").fetchone()[0] >= 30 + 3 * len(SERVICES)
    bad = CliRunner().invoke(app, ["demo", "--ledger-sync", "fast", "--ledger", str(tmp_path / "x.duckdb")])
    assert bad.exit_code == 2 and "expected one of journal, duckdb, none" in bad.output


def test_demo_output_explains_its_figures_and_where_to_look_next(tmp_path):
    """A newcomer reads the sums the overall table keeps, why rejected and failed are there, what the
    batch-file lines were, and commands that run as printed (bsp as this shell can start it)."""
    console = Console(file=StringIO(), width=100)
    ledger = tmp_path / "bsp.duckdb"
    run_all_services_demo(per_service=10, bill_count=60, ledger_path=ledger, console=console)
    text = " ".join(console.file.getvalue().split())        # rich wraps long lines: compare unwrapped
    assert "sent = replies + lost; replies = committed + rejected + failed" in text
    assert "Rejected and failed are on purpose" in text and "note:" not in text
    assert "meant to commit" in text and "meant to be rejected" in text
    assert "batch files on rp_batch_in:" in text and "error/" in text
    assert "every reply code was the one the simulators expected" in text
    assert "where to look next:" in text and "docs/index.md" in text
    assert f"deals --ledger {ledger} --status failed" in text
    assert "(try: bsp" not in text


def test_reading_guide_says_when_a_sum_does_not_hold():
    from engine.sim.summary import reading_guide
    ok = {"sent": 10, "replies": 10, "lost": 0, "committed": 7, "rejected": 2, "failed": 1}
    assert not [line for line in reading_guide(ok) if line.startswith("note:")]
    bad = dict(ok, replies=9, lost=0, committed=7)
    notes = [line for line in reading_guide(bad) if line.startswith("note:")]
    assert notes == ["note: sent 10 is not replies 9 + lost 0",
                     "note: committed + rejected + failed + dup = 10, not the 9 replies (a request with no reply may "
                     "still have its deal row, or a reply no deal row)"]


def test_bsp_command_is_what_the_shell_can_start(tmp_path, monkeypatch):
    from engine.sim.services import demo as demo_mod
    venv_bsp = tmp_path / ".venv" / "bin" / "bsp"
    venv_bsp.parent.mkdir(parents=True)
    venv_bsp.write_text("#!/bin/sh\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(demo_mod.sys, "argv", [str(venv_bsp), "demo"])
    monkeypatch.setenv("PATH", "/nonexistent")
    assert demo_mod.bsp_command() == ".venv/bin/bsp"            # make demo: not on PATH, under the repo
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert demo_mod.bsp_command() == str(venv_bsp)              # elsewhere: the full path
    venv_bsp.chmod(0o755)
    monkeypatch.setenv("PATH", str(venv_bsp.parent))
    assert demo_mod.bsp_command() == "bsp"                      # on PATH (an activated venv): plain bsp


def test_a_second_demo_on_the_same_ledger_loses_nothing_either(tmp_path):
    """``make demo`` twice the same day in one checkout: the key store outlives a run, so a simulator whose
    route keys a deal on something else than the reference (the cooling-off cancellation: insurer + policy)
    must not send the first run's keys again, or the second run's requests come back duplicates of the first
    run's deals (37 "lost" in a full second demo, 2026-11-28)."""
    ledger = tmp_path / "bsp.duckdb"
    counts = []
    for _ in range(2):
        res = run_all_services_demo(per_service=40, bill_count=60, ledger_path=ledger,
                                    console=Console(file=StringIO(), width=100))
        assert res["lost"] == 0, res["lost_examples"]
        assert res["unexpected"] == 0
        counts.append(res["sent"])
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        cancels = con.execute("SELECT count(*) FROM deals WHERE route = 'cooling_off_cancel' "
                              "AND status <> 'duplicate'").fetchone()[0]
    finally:
        con.close()
    assert cancels >= 2         # the case this guards ran in both runs (a cancellation is one request in ten)
