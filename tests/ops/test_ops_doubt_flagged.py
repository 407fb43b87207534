"""A call without a compensation left in doubt is flagged for an operator (docs/transactions.md "A call left
in doubt that nothing can undo", engine/txn/pivot.py ``hold_doubt``, engine/txn/flagging.py).

A debit that has a compensation, then a credit that has none (an irrevocable credit to a clearing house):
the credit's request is written, then the counterpart closes the connection without an answer (``lost``)
or does not answer within the channel's timeout (``timeout``). The credit may have been applied and
nothing can undo it.

* By default (no ``on doubt``, or ``on doubt flag``) the credit is a possible pivot: the debit is **kept**
  (no cancel reaches the debit host: had the credit gone through, cancelling the debit would pay it out of
  the bank's own funds), and the deal is flagged for an operator with one reason that names the credit and
  the debit kept and says what to do either way; ``error.not_undone`` names both.
* Under ``on doubt compensate`` the debit is cancelled (the credit is no pivot: it may not have happened)
  and the deal is flagged for the credit alone (the behaviour before ``on doubt``, the default until
  2026-11-28).

Either way: ``error.flagged`` true, ``error.undone`` false, the event ``flagged``, the reason, ``bsp
status`` ``flagged`` / ``flagged_deals``, ``bsp_route_flagged_total``, the key kept (a retry of its dead
letter is a duplicate whose reason names the credit).

Real engine (LiveEngine), real loopback counterparts, a real DuckDB ledger and transaction log; the
timeout is the channel's own (300 ms), bounded by the test's ``fail_after``."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
import trio

from engine.admin.backend import DealQuery
from engine.ops.backend import EngineBackend
from formats.framing import LengthPrefixFramer
from opskit import live, rows
from test_ops_dead_retry_keys import CLOSE, Host, ask, connected, letter_of, req, retry
from test_ops_pivot import deal_of

ROUTE = '''
format J = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel debit = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 2s }
channel credit = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 300ms  reconnect_max = 100ms }

route payout {
    receive from front as J
    %s
    deal PAYOUT { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref + "/" + msg.day }
    call d = debit as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect d.status == "OK"
        compensate call debit as J reply J { op = "cancel"  ref = msg.ref } expect d.status == "OK"
    call c = credit as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect c.status == "OK"
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code  flagged = error.flagged  undone = error.undone
                       debit_stays = "d" in error.not_undone  credit_unknown = "c" in error.not_undone }
}
'''


class Mute(Host):
    """A ``Host`` that reads a ``post`` of a ref in ``mute`` and never answers it (the connection stays
    open): the engine's call times out."""

    def __init__(self) -> None:
        super().__init__()
        self.mute: set[str] = set()
        self.held = trio.Event()

    async def _serve(self, stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(4)
        async with stream:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return
                if not data:
                    return
                for p in f.feed(data):
                    r = orjson.loads(p)
                    op, ref = r.get("op", "post"), r.get("ref")
                    self.counts[(op, ref)] += 1
                    if ref in self.mute:
                        self.held.set()
                        continue                         # read, never answered
                    if self.how.get((op, ref)) == CLOSE:
                        return
                    await stream.send_all(f.frame(orjson.dumps({"status": self.how.get((op, ref), "OK"),
                                                                "ref": ref})))


async def _run(nursery, tmp_path: Path, policy: str) -> dict:
    """Three deals (T1 times out at the credit, L1 is lost there, K1 goes through) under ``policy``: the
    answers, a retry of T1's dead letter, the engine's figures, the counterparts' counts."""
    debit, credit = await Host().bind(), await Mute().bind()
    credit.how[("post", "L1")] = CLOSE                 # written, then the connection closes: lost
    credit.mute.add("T1")                              # written, never answered: timeout
    for h in (debit, credit):
        await h.up(nursery)
    path = tmp_path / "payout.route"
    path.write_text(ROUTE % (debit.port, credit.port, policy))
    ledger = tmp_path / "l.duckdb"
    out: dict = {"ledger": ledger, "debit": debit, "credit": credit}
    async with live([path], ledger) as eng:
        port = eng.channels["front"].port
        with trio.fail_after(10):                      # a guard against a hang, not a timing
            out["T1"] = await ask(port, req("T1"))
            out["L1"] = await ask(port, req("L1"))
        await connected(eng, "credit")                 # the credit host closed L1's connection
        with trio.fail_after(10):
            out["K1"] = await ask(port, req("K1"))
        letter = await letter_of(ledger, "T1")
        out["retry"] = await retry(eng, letter["id"])  # the key stays taken: nothing runs again
        backend = EngineBackend(eng, eng.observer)
        out["status"] = await backend.status()
        out["flagged"] = await backend.deals(DealQuery(flagged=True))
        out["metrics"] = eng.observer.metrics.render().decode()
    return out


def _flagged_everywhere(got: dict) -> None:
    assert got["K1"] == {"ref": "K1", "code": "00"}, got["K1"]
    res = got["retry"]
    assert res["ok"] is False and res["outcome"].startswith("duplicate: "), res
    assert got["credit"].counts == Counter({("post", "T1"): 1, ("post", "L1"): 1, ("post", "K1"): 1}), \
        got["credit"].counts                           # the credit is never repeated
    status = got["status"]
    assert status["routes"]["payout"]["flagged"] == 2 and status["flagged_deals"] == 2, status
    assert 'bsp_route_flagged_total{route="payout"} 2.0' in got["metrics"]
    assert len(got["flagged"]) == 2


@pytest.mark.parametrize("policy", ["", "on doubt flag"], ids=["default", "on_doubt_flag"])
async def test_a_credit_left_in_doubt_keeps_the_debit_and_flags_the_deal(nursery, tmp_path: Path, policy) -> None:
    got = await _run(nursery, tmp_path, policy)
    want = {"flagged": True, "undone": False, "debit_stays": True, "credit_unknown": True}
    assert got["L1"] == {"ref": "L1", "code": "91", **want}, got["L1"]
    assert got["T1"] == {"ref": "T1", "code": "68", **want}, got["T1"]
    _flagged_everywhere(got)
    # the debit is kept: no cancel reaches the debit host
    assert got["debit"].counts == Counter({("post", "T1"): 1, ("post", "L1"): 1, ("post", "K1"): 1}), \
        got["debit"].counts
    ledger = got["ledger"]
    for ref, kind in (("L1", "lost"), ("T1", "timeout")):
        _, st, reason, events = deal_of(ledger, ref)
        states = [e[0] for e in events if e[0] != "dead_letter"]   # a retry's claim and outcome (chained)
        assert st == "failed" and states[-3:] == ["calling c", "flagged", "failed"], states
        assert not any(s.startswith("compensat") for s in states), states
        [detail] = [orjson.loads(d) for s, d in events if s == "flagged"]
        assert detail["not_undone"] == ["d", "c"], detail
        why = (f"call c to credit got no answer it can trust ({kind}) and nothing can undo it (it has no "
               f"compensation): it may have gone through, so call d to debit is kept, not undone (on doubt flag): "
               f"the funds stay in place until its outcome is known; ask the counterpart whether it applied c: "
               f"if it did, nothing is to be undone; if it did not, undo call d to debit (e.g. reverse the debit)")
        assert detail["why"] == why, detail
        assert reason.endswith(f"; flagged for an operator: {why}"), reason
    # the duplicate's reason names the credit, says the deal is flagged and the debit kept
    [(dup_reason,)] = rows(ledger, "SELECT reason FROM deals WHERE reference = 'T1' AND status = 'duplicate'")
    assert "call c to credit may have reached the counterpart (timeout: sent, no answer it can trust), so the " \
           "deal is in doubt, flagged for an operator," in dup_reason, dup_reason
    assert "(call d to debit kept, not undone, until its outcome is known: undo it only if the counterpart did " \
           "not apply it)" in dup_reason, dup_reason


async def test_on_doubt_compensate_cancels_the_debit_and_flags_the_deal(nursery, tmp_path: Path) -> None:
    got = await _run(nursery, tmp_path, "on doubt compensate")
    want = {"flagged": True, "undone": False, "debit_stays": False, "credit_unknown": True}
    assert got["L1"] == {"ref": "L1", "code": "91", **want}, got["L1"]
    assert got["T1"] == {"ref": "T1", "code": "68", **want}, got["T1"]
    _flagged_everywhere(got)
    # the debit was cancelled (the credit is no pivot: it may not have happened)
    assert got["debit"].counts == Counter({("post", "T1"): 1, ("cancel", "T1"): 1, ("post", "L1"): 1,
                                           ("cancel", "L1"): 1, ("post", "K1"): 1}), got["debit"].counts
    ledger = got["ledger"]
    for ref, kind in (("L1", "lost"), ("T1", "timeout")):
        _, st, reason, events = deal_of(ledger, ref)
        states = [e[0] for e in events if e[0] != "dead_letter"]   # a retry's claim and outcome (chained)
        assert st == "failed" and states[-3:] == ["compensated d", "flagged", "failed"], states
        [detail] = [orjson.loads(d) for s, d in events if s == "flagged"]
        assert detail["not_undone"] == ["c"], detail
        assert detail["why"].startswith(f"call c to credit got no answer it can trust ({kind}): its outcome at the "
                                        f"counterpart is unknown (it may have applied it) and nothing can undo it "
                                        f"(it has no compensation); ask the counterpart whether it applied it"), detail
        assert "; flagged for an operator: call c to credit got no answer it can trust" in reason, reason
    [(dup_reason,)] = rows(ledger, "SELECT reason FROM deals WHERE reference = 'T1' AND status = 'duplicate'")
    assert "call c to credit may have reached the counterpart (timeout: sent, no answer it can trust), so the " \
           "deal is in doubt, flagged for an operator," in dup_reason, dup_reason
    assert "kept, not undone" not in dup_reason, dup_reason
