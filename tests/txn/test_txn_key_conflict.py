"""A deal key repeated for ANOTHER deal (same reference, another amount, currency or party) is refused with kind
``key_conflict`` (engine/txn/fingerprint.py, docs/transactions.md#a-repeat-that-is-another-deal-key_conflict),
not answered with the original's answer as a duplicate; a true retry (same deal values, another message id) is
still a duplicate.  Also after a restart (the fingerprint read from the transaction log) and past the key
store's retention (read from the ledger's deals row).  Until 2026-11-27 each such repeat silently got the
first deal's answer and was recorded as an ordinary duplicate.

Real engine in process, real JSON counterparts over TCP and HTTP clients on 127.0.0.1 port 0, a real DuckDB
ledger and transaction log; time moves through the manager's injectable clock."""
from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from engine.metrics import Metrics
from engine.ops.observe import Observer
from engine.txn import manager_for
from test_txn_key_retention import DAY, Clock, serving
from txnkit import Client, Counterpart, compile_text, json_counterpart, rows, running

TCP_ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel debit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 2s }
route pay {
    receive from front as J
    deal BILL { ref = msg.ref  amount = msg.amount  currency = msg.ccy  party = msg.acct  key = msg.ref }
    call d = debit as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect d.status == "OK"
    reply J { ref = msg.ref  code = "00"  conf = d.conf }
    on error reply J { ref = msg.ref  code = error.code  kind = error.kind }
}
"""

HTTP_ROUTE = """
format J = json
channel api = http listen { address = "127.0.0.1:0"  path = "/bills" }
channel debit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 2s }
route pay {
    receive from api as J
    deal BILL { ref = msg.ref  amount = msg.amount  currency = msg.ccy  party = msg.acct  key = msg.ref }
    call d = debit as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect d.status == "OK"
    reply J { ref = msg.ref  code = "00"  conf = d.conf }
    on error reply J { ref = msg.ref  code = error.code  kind = error.kind }
}
"""

SECRET_ACCT = "DE89370400440532013000"
OTHER_ACCT = "DE44500105175407324931"


def bill(ref: str, amount: str = "10.00", ccy: str = "EUR", acct: str = SECRET_ACCT, msg_id: str = "m1") -> dict:
    # msg_id and sent_at change on a legitimate retry: not part of what the deal is about
    return {"ref": ref, "amount": orjson.Fragment(amount.encode()), "ccy": ccy, "acct": acct, "msg_id": msg_id,
            "sent_at": f"2026-11-27T06:00:0{msg_id[-1]}Z"}


async def ask(port: int, *requests: dict) -> list[dict]:
    c = await Client.open(port)
    out = []
    for r in requests:                 # one at a time: each its own batch
        await c.send(orjson.dumps(r))
        out += await c.recv_json(1)
    await c.aclose()
    return out


def by_status(ledger: Path) -> list[tuple[str, str | None]]:
    return [(r["status"], r["response_code"]) for r in
            rows(ledger, "SELECT status, response_code FROM deals WHERE route = 'pay' ORDER BY received_at")]


async def test_tcp_conflicting_repeat_is_refused_before_and_after_a_restart(nursery, tmp_path: Path) -> None:
    debit = Counterpart()
    program = compile_text(tmp_path, TCP_ROUTE % await json_counterpart(nursery, debit.answer))
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger) as sb:
        port = sb.channel("front").port
        first, retry, more, other_ccy, batch = await ask(
            port, bill("B1"), bill("B1", "10.0", msg_id="m2"),       # 10.0 is 10.00: the same deal
            bill("B1", "99.00", msg_id="m3"), bill("B1", ccy="USD", msg_id="m4"), bill("B1", "10.00", msg_id="m5"))
        # two copies in one batch, the second another deal: its original runs in the same batch
        c = await Client.open(port)
        await c.send(orjson.dumps(bill("B2")), orjson.dumps(bill("B2", "20.00", msg_id="m2")))
        b2, b2_other = await c.recv_json(2)
        await c.aclose()
    assert first == retry == batch == {"ref": "B1", "code": "00", "conf": "C-B1-post"}
    assert more == other_ccy == {"ref": "B1", "code": "12", "kind": "key_conflict"}
    assert b2 == {"ref": "B2", "code": "00", "conf": "C-B2-post"}
    assert b2_other == {"ref": "B2", "code": "12", "kind": "key_conflict"}
    async with running(program, ledger) as sb:      # the key store read back from the log
        again, other_acct, bigger = await ask(sb.channel("front").port, bill("B1", msg_id="m6"),
                                              bill("B1", acct=OTHER_ACCT, msg_id="m7"), bill("B1", "11.00", msg_id="m8"))
    assert again == first
    assert other_acct == bigger == {"ref": "B1", "code": "12", "kind": "key_conflict"}
    assert debit.counts[("post", "B1")] == 1 and debit.counts[("post", "B2")] == 1    # nothing ran again
    assert by_status(ledger)[:5] == [("committed", "00"), ("duplicate", "00"), ("rejected", "12"),
                                     ("rejected", "12"), ("duplicate", "00")]
    refused = rows(ledger, "SELECT deal_id, reason, amount, currency FROM deals WHERE status = 'rejected' "
                           "ORDER BY received_at")
    assert len(refused) == 5
    original = rows(ledger, "SELECT deal_id FROM deals WHERE reference = 'B1' AND status = 'committed'")[0]["deal_id"]
    assert f"deal key 'pay|B1' was used by deal {original} for another deal: amount 99.00 (the original: " \
           f"10.00); not run" in refused[0]["reason"]
    assert "currency USD (the original: EUR)" in refused[1]["reason"]
    assert "party (a different value; not shown)" in refused[3]["reason"]
    assert "amount 11.00 (the original: 10.00)" in refused[4]["reason"]
    assert all(SECRET_ACCT not in r["reason"] and OTHER_ACCT not in r["reason"] for r in refused)
    # recorded with their own values, each dead-lettered with its kind; the original untouched
    assert [str(r["amount"]) for r in refused[:2]] == ["99.0000", "10.0000"] and refused[1]["currency"] == "USD"
    letters = rows(ledger, "SELECT id, error_kind FROM dead_letters ORDER BY id")
    assert sorted(letter["id"] for letter in letters) == sorted(r["deal_id"] for r in refused)
    assert {letter["error_kind"] for letter in letters} == {"key_conflict"}
    events = rows(ledger, "SELECT detail FROM deal_events WHERE to_state = 'key_conflict' AND deal_id = ?",
                  [refused[3]["deal_id"]])
    assert orjson.loads(events[0]["detail"]) == {"original": original, "key": "pay|B1", "fields": ["party"]}
    assert rows(ledger, "SELECT status FROM deals WHERE deal_id = ?", [original]) == [{"status": "committed"}]
    # the deal key index names the original only: a conflict never takes the key
    assert rows(ledger, "SELECT deal_id FROM deal_keys WHERE key = 'pay|B1'") == [{"deal_id": original}]


async def test_http_conflicting_repeat_is_422_and_a_retry_the_original_answer_after_a_restart(
        nursery, tmp_path: Path) -> None:
    debit = Counterpart()
    program = compile_text(tmp_path, HTTP_ROUTE % await json_counterpart(nursery, debit.answer))
    ledger = tmp_path / "l.duckdb"
    answers = []
    for run in range(2):                            # the second run reads the key store from the log
        async with running(program, ledger) as sb:
            url = f"http://127.0.0.1:{sb.channel('api').port}/bills"
            async with httpx.AsyncClient() as c:
                for body in (bill("H1", msg_id=f"m{run}"), bill("H1", "10.01", msg_id=f"m{run + 2}")):
                    r = await c.post(url, content=orjson.dumps(body), headers={"content-type": "application/json"})
                    answers.append((r.status_code, r.json()))
    ok = (200, {"ref": "H1", "code": "00", "conf": "C-H1-post"})
    conflict = (422, {"ref": "H1", "code": "12", "kind": "key_conflict"})
    assert answers == [ok, conflict, ok, conflict], answers
    assert debit.counts[("post", "H1")] == 1


async def test_past_the_retention_the_fingerprint_comes_from_the_ledger_row(nursery, tmp_path: Path) -> None:
    debit = Counterpart()
    program = compile_text(tmp_path, TCP_ROUTE % await json_counterpart(nursery, debit.answer))
    ledger = tmp_path / "l.duckdb"
    clock = Clock()
    async with serving(program, ledger, clock) as sb:
        # P0's write carries P1's ``recorded`` mark (lazy): only a recorded key leaves the log
        first, _ = await ask(sb.channel("front").port, bill("P1", "12.5"), bill("P0"))
    clock.t += 40 * DAY                              # the restart's compaction drops the key from the log
    async with serving(program, ledger, clock) as sb:
        assert "pay|P1" not in manager_for(sb.ledger).log.ends
        same, other = await ask(sb.channel("front").port, bill("P1", "12.50", msg_id="m2"),
                                bill("P1", "12.51", msg_id="m3"))
    assert first["code"] == "00"
    assert same == {"ref": "P1", "code": "94", "kind": "duplicate"}     # past the retention: no answer to repeat
    assert other == {"ref": "P1", "code": "12", "kind": "key_conflict"}
    reason = rows(ledger, "SELECT reason FROM deals WHERE status = 'rejected'")[0]["reason"]
    assert "amount 12.51 (the original: 12.5000)" in reason, reason
    assert debit.counts[("post", "P1")] == 1


async def test_a_key_recorded_before_fingerprints_stays_a_plain_duplicate(nursery, tmp_path: Path) -> None:
    """An ``end`` written by an older bsp has no ``fp``: its repeats are answered as duplicates, whatever
    their values (nothing to compare them with)."""
    debit = Counterpart()
    program = compile_text(tmp_path, TCP_ROUTE % await json_counterpart(nursery, debit.answer))
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger) as sb:
        (first,) = await ask(sb.channel("front").port, bill("O1"))
        mgr = manager_for(sb.ledger)
        end = mgr.log.ends["pay|O1"]
        del end["fp"]                               # as an older bsp kept it
        await mgr.write([{**end, "recorded": True}])
    async with running(program, ledger) as sb:
        assert "fp" not in manager_for(sb.ledger).log.ends["pay|O1"]
        (other,) = await ask(sb.channel("front").port, bill("O1", "50.00", msg_id="m2"))
    assert other == first
    assert by_status(ledger) == [("committed", "00"), ("duplicate", "00")]


def test_the_conflict_is_counted_in_its_metric(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from engine.deal import DealEvent, DealRecord

    m = Metrics()
    obs = Observer(m)
    now = datetime.now(timezone.utc)
    rec = DealRecord(deal_id="d1", deal_type="BILL", route="pay", config_version="v", channel="front",
                     status="rejected", received_at=now, finished_at=now, response_code="12",
                     events=[DealEvent(now, "received", "key_conflict", {"key": "pay|B1"}),
                             DealEvent(now, "key_conflict", "rejected", None)])
    plain = DealRecord(deal_id="d2", deal_type="BILL", route="pay", config_version="v", channel="front",
                       status="rejected", received_at=now, finished_at=now, response_code="05",
                       events=[DealEvent(now, "received", "rejected", None)])
    obs.deals([rec, plain, rec], [None, None, None])
    text = m.render().decode() if isinstance(m.render(), bytes) else m.render()
    assert 'bsp_route_key_conflicts_total{route="pay"} 2.0' in text, text


async def test_a_keyed_route_without_a_call_does_not_send_the_answer_it_built(tmp_path: Path) -> None:
    """Its key is checked after its steps (its `reply` already built): a conflicting repeat gets the error
    answer, not a booking answer for a booking that was not made."""
    text = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
route book {
    receive from front as J
    deal BOOKING { key = msg.ref  ref = msg.ref  amount = msg.amount  currency = "EUR" }
    reply J { ref = msg.ref  code = "00"  booking = uuid() }
    on error reply J { ref = msg.ref  code = error.code  kind = error.kind }
}
"""
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, text), ledger) as sb:
        first, retry, other = await ask(sb.channel("front").port, bill("K1"), bill("K1", msg_id="m2"),
                                        bill("K1", "10.50", msg_id="m3"))
    assert first["code"] == "00" and retry == first
    assert other == {"ref": "K1", "code": "12", "kind": "key_conflict"}
    assert [(r["status"], r["response_code"]) for r in rows(ledger, "SELECT status, response_code FROM deals "
                                                                   "ORDER BY received_at")] == \
        [("committed", "00"), ("duplicate", "00"), ("rejected", "12")]
