"""An ISO 8583 reversal stored and forwarded that is flagged by its own rule (``reversal flagged`` after
``alert_after`` attempts, docs/transactions.md "Store and forward") flags its deal where operators look:
the route's ``flagged`` and ``flagged_deals`` in ``bsp status``, ``bsp_route_flagged_total``, ``GET
/deals?flagged=1`` and ``bsp deals --flagged``, at the moment it is flagged (after the deal's row was
written).  Until 2026-11-26 it showed only in ``bsp status`` ``reversals``: an operator working the
flagged list missed exactly the card deals where the customer may have been charged.

Its reason and dead letter say so too, as a deal flagged with its row does ("...; flagged for an operator:
WHY", naming the reversal and what to do): ``bsp dead list --reason flagged`` (the filter docs/transactions.md
gives an operator) finds it, ``bsp dead show`` and ``bsp deals show`` tell it.  Until 2026-11-27 they kept the
reason written with the row, before the flag, and the dead-letter filter missed exactly these deals.

Real engine (LiveEngine, its observer and admin backend), a real ISO 8583 issuer on 127.0.0.1
(engine.sim.reversal_host) that never answers the 0200 and never acknowledges the reversal, a real
audited ledger: the flag is an appended event (the row and its dead letter, written before, are chained and
never changed; the note is read from the event), so ``bsp audit verify`` stays clean."""
from __future__ import annotations

import base64
import io
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
import trio
from rich.console import Console
from typer.testing import CliRunner

from engine.admin.backend import DeadLetterQuery, DealQuery
from engine.cli import app
from engine.deal import to_json
from engine.deal_resolve import Refused
from engine.ledger_store import LedgerStore
from engine.commands.top import render
from engine.ledger_query import get_deal, query_deals
from engine.ops.backend import EngineBackend
from engine.ops.openflags import load_open_flags
from engine.sim.reversal_host import ReversalHost
from opskit import live, rows
from test_ops_reload_saf import ISSUER, _purchase


async def test_a_reversal_flagged_by_its_own_rule_flags_its_deal_where_operators_look(
        nursery, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(b"k" * 32).decode())   # the ledger is HMAC-chained
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)

    answer = {"now": False}

    async def never(n: int, msg: dict) -> bool:
        return answer["now"]                           # no 0430 until the end: each attempt times out

    host = ReversalHost(never)
    port = await host.serve(nursery)
    route = tmp_path / "pay.route"
    route.write_text(ISSUER % {"port": port, "timeout": "200ms", "route": "purchase"})
    ledger = tmp_path / "l.duckdb"
    async with live([route], ledger) as eng:
        (q,) = eng.saf
        q.alert_after, q.backoff_cap = 2, 0.2          # flagged after 2 attempts of 0.2 s, 0.1-0.2 s apart
        backend = EngineBackend(eng, eng.observer)
        await load_open_flags(eng.observer.open_flags, eng.ledger)     # as bsp run does at the start
        await _purchase(eng, "000123")                 # the 0200 times out: answered 68, reversal queued
        before = await backend.status()
        assert before["routes"]["purchase"]["failed"] == 1 and before["routes"]["purchase"]["flagged"] == 0
        with trio.fail_after(10):
            while q.flagged == 0:
                await trio.sleep(0.02)
        status = await backend.status()                # at the moment it is flagged, not at the next deal
        metrics = eng.observer.metrics.render().decode()
        with trio.fail_after(10):                      # its event is appended after the row
            while not (flagged := await backend.deals(DealQuery(flagged=True))):
                await trio.sleep(0.02)
        live_letters = await backend.dead_letters(DeadLetterQuery(reason="flagged for an operator"))   # bsp dead list --live
        live_deal = await backend.deal(flagged[0]["deal_id"])                          # bsp deals show --live
        with trio.fail_after(10):                      # more attempts, never counted twice
            while host.reversals < 4:
                await trio.sleep(0.02)
        again = await backend.status()
        by_route_again = eng.observer.open_flags.by_route()     # bsp_deals_flagged_open_by_route (engine/ops/gauges.py)
        answer["now"] = True                           # the issuer comes back: the reversal is acknowledged
        with trio.fail_after(10):
            await q.wait_empty()
        after = await backend.status()
        by_route_after = eng.observer.open_flags.by_route()
        remembered = set(q.flagged_deals)              # nothing kept for a deal whose reversals are all done
        # the host settled it: the flag is closed (read from the `reversed auth` event), live as offline
        open_after = await backend.deals(DealQuery(flagged=True))                        # bsp deals --flagged --live
        all_after = await backend.deals(DealQuery(flagged=True, resolved=True))          # ... --all
        live_after = await backend.deal(flagged[0]["deal_id"])
        with pytest.raises(Refused) as refused:       # POST /deals/{id}/resolve: 409, nothing written
            await backend.resolve_deal(flagged[0]["deal_id"], "undone", "by hand", "alice", {"peer": "127.0.0.1"})
    assert status["routes"]["purchase"]["flagged"] == 1 and status["flagged_deals"] == 1, status
    assert again["routes"]["purchase"]["flagged"] == 1 and again["flagged_deals"] == 1, again
    assert after["flagged_deals"] == 1 and remembered == set(), (after, remembered)   # counted since start
    assert again["open_flags"] == 1 and after["open_flags"] == 0, (again, after)     # open now: the ack closed it
    # a reversal flagged later, its event appended without a route: counted under its deal's route all the same
    assert by_route_again == {"purchase": 1} and by_route_after == {}, (by_route_again, by_route_after)
    assert status["reversals"]["flagged"] == 1, status["reversals"]
    assert 'bsp_route_flagged_total{route="purchase"} 1.0' in metrics, metrics
    table = Console(width=240, record=True, file=io.StringIO())
    table.print(render(dict(status), None, 0, {}))      # bsp status --table, bsp top
    assert "deals flagged for an operator since start: 1" in table.export_text()
    [(deal,)] = rows(ledger, "SELECT deal_id FROM deals")
    assert [d["deal_id"] for d in flagged] == [deal]
    states = [s for (s,) in rows(ledger, f"SELECT to_state FROM deal_events WHERE deal_id = '{deal}' ORDER BY seq")]
    assert states.count("reversal flagged") == 1 and "flagged" not in states, states
    # the flag is closed by the acknowledgement after it (approved, code 00): out of the open flags, under --all
    # with how it closed; a resolution is refused (already settled); the chained rows and events are as written
    assert open_after == [] and [d["deal_id"] for d in all_after] == [deal], (open_after, all_after)
    res = all_after[0]["resolution"]
    assert res["outcome"] == "reversal acknowledged" and res["response_code"] == "00" and res["call"] == "auth", res
    assert live_after is not None and live_after["flag"] == "acknowledged", live_after
    assert refused.value.why == "already_settled" and "already settled: the reversal was acknowledged at" \
        in str(refused.value), refused.value
    states = [s for (s,) in rows(ledger, f"SELECT to_state FROM deal_events WHERE deal_id = '{deal}' ORDER BY seq")]
    assert states.count("reversal flagged") == 1 and "flagged" not in states and "resolved" not in states, states
    assert states.index("reversed auth") > states.index("reversal flagged"), states
    # offline, as the operator lists them once the engine has stopped; the ledger's chain is intact
    assert query_deals(ledger, flagged=True) == []
    [closed] = query_deals(ledger, flagged=True, resolved=True)
    assert closed["deal_id"] == deal and closed["resolution"]["at"] == res["at"], closed
    [(acked_at,)] = rows(ledger, f"SELECT strftime(\"at\" AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ') FROM deal_events "
                                 f"WHERE deal_id = '{deal}' AND to_state = 'reversed auth'")
    out = CliRunner().invoke(app, ["deals", "--ledger", str(ledger), "--flagged", "--json"])
    assert out.exit_code == 0 and deal not in out.output, out.output
    out = CliRunner().invoke(app, ["deals", "--ledger", str(ledger), "--flagged", "--all"])
    assert out.exit_code == 0 and f"reversal acknowledged at {acked_at} (code" in out.output, out.output   # its column
    out = CliRunner().invoke(app, ["deals", "--ledger", str(ledger), "--flagged", "--all", "--json"])
    assert out.exit_code == 0 and [orjson.loads(line)["resolution"]["outcome"] for line in out.output.splitlines()] \
        == ["reversal acknowledged"], out.output
    # (tmp_path names this test, "...flagged...", and the reason names the route file: so the filter's full text)
    # its reason and dead letter name the flag and what to do, as a deal flagged with its row does, then the
    # acknowledgement that closed it; the row and the dead letter as written (chained) are unchanged: the note
    # comes from the appended events
    [(stored,)] = rows(ledger, f"SELECT reason FROM dead_letters WHERE id = '{deal}'")
    assert "flagged for an operator" not in stored and rows(ledger, "SELECT reason FROM deals") == [(stored,)], stored
    note = ("; flagged for an operator: call auth (ISO 8583 0200 to channel issuer) got no answer it can trust and "
            "its reversal (0420) is not acknowledged after 2 attempts")
    ack = (f"(event `reversed auth` on the deal); reversal acknowledged after the flag at {acked_at} (code 00): "
           f"the host reversed the original, the flag is closed: nothing is left to settle")
    assert [r["id"] for r in live_letters] == [deal] and live_letters[0]["reason"].startswith(stored + note), live_letters
    assert live_deal is not None and live_deal["reason"].startswith(stored + note), live_deal
    assert "settle it there" in live_deal["reason"] and live_deal["flag"] == "open", live_deal
    assert live_after["reason"].startswith(stored + note) and live_after["reason"].endswith(ack), live_after["reason"]
    out = CliRunner().invoke(app, ["dead", "list", "--ledger", str(ledger), "--reason", "Flagged for an operator", "--json"])
    assert out.exit_code == 0 and deal in out.output, out.output
    out = CliRunner().invoke(app, ["dead", "list", "--ledger", str(ledger), "--reason", "not acknowledged", "--json"])
    assert out.exit_code == 0 and deal in out.output, out.output
    out = CliRunner().invoke(app, ["dead", "list", "--ledger", str(ledger), "--reason",
                                   f"Reversal acknowledged after the flag at {acked_at} (code 00)", "--json"])
    assert out.exit_code == 0 and deal in out.output, out.output      # the filter reads the note as shown
    out = CliRunner().invoke(app, ["dead", "list", "--ledger", str(ledger), "--reason", "no such text", "--json"])
    assert out.exit_code == 0 and deal not in out.output, out.output
    out = CliRunner().invoke(app, ["dead", "show", deal, "--ledger", str(ledger)])
    assert out.exit_code == 0 and note in out.output and ack in out.output, out.output
    out = CliRunner().invoke(app, ["deals", "show", deal, "--ledger", str(ledger)])
    assert out.exit_code == 0 and f"reason: {stored}{note}" in out.output and ack in out.output, out.output
    assert "flag closed: reversal acknowledged at" in out.output and "(code 00, call auth)" in out.output, out.output
    assert "not resolved" not in out.output, out.output
    assert closed["reason"].startswith(stored + note) and closed["reason"].endswith(ack), closed
    out = CliRunner().invoke(app, ["deals", "resolve", deal, "--ledger", str(ledger), "--outcome", "undone",
                                   "--note", "reversed by hand"])
    assert out.exit_code == 1 and "already settled: the reversal was acknowledged at" in out.output, out.output
    assert "resolved" not in [s for (s,) in rows(ledger, f"SELECT to_state FROM deal_events WHERE deal_id = '{deal}'")]
    # an ordinary flag (a call in doubt, event `flagged`) is closed by a resolution only, never by an acknowledged
    # reversal, even of the call it names (appended here as the engine would: through the audited store)
    now = datetime.now(timezone.utc)
    store = LedgerStore.open(ledger, b"k" * 32)
    try:
        (done,) = store.append_stories([(deal, [], [
            {"at": now, "to_state": "flagged", "detail": to_json({"why": "call auth in doubt", "not_undone": ["auth"]})},
            {"at": now, "to_state": "reversed auth", "detail": to_json({"attempts": 1, "response_code": "00",
                                                                        "approved": True})}], None)])
    finally:
        store.close()
    assert done is None or not isinstance(done, BaseException), done
    assert [d["deal_id"] for d in query_deals(ledger, flagged=True)] == [deal]
    assert get_deal(ledger, deal)["flag"] == "open" and query_deals(ledger, flagged=True)[0]["resolution"] is None
    out = CliRunner().invoke(app, ["audit", "verify", "--ledger", str(ledger)])
    assert out.exit_code == 0 and "chain" in out.output.lower(), out.output


async def test_a_reversal_acknowledged_after_its_flag_with_a_code_not_an_approval_leaves_the_flag_open(
        nursery, tmp_path: Path) -> None:
    """The host answers the reversal with DE 39 25 (original not found): acknowledged (not repeated), but it did
    not say it reversed the 0200: the flag stays open, the note says why, and the operator can resolve it."""
    answer = {"now": False}

    async def later(n: int, msg: dict) -> bool:
        return answer["now"]

    host = ReversalHost(later, code="25")
    port = await host.serve(nursery)
    route = tmp_path / "pay.route"
    route.write_text(ISSUER % {"port": port, "timeout": "200ms", "route": "purchase"})
    ledger = tmp_path / "l.duckdb"
    async with live([route], ledger) as eng:
        (q,) = eng.saf
        q.alert_after, q.backoff_cap = 2, 0.2
        await _purchase(eng, "000124")
        with trio.fail_after(10):
            while q.flagged == 0:
                await trio.sleep(0.02)
        answer["now"] = True
        with trio.fail_after(10):
            await q.wait_empty()
    [(deal,)] = rows(ledger, "SELECT deal_id FROM deals")
    [listed] = query_deals(ledger, flagged=True)
    assert listed["deal_id"] == deal and listed["resolution"] is None, listed
    still = "with code 25, not an approval: the flag stays open; ask the host about the original"
    assert listed["reason"].endswith(still) and "; reversal acknowledged after the flag at " in listed["reason"], listed
    out = CliRunner().invoke(app, ["dead", "list", "--ledger", str(ledger), "--reason", still, "--json"])
    assert out.exit_code == 0 and deal in out.output, out.output
    out = CliRunner().invoke(app, ["deals", "resolve", deal, "--ledger", str(ledger), "--outcome", "not-applied",
                                   "--note", "the issuer never had the 0200, ref I-1"])
    assert out.exit_code == 0, out.output
    assert query_deals(ledger, flagged=True) == []
