"""Participants, compensation in reverse order, business-key idempotency, trace and dead letters,
on loopback with real TCP counterparts and a real DuckDB ledger."""
from __future__ import annotations

from pathlib import Path

import trio

from engine.txn.answers import read_all
from engine.txn.log import TxnLog, log_path, read
from txnkit import Client, Counterpart, compile_text, deals, json_counterpart, rows, running

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel debit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 2s }
channel credit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 2s }
route transfer {
    receive from front as J
    on restart compensate
    validate { msg.amount > 0 else reject "13" "invalid amount" }
    deal TRANSFER { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref + "/" + msg.day }
    call d = debit as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect d.status == "OK"
        compensate call debit as J reply J { op = "cancel"  ref = msg.ref }
    call c = credit as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect c.status == "OK"
        compensate call credit as J reply J { op = "cancel"  ref = msg.ref }
    reply J { ref = msg.ref  code = "00"  conf = d.conf }
    on error reply J { ref = msg.ref  code = error.code }
}
"""


def _req(ref: str, amount: str = "10.00", day: str = "20240501") -> bytes:
    return b'{"ref":"%s","amount":%s,"day":"%s"}' % (ref.encode(), amount.encode(), day.encode())


async def _setup(nursery, tmp_path: Path, refuse_credit: set[str] = frozenset()):
    debit, credit = Counterpart(), Counterpart(set(refuse_credit))
    dport = await json_counterpart(nursery, debit.answer)
    cport = await json_counterpart(nursery, credit.answer)
    program = compile_text(tmp_path, ROUTE % (dport, cport))
    return program, debit, credit


async def test_failed_step_compensates_done_steps_in_reverse_and_traces_each(nursery, tmp_path: Path) -> None:
    program, debit, credit = await _setup(nursery, tmp_path, refuse_credit={"T2"})
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(_req("T1"))
        ok = (await c.recv_json())[0]
        await c.send(_req("T2"))
        bad = (await c.recv_json())[0]
        await c.aclose()
    assert ok == {"ref": "T1", "code": "00", "conf": "C-T1-post"}
    assert bad == {"ref": "T2", "code": "05"}
    # T2: credit refused -> the debit (done) is cancelled; the refused credit is not compensated
    assert debit.counts[("post", "T2")] == 1 and debit.counts[("cancel", "T2")] == 1
    assert credit.counts[("post", "T2")] == 1 and credit.counts[("cancel", "T2")] == 0
    assert debit.counts[("cancel", "T1")] == 0
    by_ref = {d["reference"]: d for d in deals(ledger)}
    assert by_ref["T1"]["status"] == "committed" and by_ref["T2"]["status"] == "failed"
    steps = rows(ledger, "SELECT step, kind, vote, outcome FROM deal_steps WHERE deal_id = ? ORDER BY seq",
                 [by_ref["T2"]["deal_id"]])
    assert [(s["step"], s["vote"], s["outcome"]) for s in steps] == [
        ("1:validate", "readonly", "ok"), ("2:deal", "readonly", "ok"), ("d", "prepared", "ok"),
        ("c", "aborted", "refused"), ("d.compensate", None, "ok")]
    events = [e["to_state"] for e in rows(ledger, "SELECT to_state FROM deal_events WHERE deal_id = ? "
                                          "ORDER BY seq", [by_ref["T2"]["deal_id"]])]
    assert events == ["accepted", "calling d", "calling c", "compensated d", "failed"]
    dead = rows(ledger, "SELECT route, channel, error_kind, raw FROM dead_letters")
    assert [(d["route"], d["channel"], d["error_kind"], bytes(d["raw"])) for d in dead] == \
        [("transfer", "front", "refused", _req("T2"))]


async def test_repeated_key_returns_the_original_answer_without_running_again(nursery, tmp_path: Path) -> None:
    program, debit, credit = await _setup(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(_req("K1"))
        first = await c.recv(1)
        await c.send(_req("K1"), _req("K2"), _req("K2"))      # a repeat, and two copies in one batch
        rest = await c.recv(3)
        await c.aclose()
    assert rest[0] == first[0] and rest[1] == rest[2]
    assert debit.counts[("post", "K1")] == 1 and debit.counts[("post", "K2")] == 1
    assert credit.counts[("post", "K1")] == 1 and credit.counts[("post", "K2")] == 1
    statuses = sorted((d["reference"], d["status"]) for d in deals(ledger))
    assert statuses == [("K1", "committed"), ("K1", "duplicate"), ("K2", "committed"), ("K2", "duplicate")]
    # the key store survives a restart: same answer, still no second debit
    async with running(program, ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(_req("K1"))
        again = await c.recv(1)
        await c.send(_req("K1", day="20240502"))          # another value date: another deal
        other = await c.recv_json(1)
        await c.aclose()
    assert again == first
    assert other[0]["code"] == "00" and debit.counts[("post", "K1")] == 2
    txlog = TxnLog(log_path(ledger))
    assert txlog.pending == {} and len(txlog.ends) == 3            # nothing in flight; 3 keys kept
    txlog.close()
    entries, _ = read(log_path(ledger))                              # compacted: the key store only
    # (its recorded answers moved by the compactions to the answers files, engine/txn/answers.py, which the
    # log's `moved` mark says)
    assert [e["t"] for e in entries].count("moved") == 1
    entries = [e for e in entries if e["t"] != "moved"] + read_all(log_path(ledger))
    assert [e["t"] for e in entries] == ["end"] * 3


async def test_concurrent_duplicates_on_two_connections_run_once(nursery, tmp_path: Path) -> None:
    program, debit, credit = await _setup(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger) as sb:
        port = sb.channel("front").port
        answers: list[bytes] = []

        async def one() -> None:
            c = await Client.open(port)
            await c.send(_req("C1"))
            answers.extend(await c.recv(1))
            await c.aclose()

        async with trio.open_nursery() as n:
            for _ in range(5):
                n.start_soon(one)
    assert len(answers) == 5 and len(set(answers)) == 1
    assert debit.counts[("post", "C1")] == 1
    assert sorted(d["status"] for d in deals(ledger)) == ["committed"] + ["duplicate"] * 4


async def test_rejected_before_any_call_is_a_dead_letter_and_leaves_nothing_in_flight(nursery, tmp_path: Path) -> None:
    program, debit, credit = await _setup(nursery, tmp_path)
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(_req("R1", amount="-1"))
        assert (await c.recv_json())[0] == {"ref": "R1", "code": "13"}
        await c.aclose()
    assert not debit.counts
    (d,) = rows(ledger, "SELECT error_kind, error_code, reason FROM dead_letters")
    assert (d["error_kind"], d["error_code"]) == ("rejected", "13") and "invalid amount" in d["reason"]
