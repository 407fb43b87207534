"""The saga pivot rule (docs/transactions.md "The pivot: a call that cannot be undone", engine/txn/pivot.py).

A debit that has a compensation, then a credit that has none (an irrevocable pacs.008 to a clearing house,
say), then a step that fails: the debit must not be cancelled (the credit stands: cancelling the debit
would have the bank pay the credit from its own funds); the deal fails, flagged for an operator, its key
kept. A credit refused did nothing: the debit is cancelled as before.

Real engine (LiveEngine), real loopback counterparts, a real DuckDB ledger and transaction log."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson

from opskit import live, rows
from test_ops_dead_retry_keys import Host, ask, letter_of, req, retry

ROUTE = '''
format J = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel debit = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 2s }
channel credit = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 2s }
channel notify = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 2s }

route payout {
    receive from front as J
    deal PAYOUT { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref + "/" + msg.day }
    call d = debit as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect d.status == "OK"
        compensate call debit as J reply J { op = "cancel"  ref = msg.ref } expect d.status == "OK"
    call c = credit as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect c.status == "OK"
    call n = notify as J reply J { op = "post"  ref = msg.ref } expect n.status == "OK"
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code  flagged = error.flagged  undone = error.undone }
}
'''


async def hosts(nursery) -> tuple[Host, Host, Host]:
    out = (await Host().bind(), await Host().bind(), await Host().bind())
    for h in out:
        await h.up(nursery)
    return out


def route_file(tmp_path: Path, debit: Host, credit: Host, notify: Host) -> Path:
    path = tmp_path / "payout.route"
    path.write_text(ROUTE % (debit.port, credit.port, notify.port))
    return path


def deal_of(ledger: Path, ref: str) -> tuple[str, str, str, list[tuple]]:
    [(did, status, reason)] = rows(ledger, f"SELECT deal_id, status, reason FROM deals WHERE reference = '{ref}' "
                                           f"AND status <> 'duplicate'")
    events = rows(ledger, f"SELECT to_state, detail FROM deal_events WHERE deal_id = '{did}' ORDER BY seq")
    return did, status, reason, events


async def test_a_step_failing_after_the_credit_went_through_does_not_cancel_the_debit(nursery, tmp_path: Path) -> None:
    debit, credit, notify = await hosts(nursery)
    notify.how[("post", "P1")] = "NO"                  # the third step fails after the credit went through
    ledger = tmp_path / "l.duckdb"
    async with live([route_file(tmp_path, debit, credit, notify)], ledger) as eng:
        port = eng.channels["front"].port
        got = await ask(port, req("P1"))
        assert got == {"ref": "P1", "code": "05", "flagged": True, "undone": False}, got
        letter = await letter_of(ledger, "P1")
        # the key stays taken: a retry of its dead letter runs nothing again
        res = await retry(eng, letter["id"])
        assert res["ok"] is False and res["outcome"].startswith("duplicate: "), res
    # the debit host saw the post and no cancel; the credit went once
    assert debit.counts == Counter({("post", "P1"): 1}), debit.counts
    assert credit.counts == Counter({("post", "P1"): 1}) and notify.counts == Counter({("post", "P1"): 1})
    _, status, reason, events = deal_of(ledger, "P1")
    assert status == "failed"
    states = [e[0] for e in events]
    assert "flagged" in states and not any(s.startswith("compensat") for s in states), states
    [detail] = [orjson.loads(d) for s, d in events if s == "flagged"]
    assert detail["not_undone"] == ["d", "c"], detail
    assert detail["why"].startswith("call c to credit went through and has no compensation: call d to debit not "
                                    "undone"), detail
    assert "flagged for an operator: call c to credit went through and has no compensation" in reason, reason
    # the engine's status counts it as flagged
    [(n,)] = rows(ledger, "SELECT count(*) FROM deal_events WHERE to_state = 'flagged'")
    assert n == 1


async def test_a_refused_credit_is_no_pivot_the_debit_is_cancelled(nursery, tmp_path: Path) -> None:
    debit, credit, notify = await hosts(nursery)
    credit.how[("post", "R1")] = "NO"
    ledger = tmp_path / "l.duckdb"
    async with live([route_file(tmp_path, debit, credit, notify)], ledger) as eng:
        got = await ask(eng.channels["front"].port, req("R1"))
        assert got == {"ref": "R1", "code": "05", "flagged": False, "undone": True}, got
    assert debit.counts == Counter({("post", "R1"): 1, ("cancel", "R1"): 1}), debit.counts
    assert notify.counts == Counter()
    _, status, reason, events = deal_of(ledger, "R1")
    assert status == "failed" and "flagged" not in [e[0] for e in events], events
    assert "compensated d" in [e[0] for e in events]
