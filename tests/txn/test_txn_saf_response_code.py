"""A stored-and-forwarded ISO 8583 reversal is acknowledged by any 0430, whatever its DE 39 (the host has the
reversal; a repeat would get the same answer), but the 0430's response code is on the deal's story and one
that is not an approval ("25": original not found, "12": reversal declined) is counted for an operator
(docs/transactions.md "Store and forward", step 2; engine/txn/saf.py ``not_approved``).

Real engine in process, the issuer of ``engine.sim.reversal_host`` answering the 0420 with a chosen DE 39,
a real DuckDB ledger (audit chain checked) and transaction log."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from engine.ops.gauges import EngineMetrics
from engine.txn.log import TxnLog, log_path
from safkit import ROUTE, Host, ask, serving
from txnkit import audit_clean, compile_text, deals, rows


async def _acked_with(nursery, tmp_path: Path, code: str) -> tuple[Host, dict, list[dict], str]:
    async def ack(n: int, msg: dict) -> bool:
        return True

    host = Host(ack, code=code)
    port = await host.serve(nursery)
    ledger = tmp_path / "l.duckdb"
    async with serving(compile_text(tmp_path, ROUTE % (port, "300ms")), ledger) as sb:
        (queue,) = sb.saf
        # the 0200 is never answered: it times out (68) and its reversal is queued, then acknowledged at once
        assert (await ask(sb.channel("pos").port))["39"] == "68"
        with trio.fail_after(10):
            await queue.wait_empty()
        status = queue.status()
        metrics = EngineMetrics()
        metrics._sample_reversals(sb.saf)            # what a scrape of /metrics samples
        text = metrics.render().decode()
    (deal,) = deals(ledger)
    events = rows(ledger, "SELECT to_state, detail FROM deal_events WHERE deal_id = ? ORDER BY seq", [deal["deal_id"]])
    assert TxnLog(log_path(ledger)).reversals == {}                # acknowledged: done, never sent again
    audit_clean(ledger)
    return host, status, events, text


@pytest.mark.parametrize("code", ["25", "12"])
async def test_an_0430_that_is_not_an_approval_ends_the_repeats_and_is_counted_with_its_code(
        nursery, tmp_path: Path, code: str) -> None:
    host, status, events, text = await _acked_with(nursery, tmp_path, code)
    assert [m["t"] for m in host.seen] == ["0200", "0420"]          # not repeated on a non-00 0430
    assert status["acknowledged"] == 1 and status["not_approved"] == 1, status
    assert status["not_approved_channels"] == {"issuer": 1}, status
    assert 'bsp_reversals_not_approved{channel="issuer"} 1.0' in text
    by_state = {e["to_state"]: json.loads(e["detail"]) for e in events if e["detail"] is not None}
    assert [e["to_state"] for e in events][-2:] == ["reversal 0420", "reversed auth"]
    assert by_state["reversed auth"]["response_code"] == code and by_state["reversed auth"]["approved"] is False
    assert by_state["reversal 0420"]["response_code"] == code and by_state["reversal 0420"]["approved"] is False


async def test_an_approved_0430_is_recorded_with_its_code_and_not_counted(nursery, tmp_path: Path) -> None:
    host, status, events, text = await _acked_with(nursery, tmp_path, "00")
    assert [m["t"] for m in host.seen] == ["0200", "0420"]
    assert status["acknowledged"] == 1 and status["not_approved"] == 0 and status["not_approved_channels"] == {}
    assert "bsp_reversals_not_approved{" not in text
    (acked,) = [json.loads(e["detail"]) for e in events if e["to_state"] == "reversed auth"]
    assert acked["response_code"] == "00" and acked["approved"] is True


def test_an_acknowledgement_read_back_from_the_log_keeps_its_code(tmp_path: Path) -> None:
    """A reversal acknowledged just before a crash (``revack`` in the log, its story not yet on the deal) is
    recorded on the deal after the restart from the log (``reversed NAME``, "acknowledged before a restart"):
    with its DE 39 and ``approved``, which close a ``reversal flagged`` of the call (engine.deal_resolve).
    Until 2026-11-27 the log's reader kept only mti, detail and at of the ``revack``: the deal's flag stayed
    open after the restart although the host had approved the reversal."""
    path = log_path(tmp_path / "l.duckdb")
    log = TxnLog(path)
    log.append([{"t": "rev", "id": "d1", "step": "auth", "r": "purchase", "c": "pos", "at": "t0", "values": {}},
                {"t": "revtry", "id": "d1", "step": "auth", "n": 1},
                {"t": "revack", "id": "d1", "step": "auth", "n": 1, "mti": "0420", "detail": "0430",
                 "at": "t1", "response_code": "00", "approved": True}])
    log.close()
    again = TxnLog(path)
    try:
        ack = again.reversals["d1|auth"]["ack"]
    finally:
        again.close()
    assert ack == {"mti": "0420", "detail": "0430", "at": "t1", "response_code": "00", "approved": True}, ack
