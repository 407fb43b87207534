"""``deal { match = ... }`` on the paths where a deal's fingerprint is made again at a restart
(engine/txn/recovery.py): a keyed payout left in flight by a crash is resolved on restart (flagged: its credit
may have gone through) and keeps its key; a repeat of its claim id naming another IBAN must be a key_conflict
there as in a running engine, never a duplicate of the flagged deal.  Until 2026-11-27 recovery made the
resolved deal's fingerprint without the match digest (three parts), so such a repeat was answered as a
duplicate of it.

Real engine in process (cut off with a cancel scope: no drain, no answer, no row), real JSON counterparts over
TCP on 127.0.0.1 port 0, a real DuckDB ledger and transaction log."""
from __future__ import annotations

from pathlib import Path

import orjson
import trio

from engine.txn import fingerprint, manager_for
from engine.txn.log import TxnLog, log_path
from test_txn_key_conflict import ask
from test_txn_key_conflict_match import IBAN, OTHER, claim
from test_txn_pivot_restart import Silent
from txnkit import Client, Counterpart, Unwritable, compile_text, deals, json_counterpart, running

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel credit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 30s }
route payout {
    receive from front as J
    deal CLAIM {
        ref = msg.claim  amount = msg.amount  currency = "EUR"  party = msg.product  key = msg.claim
        match = replace(upper(trim(msg.iban)), " ", "")
    }
    call c = credit as J reply J { op = "post"  ref = msg.claim  amount = msg.amount } expect c.status == "OK"
    reply J { ref = msg.claim  code = "00"  conf = c.conf }
    on error reply J { ref = msg.claim  code = error.code  kind = error.kind }
}
"""


async def test_a_deal_resolved_on_restart_keeps_its_match(nursery, tmp_path: Path) -> None:
    credit = Silent()
    program = compile_text(tmp_path, ROUTE % await json_counterpart(nursery, credit.answer))
    ledger = tmp_path / "l.duckdb"
    with trio.CancelScope() as crash:
        async with running(program, ledger) as sb:
            c = await Client.open(sb.channel("front").port)
            try:
                await c.send(orjson.dumps(claim("C7")))
                with trio.fail_after(10):                  # a guard against a hang, not a timing
                    await credit.held.wait()               # the credit's post reached its counterpart
                crash.cancel()                             # no drain, no answer, no deal row
                await trio.sleep_forever()
            finally:
                await trio.aclose_forcefully(c.stream)
    assert deals(ledger) == []
    txlog = TxnLog(log_path(ledger))
    assert len(txlog.pending) == 1
    txlog.close()
    credit.mute = False
    async with running(program, ledger) as sb:
        fp = manager_for(sb.ledger).log.ends["payout|C7"]["fp"]
        other, same = await ask(sb.channel("front").port, claim("C7", OTHER), claim("C7"))
    assert fp.endswith("|" + fingerprint.digest(IBAN)), fp       # the resolved deal's fingerprint has its match
    assert other == {"ref": "C7", "code": "12", "kind": "key_conflict"}
    assert same["kind"] == "duplicate" or same["code"] == "96", same  # the same claim: the flagged deal's answer
    assert credit.counts[("post", "C7")] == 1


async def test_a_deal_answered_while_the_log_could_not_be_written_keeps_its_match_after_a_restart(
        nursery, tmp_path: Path) -> None:
    """Its ``end`` never reached the log (a full disk after the call went out); its ledger row did.  The restart
    writes its ``end`` from the row (``recovery._answered_rows``), whose fingerprint has no match: until
    2026-11-27 a repeat naming another IBAN was then answered with the original's reply (code 00, PAID)."""

    state: dict = {}
    credit = Counterpart()

    def answer(req: dict) -> dict:
        if req.get("op") == "post" and "broken" not in state:
            state["broken"] = Unwritable(state["mgr"].log)     # the call went out: the log cannot take the end
        return credit.answer(req)

    program = compile_text(tmp_path, ROUTE % await json_counterpart(nursery, answer))
    ledger = tmp_path / "l.duckdb"
    try:
        async with running(program, ledger) as sb:
            state["mgr"] = manager_for(sb.ledger)
            (first,) = await ask(sb.channel("front").port, claim("C8"))
    finally:
        if "broken" in state:
            state["broken"].restore()
    assert first == {"ref": "C8", "code": "00", "conf": "C-C8-post"}
    assert [d["status"] for d in deals(ledger)] == ["committed"]
    async with running(program, ledger) as sb:         # recovery: the row says it was answered
        other, same = await ask(sb.channel("front").port, claim("C8", OTHER), claim("C8"))
        fp = manager_for(sb.ledger).log.ends["payout|C8"]["fp"]
    assert other == {"ref": "C8", "code": "12", "kind": "key_conflict"}
    assert fp.endswith("|" + fingerprint.digest(IBAN)), fp
    assert same == first
    assert credit.counts[("post", "C8")] == 1
