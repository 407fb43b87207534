"""A `readonly` call (an enquiry: it changes nothing at the counterpart) is never a pivot and never flagged
in doubt (docs/transactions.md "Enquiries: readonly calls").

Without `readonly`, an enquiry without a compensation is treated as any call that cannot be undone: left in
doubt (a timeout) it flags its deal for an operator, and once it went through, a later failure keeps the
debit before it (the pivot rule) and flags the deal. Both are wrong for an enquiry, which moved nothing.

Real engine (LiveEngine), real loopback counterparts, a real DuckDB ledger and transaction log; the
enquiry channel's own timeout (300 ms), bounded by the test's ``fail_after``."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import trio

from engine.ops.backend import EngineBackend
from opskit import live, rows
from test_ops_dead_retry_keys import Host, ask, letter_of, req, retry
from test_ops_doubt_flagged import Mute
from test_ops_pivot import deal_of

ROUTE = '''
format J = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel debit = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 2s }
channel enq = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 300ms  reconnect_max = 100ms }

route payout {
    receive from front as J
    deal PAYOUT { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref + "/" + msg.day }
    call d = debit as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect d.status == "OK"
        compensate call debit as J reply J { op = "cancel"  ref = msg.ref } expect d.status == "OK"
    call e = enq as J reply J %s{ op = "post"  ref = msg.ref } expect e.status == "OK"
    validate {
        e.ref != "X1"  else reject "57" "the enquiry says no"
    }
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code  flagged = error.flagged  undone = error.undone }
}
'''


async def _run(nursery, tmp_path: Path, readonly: bool):
    debit, enq = await Host().bind(), await Mute().bind()
    enq.mute.add("T1")                                  # the enquiry is read, never answered: timeout
    for h in (debit, enq):
        await h.up(nursery)
    path = tmp_path / "payout.route"
    path.write_text(ROUTE % (debit.port, enq.port, "readonly " if readonly else ""))
    ledger = tmp_path / "l.duckdb"
    async with live([path], ledger) as eng:
        port = eng.channels["front"].port
        with trio.fail_after(10):                       # a guard against a hang, not a timing
            said_no = await ask(port, req("X1"))         # the enquiry went through; the validate after it fails
            timed = await ask(port, req("T1"))
        letter = await letter_of(ledger, "T1")
        res = await retry(eng, letter["id"])
        status = await EngineBackend(eng, eng.observer).status()
    return debit, enq, ledger, timed, said_no, res, status


async def test_a_readonly_enquiry_is_no_pivot_and_is_not_flagged_in_doubt(nursery, tmp_path: Path) -> None:
    debit, enq, ledger, timed, said_no, res, status = await _run(nursery, tmp_path, readonly=True)
    # in doubt: the debit is cancelled, the deal is not flagged (the enquiry moved nothing)
    assert timed == {"ref": "T1", "code": "68", "flagged": False, "undone": True}, timed
    # went through, then a later failure: the debit is cancelled too (the enquiry is no pivot)
    assert said_no == {"ref": "X1", "code": "57", "flagged": False, "undone": True}, said_no
    # (T1 twice: the retry of its dead letter below runs again, and is undone again)
    assert debit.counts == Counter({("post", "T1"): 2, ("cancel", "T1"): 2, ("post", "X1"): 1,
                                    ("cancel", "X1"): 1}), debit.counts
    assert status["flagged_deals"] == 0, status
    assert rows(ledger, "SELECT count(*) FROM deal_events WHERE to_state = 'flagged'") == [(0,)]
    assert all("flagged for an operator" not in (r or "") for (r,) in rows(ledger, "SELECT reason FROM deals"))
    did, st, _, _ = deal_of(ledger, "X1")
    assert st == "rejected"
    # the enquiry's trace line votes `readonly`: it prepared nothing to commit or undo
    assert rows(ledger, f"SELECT vote, outcome FROM deal_steps WHERE deal_id = '{did}' AND step = 'e'") == \
        [("readonly", "ok")]
    # nothing of T1 stays anywhere (the debit is back, the enquiry changed nothing): its key is free, and a
    # retry of its dead letter runs as a new deal (the enquiry still does not answer: it fails again)
    assert not res["outcome"].startswith("duplicate"), res
    assert enq.counts[("post", "T1")] == 2, enq.counts


async def test_without_readonly_the_same_enquiry_flags_its_deals(nursery, tmp_path: Path) -> None:
    debit, enq, ledger, timed, said_no, res, status = await _run(nursery, tmp_path, readonly=False)
    assert timed["flagged"] is True and said_no["flagged"] is True, (timed, said_no)
    assert ("cancel", "X1") not in debit.counts          # kept by the pivot rule
    assert status["flagged_deals"] == 2, status
    assert res["outcome"].startswith("duplicate"), res


LIGHT = '''
format J = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel enq = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 300ms  reconnect_max = 100ms }

route balance {
    receive from front as J
    deal BALANCE { ref = msg.ref  amount = 0  currency = "EUR" }
    call e = enq as J reply J %s{ op = "post"  ref = msg.ref } expect e.status == "OK"
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code  flagged = error.flagged }
}
'''


async def test_a_readonly_enquiry_of_a_light_route_left_in_doubt_is_not_flagged(nursery, tmp_path: Path) -> None:
    for readonly, flagged in ((True, False), (False, True)):
        enq = await Mute().bind()
        enq.mute.add("T1")
        await enq.up(nursery)
        folder = tmp_path / str(readonly)
        folder.mkdir()
        path = folder / "balance.route"
        path.write_text(LIGHT % (enq.port, "readonly " if readonly else ""))
        async with live([path], folder / "l.duckdb") as eng:
            with trio.fail_after(10):
                timed = await ask(eng.channels["front"].port, req("T1"))
            status = await EngineBackend(eng, eng.observer).status()
        assert timed == {"ref": "T1", "code": "68", "flagged": flagged}, (readonly, timed)
        assert status["flagged_deals"] == (1 if flagged else 0), status
