"""``bsp deals show``: one deal's whole story from a real ledger."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import trio
import typer
from typer.testing import CliRunner

from engine.commands.deals import register
from engine.deal import DealEvent, DealRecord, DealStep
from engine.ledger import open_ledger

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def story_deal() -> DealRecord:
    return DealRecord(
        deal_type="BILL_PAYMENT", route="bill_payment", config_version="cfg1", channel="mainframe",
        status="rejected", received_at=T0, finished_at=T0 + timedelta(milliseconds=42), reference="000123",
        amount=Decimal("120.5"), currency="CNY", party="EL01", response_code="13", reason="biller said 13",
        request={"trace_no": "000123", "amount": Decimal("120.50")}, response={"resp_code": "13"},
        steps=[DealStep("decode", "decode", "ok", T0, 0.3, vote="prepared"),
               DealStep("ask_biller", "call", "rejected", T0 + timedelta(milliseconds=1), 38.5,
                        detail={"channel": "biller", "code": "13"})],
        events=[DealEvent(T0, None, "received"),
                DealEvent(T0 + timedelta(milliseconds=42), "received", "rejected", {"code": "13"})])


def cli(*args: str):
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    register(app)
    return CliRunner().invoke(app, ["deals", *args])


def make(path: Path) -> DealRecord:
    rec = story_deal()

    async def go() -> None:
        async with open_ledger(path, audit_key=None, keyring=None) as ledger:
            await ledger.record_config("cfg1", {"/routes/bill.route": "route bill_payment {}"})
            await ledger.commit(rec)

    trio.run(go)
    return rec


def test_show_tells_the_whole_story(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    rec = make(path)
    res = cli("show", rec.deal_id, "--ledger", str(path))
    assert res.exit_code == 0, res.output
    out = res.output
    for text in (f"deal {rec.deal_id}  BILL_PAYMENT  rejected  code 13", "amount 120.50 CNY",
                 "reason: biller said 13", "configuration cfg1 loaded", "/routes/bill.route",
                 '"trace_no": "000123"', "2. ask_biller (call) rejected  38.5 ms", "calls:",
                 "ask_biller: rejected in 38.5 ms", '"resp_code": "13"', "(start) -> received",
                 "received -> rejected"):
        assert text in out, (text, out)
    # order: request, steps, calls, reply, events
    assert out.index("request:") < out.index("steps:") < out.index("calls:") < out.index("reply:") < out.index("events:")


def test_show_json_and_prefix(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    rec = make(path)
    res = cli("show", rec.deal_id[:10], "--ledger", str(path), "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["deal_id"] == rec.deal_id and d["amount"] == "120.50"
    assert [s["step"] for s in d["steps"]] == ["decode", "ask_biller"]
    assert [c["step"] for c in d["calls"]] == ["ask_biller"]
    assert [e["to_state"] for e in d["events"]] == ["received", "rejected"]
    assert d["events"][1]["detail"] == {"code": "13"}
    assert d["config"]["files"] == ["/routes/bill.route"]
    assert d["chain_seq"] == 2                       # after the config version


def test_show_errors(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    make(path)
    res = cli("show", "ffffffffffff", "--ledger", str(path))
    assert res.exit_code == 1 and "no deal 'ffffffffffff'" in res.output
    res = cli("show", "abc", "--ledger", str(path))
    assert res.exit_code == 2 and "at least its first 8" in res.output
    res = cli("show", "abcdef12", "--ledger", str(tmp_path / "none.duckdb"))
    assert res.exit_code == 2 and "no ledger file here" in res.output
    import duckdb
    duckdb.connect(str(tmp_path / "plain.duckdb")).close()               # DuckDB, but not a bsp ledger
    for args in (("--ledger", str(tmp_path / "plain.duckdb")), ("show", "abcdef12", "--ledger", str(tmp_path / "plain.duckdb"))):
        res = cli(*args)
        assert res.exit_code == 2 and "without bsp's tables (schema_version): is it a bsp ledger?" in res.output
        assert "Catalog Error" not in res.output
    # the list still works as before, with its options on the group
    res = cli("--ledger", str(path), "--json")
    assert res.exit_code == 0 and json.loads(res.stdout.splitlines()[0])["reference"] == "000123"


def test_a_ledger_named_before_show_is_the_one_read(tmp_path: Path, monkeypatch) -> None:
    """`bsp deals --ledger FILE show ID` (the listing's spelling, then the id): until 2026-11-27 the
    group's --ledger was dropped and show looked for var/bsp.duckdb ("no ledger file here")."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "l.duckdb"
    rec = make(path)
    res = cli("--ledger", str(path), "show", rec.deal_id)
    assert res.exit_code == 0, res.output
    assert f"deal {rec.deal_id}" in res.output
    res = cli("--ledger", str(tmp_path / "none.duckdb"), "show", rec.deal_id, "--ledger", str(path))
    assert res.exit_code == 0, res.output          # the one after the subcommand wins
