"""The deals waiting for an operator now: ``bsp status`` ``open_flags`` and ``bsp_deals_flagged_open``
(engine/ops/openflags.py): read from the ledger when the engine starts (a flag of an earlier run, a resolution
made offline), then kept as flags are raised and resolved.

The deals are flagged for real (a call whose counterpart never answers is left in doubt: engine.txn.pivot);
real engines with their admin API on port 0, a real keyed DuckDB ledger, ``bsp deals resolve`` offline in a
subprocess."""
from __future__ import annotations

import io
import os
from pathlib import Path

import httpx
import trio
from rich.console import Console

from engine.commands.top import render
from engine.ops.openflags import OpenFlags
from engine.ops.serve import AdminOptions, OpsOptions, run_live
from engine.registry import default_registry
from opskit import alter_deal_events, compile_file, json_counterpart
from test_ops_deal_resolve import KEY, TOKEN, _answer, _ask, _bsp, _ids, _route


async def _engine(nursery, route: Path, ledger: Path):
    """A ``bsp run`` with its admin API; returns (engine, admin URL, stopped)."""
    registry = default_registry()
    box: list = []
    ready, stopped = trio.Event(), trio.Event()

    async def serve() -> None:
        ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=TOKEN), hooks=[lambda e: (box.append(e),
                                                                                                ready.set())])
        await run_live(compile_file(route, registry), registry, ledger_path=ledger, load=lambda: ([route], {}),
                       grace=2.0, ops=ops)
        stopped.set()

    nursery.start_soon(serve)
    await ready.wait()
    return box[0], f"http://127.0.0.1:{box[0].admin_port}", stopped


async def _open(client: httpx.AsyncClient) -> tuple[int, str]:
    """``open_flags`` once read from the ledger, and the gauge's line in /metrics."""
    with trio.fail_after(10):                 # a guard against a hang, not a timing
        while (n := (await client.get("/status")).json()["open_flags"]) is None:
            await trio.sleep(0.02)
    line = [m for m in (await client.get("/metrics")).text.splitlines() if m.startswith("bsp_deals_flagged_open ")]
    return n, line[0] if line else ""


async def _by_route(client: httpx.AsyncClient) -> list[str]:
    """The per-route lines of the open-flags gauge in the real /metrics (their sum is the total)."""
    return [m for m in (await client.get("/metrics")).text.splitlines()
            if m.startswith("bsp_deals_flagged_open_by_route{")]


async def _stop(eng, stopped) -> None:
    eng.drain()
    with trio.fail_after(20):
        await stopped.wait()


async def test_open_flags_follow_the_flags_and_survive_a_restart(nursery, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BSP_AUDIT_KEY", KEY)
    back = await json_counterpart(nursery, _answer)
    route, ledger = _route(tmp_path, back), tmp_path / "l.duckdb"
    auth = {"authorization": f"Bearer {TOKEN}"}

    eng, url, stopped = await _engine(nursery, route, ledger)
    async with httpx.AsyncClient(base_url=url, headers=auth) as client:
        assert await _open(client) == (0, "bsp_deals_flagged_open 0.0")       # a new ledger: none
        assert await _by_route(client) == ['bsp_deals_flagged_open_by_route{route="pay"} 0.0']   # a configured route
        await _ask(eng.current.channels["front"].port, ["K1", "D1", "D2"])   # D1, D2 left in doubt: flagged
        assert await _open(client) == (2, "bsp_deals_flagged_open 2.0")
        assert await _by_route(client) == ['bsp_deals_flagged_open_by_route{route="pay"} 2.0']
        flagged = (await client.get("/deals", params={"flagged": "1"})).json()["deals"]
        ids = {d["reference"]: d["deal_id"] for d in flagged}
        resp = await client.post(f"/deals/{ids['D1']}/resolve", json={"outcome": "undone", "note": "OPS-1"})
        assert resp.status_code == 200, resp.text
        assert await _open(client) == (1, "bsp_deals_flagged_open 1.0")      # resolved live
        status = (await client.get("/status")).json()
        assert status["flagged_deals"] == 2 and status["resolved_deals"] == 1, status   # since start: unchanged
    await _stop(eng, stopped)

    eng, url, stopped = await _engine(nursery, route, ledger)
    async with httpx.AsyncClient(base_url=url, headers=auth) as client:
        assert await _open(client) == (1, "bsp_deals_flagged_open 1.0")      # D2, flagged in the earlier run
        assert await _by_route(client) == ['bsp_deals_flagged_open_by_route{route="pay"} 1.0']   # its route: the ledger's
        status = (await client.get("/status")).json()
        assert status["flagged_deals"] == 0, status                         # the since-start count does not see it
    table = Console(width=240, record=True, file=io.StringIO())
    table.print(render(dict(status), None, 0, {}))                           # bsp status --table, bsp top
    text = table.export_text()
    assert "deals waiting for an operator: 1 (flag open, not resolved: bsp deals --flagged --live" in text, text
    await _stop(eng, stopped)

    env = {**os.environ, "BSP_AUDIT_KEY": KEY}
    r = await trio.to_thread.run_sync(_bsp, env, "deals", "resolve", _ids(ledger)["D2"], "--outcome", "applied",
                                      "--note", "confirmed by the counterpart", "--by", "alice",
                                      "--ledger", str(ledger))
    assert r.returncode == 0, r.stderr

    eng, url, stopped = await _engine(nursery, route, ledger)
    async with httpx.AsyncClient(base_url=url, headers=auth) as client:
        assert await _open(client) == (0, "bsp_deals_flagged_open 0.0")      # the offline resolution is seen
        assert await _by_route(client) == ['bsp_deals_flagged_open_by_route{route="pay"} 0.0']
    await _stop(eng, stopped)


def _ev(to_state: str, **detail) -> dict:
    return {"to_state": to_state, "detail": detail}


def test_reversal_flags_close_by_an_approving_ack_of_their_call_and_events_during_the_load_count_once() -> None:
    f = OpenFlags()
    assert f.value is None                                                   # not read yet: unknown
    f.events("a", [_ev("reversal flagged", not_undone=["debit"])])           # written while the ledger is read
    f.events("b", [_ev("flagged")])
    f.load([("b", "flagged", None), ("c", "reversal flagged", "debit"), ("c", "reversal flagged", "fee")])
    assert f.value == 3
    f.events("a", [_ev("reversed debit", approved=False)])                   # not an approval: stays open
    f.events("c", [_ev("reversed debit", approved=True)])                    # closes c's debit flag only
    assert f.value == 3
    f.events("a", [_ev("reversed debit", approved=True)])
    f.events("c", [_ev("reversed fee", approved=True)])
    assert f.value == 1 and set(f.deals) == {"b"}
    f.events("b", [_ev("reversed debit", approved=True)])                    # an ordinary flag: only a resolution
    assert f.value == 1
    f.resolved("b")
    f.events("d", [_ev("flagged"), _ev("reversal flagged", not_undone=["x"]), _ev("reversed x", approved=True)])
    assert f.value == 1 and f.deals == {"d": {"flagged"}}
    assert f.by_route() == {"?": 1}                                          # no route told here


def test_open_flags_by_route_from_the_row_the_ledger_and_a_reversal_flagged_later() -> None:
    f = OpenFlags()
    assert f.by_route() == {}                                                # not read yet
    f.events("a", [_ev("flagged")], "pay")                                   # during the load: kept with its route
    f.load([("b", "flagged", None, "pay"), ("c", "reversal flagged", "debit", "purchase")])
    f.note_route("e", "purchase")                                            # told before its flag is appended
    f.events("e", [_ev("reversal flagged", not_undone=["auth"])])
    assert f.by_route() == {"pay": 2, "purchase": 2}
    f.events("c", [_ev("reversed debit", approved=True)])
    f.resolved("a")
    assert f.by_route() == {"pay": 1, "purchase": 1} and set(f.routes) == {"b", "e"}   # closed: forgotten


def test_an_older_ack_without_approved_is_judged_by_its_code_as_the_flagged_list_does() -> None:
    # a `reversed NAME` written before bsp kept `approved` has its response code alone: the same rule as
    # `bsp deals --flagged` (engine.txn.approval), not "no approved, so not an approval"
    f = OpenFlags()
    f.load([("a", "reversal flagged", "debit"), ("b", "reversal flagged", "debit")])
    f.events("a", [_ev("reversed debit", response_code="00")])
    f.events("b", [_ev("reversed debit", response_code="25")])
    assert f.value == 1 and set(f.deals) == {"b"}


async def test_a_start_read_that_fails_names_the_ledger_and_what_to_do(tmp_path: Path, caplog) -> None:
    from engine.ledger import open_ledger
    from engine.ops.openflags import load_open_flags

    path = tmp_path / "l.duckdb"
    flags = OpenFlags()
    async with open_ledger(path, audit_key=None, keyring=None) as ledger:
        # through the writer's instance: the table the read needs is gone
        alter_deal_events(path, "ALTER TABLE deal_events RENAME TO deal_events_moved")
        with caplog.at_level("ERROR", logger="bsp.run"):
            await load_open_flags(flags, ledger)
    assert flags.value is None
    (rec,) = [r for r in caplog.records if "flagged for an operator" in r.getMessage()]
    text = rec.getMessage()
    assert f"{path}: cannot read the deals flagged for an operator" in text, text
    assert "bsp status open_flags and bsp_deals_flagged_open stay unknown until the engine starts again" in text, text
    assert f"`bsp audit verify --ledger {path}`" in text, text
    assert "`bsp deals --flagged --live` lists the flagged deals meanwhile" in text, text
