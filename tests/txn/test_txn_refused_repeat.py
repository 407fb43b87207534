"""A repeat of an answered keyed deal that a step now refuses before admission (a cut-off passed since the
original, a table reloaded) is answered with the original answer and recorded as a duplicate, not refused
(engine/txn/refused_repeat.py, docs/transactions.md "Which failures keep the key"); one whose amount,
currency or party differ is refused as key_conflict, not with the step's reason; a request refused and
repeated runs as new, as before.  Until 2026-11-27 the mainframe's retry of an order placed at 14:59 that
came at 15:06 was refused "57 cut-off passed" although the counterpart held the order.

Real engine in process, a real JSON counterpart over TCP on 127.0.0.1 port 0, a real DuckDB ledger and
transaction log.  The clock `now()` reads (dsl/clock.py) is a ``Clock`` whose instant the test moves: it is
in the context the engine's tasks are started in."""
from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import orjson
import trio

from dsl import clock as dsl_clock
from engine.runtime.switchboard import Switchboard
from engine.txn import manager_for
from test_txn_key_retention import DAY, Clock, serving
from txnkit import Client, Counterpart, compile_text, deals, json_counterpart, rows, running

# the cut-off: an order is taken until 15:05 (UTC here), as routes/fund_management's accept_until
CUTOFF = 'validate { format_date(now(), "%H%M") < "1505" else reject "57" "cut-off passed" }'
DEAL = 'deal ORDER { ref = msg.ref  amount = msg.amount  currency = msg.ccy  party = msg.acct  key = msg.ref }'

ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel ta = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 2s }
route order {
    receive from front as J
    %s
    %s
    call d = ta as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect d.status == "OK"
    reply J { ref = msg.ref  code = "00"  conf = d.conf }
    on error reply J { ref = msg.ref  code = error.code  kind = error.kind }
}
"""

AT_1459 = datetime(2026, 11, 27, 14, 59, tzinfo=timezone.utc)
AT_1506 = datetime(2026, 11, 27, 15, 6, tzinfo=timezone.utc)
ANSWER = {"ref": "O1", "code": "00", "conf": "C-O1-post"}
CUT_OFF = {"ref": "O1", "code": "57", "kind": "rejected"}
CONFLICT = {"ref": "O1", "code": "12", "kind": "key_conflict"}


def order(ref: str = "O1", amount: str = "5000.00", msg_id: str = "m1") -> bytes:
    return orjson.dumps({"ref": ref, "amount": orjson.Fragment(amount.encode()), "ccy": "CNY",
                         "acct": "6222000000000001", "msg_id": msg_id})


async def ask(sb: Switchboard, *requests: bytes) -> list[dict]:
    c = await Client.open(sb.channel("front").port)
    out = []
    for r in requests:                 # one at a time: each its own batch
        await c.send(r)
        out += await c.recv_json(1)
    await c.aclose()
    return out


@asynccontextmanager
async def clocked(at: datetime) -> AsyncIterator[dsl_clock.Clock]:
    """``now()`` reads the returned clock's ``fixed`` instant in every task started inside."""
    c = dsl_clock.Clock(fixed=at)
    with dsl_clock.using(c):
        yield c


def statuses(ledger: Path) -> list[tuple[str, str | None, str | None]]:
    return [(d["reference"], d["status"], d["response_code"]) for d in deals(ledger)]


async def _route(nursery: Any, tmp_path: Path, first: str, second: str) -> tuple[Any, Counterpart]:
    ta = Counterpart()
    return compile_text(tmp_path, ROUTE % (await json_counterpart(nursery, ta.answer), first, second)), ta


async def test_a_repeat_after_the_cut_off_gets_the_original_answer(nursery, tmp_path: Path) -> None:
    program, ta = await _route(nursery, tmp_path, DEAL, CUTOFF)
    ledger = tmp_path / "l.duckdb"
    async with clocked(AT_1459) as now:
        async with running(program, ledger) as sb:
            (first,) = await ask(sb, order())
            now.fixed = AT_1506
            retry, other = await ask(sb, order(msg_id="m2"), order("O2"))
        async with running(program, ledger) as sb:        # after a restart: the key store read from the log
            (again,) = await ask(sb, order(msg_id="m3"))
    assert first == retry == again == ANSWER
    assert other == {"ref": "O2", "code": "57", "kind": "rejected"}       # a new order is refused, as before
    assert ta.counts[("post", "O1")] == 1 and ("post", "O2") not in ta.counts
    assert statuses(ledger) == [("O1", "committed", "00"), ("O1", "duplicate", "00"), ("O2", "rejected", "57"),
                                ("O1", "duplicate", "00")]
    d = deals(ledger)
    original = d[0]["deal_id"]
    assert d[1]["reason"].startswith(f"duplicate of deal {original} (key 'order|O1'); original answer repeated; "
                                     f"a step refused the repeat (rejected 57: ")
    assert "cut-off passed" in d[1]["reason"] and "the original's answer stands" in d[1]["reason"]
    ev = rows(ledger, "SELECT detail FROM deal_events WHERE deal_id = ? AND to_state = 'duplicate'", [d[1]["deal_id"]])
    detail = orjson.loads(ev[0]["detail"])
    assert detail["original"] == original and detail["key"] == "order|O1"
    assert detail["refused"]["kind"] == "rejected" and detail["refused"]["code"] == "57"
    # a duplicate leaves no dead letter; the refused new order does; the key index names the original only
    assert [r["id"] for r in rows(ledger, "SELECT id FROM dead_letters")] == [d[2]["deal_id"]]
    assert rows(ledger, "SELECT deal_id FROM deal_keys WHERE key = 'order|O1'") == [{"deal_id": original}]


async def test_a_repeat_with_another_amount_after_the_cut_off_is_a_key_conflict(nursery, tmp_path: Path) -> None:
    program, ta = await _route(nursery, tmp_path, DEAL, CUTOFF)
    ledger = tmp_path / "l.duckdb"
    async with clocked(AT_1459) as now:
        async with running(program, ledger) as sb:
            (first,) = await ask(sb, order())
            now.fixed = AT_1506
            bigger, retry = await ask(sb, order(amount="9000.00", msg_id="m2"), order(msg_id="m3"))
    assert first == retry == ANSWER
    assert bigger == CONFLICT
    assert ta.counts[("post", "O1")] == 1
    assert statuses(ledger) == [("O1", "committed", "00"), ("O1", "rejected", "12"), ("O1", "duplicate", "00")]
    assert "amount 9000.00 (the original: 5000.00)" in deals(ledger)[1]["reason"]


async def test_a_refused_request_repeated_still_runs_as_new(nursery, tmp_path: Path) -> None:
    program, ta = await _route(nursery, tmp_path, DEAL, CUTOFF)
    ledger = tmp_path / "l.duckdb"
    async with clocked(AT_1506) as now:
        async with running(program, ledger) as sb:
            refused, refused_again = await ask(sb, order(), order(msg_id="m2"))
            now.fixed = AT_1459.replace(day=30)           # the next dealing day, before its cut-off
            (runs,) = await ask(sb, order(msg_id="m3"))
    assert refused == refused_again == CUT_OFF
    assert runs == ANSWER and ta.counts[("post", "O1")] == 1
    assert statuses(ledger) == [("O1", "rejected", "57"), ("O1", "rejected", "57"), ("O1", "committed", "00")]


async def test_a_step_before_the_deal_step_key_evaluated_in_the_scope_at_hand(nursery, tmp_path: Path) -> None:
    program, ta = await _route(nursery, tmp_path, CUTOFF, DEAL)
    ledger = tmp_path / "l.duckdb"
    async with clocked(AT_1459) as now:
        async with running(program, ledger) as sb:
            (first,) = await ask(sb, order())
            now.fixed = AT_1506
            retry, bigger, other = await ask(sb, order(msg_id="m2"), order(amount="1.00", msg_id="m3"), order("O2"))
    assert first == retry == ANSWER
    assert bigger == CONFLICT                             # the deal's values were had for the fingerprint
    assert other == {"ref": "O2", "code": "57", "kind": "rejected"}
    assert ta.counts[("post", "O1")] == 1
    # refused before its deal step, as before: recorded under the route's name, without the deal's values
    assert statuses(ledger) == [("O1", "committed", "00"), ("O1", "duplicate", "00"), ("O1", "rejected", "12"),
                                (None, "rejected", "57")]


async def test_a_copy_in_the_same_batch_refused_by_a_step_is_a_copy_of_its_original(nursery, tmp_path: Path) -> None:
    # the repeat carries a later send time than the sender's window allows: refused by the step, but the
    # original is admitted in the same batch
    window = 'validate { msg.msg_id < "m5" else reject "57" "sent too late" }'
    program, ta = await _route(nursery, tmp_path, DEAL, window)
    ledger = tmp_path / "l.duckdb"
    async with running(program, ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(order(msg_id="m1"), order(msg_id="m7"), order(amount="1.00", msg_id="m8"))
        got = await c.recv_json(3)
        await c.aclose()
    assert got == [ANSWER, ANSWER, CONFLICT]
    assert ta.counts[("post", "O1")] == 1
    assert sorted(s for _, s, _ in statuses(ledger)) == ["committed", "duplicate", "rejected"]
    dup = [d for d in deals(ledger) if d["status"] == "duplicate"][0]
    assert "sent too late" in dup["reason"]


BOOK = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
route book {
    receive from front as J
    deal BOOKING { key = msg.ref  ref = msg.ref  amount = msg.amount  currency = "EUR" }
    reply J { ref = msg.ref  code = "00"  booking = uuid() }
    %s
    on error reply J { ref = msg.ref  code = error.code }
}
"""


async def test_a_route_without_a_call_answers_the_repeat_refused_after_its_reply(tmp_path: Path) -> None:
    ledger = tmp_path / "l.duckdb"
    program = compile_text(tmp_path, BOOK % CUTOFF)
    async with clocked(AT_1459) as now:
        async with running(program, ledger) as sb:
            c = await Client.open(sb.channel("front").port)
            got = []
            for at in (AT_1459, AT_1506):
                now.fixed = at
                await c.send(b'{"ref": "B1", "amount": 12.50}')
                got += await c.recv_json(1)
            await c.aclose()
    assert got[0]["code"] == "00" and got[1] == got[0]        # the same booking id: the original reply
    assert statuses(ledger) == [("B1", "committed", "00"), ("B1", "duplicate", "00")]


async def test_past_the_retention_the_repeat_refused_is_a_duplicate_from_the_ledger(nursery, tmp_path: Path) -> None:
    program, ta = await _route(nursery, tmp_path, DEAL, CUTOFF)
    ledger = tmp_path / "l.duckdb"
    epoch = Clock()
    async with clocked(AT_1459) as now:
        async with serving(program, ledger, epoch) as sb:
            first, _ = await ask(sb, order(), order("O3"))  # the second's write carries the first's `recorded`
        epoch.t += 40 * DAY                               # the restart drops the key from the log
        now.fixed = AT_1506
        async with serving(program, ledger, epoch) as sb:
            (late,) = await ask(sb, order(msg_id="m2"))
    assert first == ANSWER
    assert late == {"ref": "O1", "code": "94", "kind": "duplicate"}     # not run, not refused with 57
    assert ta.counts[("post", "O1")] == 1
    assert statuses(ledger) == [("O1", "committed", "00"), ("O3", "committed", "00"), ("O1", "duplicate", "94")]
    assert "past the key store's retention" in deals(ledger)[2]["reason"]


async def _held_counterpart(nursery: Any, got: trio.Event, release: trio.Event, seen: list[str]) -> int:
    """A length4 JSON counterpart that answers each request only once ``release`` is set (``got``: the
    first request reached it)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")

    async def serve(stream: trio.SocketStream) -> None:
        buf = b""
        async with stream:
            while True:
                while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "big"):
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        return
                    buf += chunk
                n = int.from_bytes(buf[:4], "big")
                req, buf = orjson.loads(buf[4:4 + n]), buf[4 + n:]
                seen.append(req["ref"])
                got.set()
                await release.wait()
                body = orjson.dumps({"status": "OK", "conf": f"C-{req['ref']}-{req['op']}"})
                await stream.send_all(len(body).to_bytes(4, "big") + body)

    nursery.start_soon(trio.serve_listeners, serve, listeners)
    return listeners[0].socket.getsockname()[1]


async def test_a_repeat_refused_while_its_original_runs_waits_for_its_answer(nursery, tmp_path: Path) -> None:
    got, release, seen = trio.Event(), trio.Event(), []
    port = await _held_counterpart(nursery, got, release, seen)
    program = compile_text(tmp_path, ROUTE % (port, DEAL, CUTOFF))
    ledger = tmp_path / "l.duckdb"
    answers: dict[str, dict] = {}

    async def send(name: str, body: bytes, c: Client) -> None:
        await c.send(body)
        (answers[name],) = await c.recv_json(1)

    async with clocked(AT_1459) as now:
        async with running(program, ledger) as sb:
            a, b = await Client.open(sb.channel("front").port), await Client.open(sb.channel("front").port)
            with trio.fail_after(20):                     # a guard against a hang, not a timing
                async with trio.open_nursery() as n:
                    n.start_soon(send, "first", order(), a)
                    await got.wait()                      # the original's call is at the TA, unanswered
                    now.fixed = AT_1506
                    n.start_soon(send, "retry", order(msg_id="m2"), b)
                    inflight = manager_for(sb.ledger)._inflight
                    while "order|O1" not in inflight or inflight["order|O1"].statistics().tasks_waiting == 0:
                        await trio.sleep(0.01)            # the refused repeat waits for the original
                    release.set()
            await a.aclose()
            await b.aclose()
    assert answers == {"first": ANSWER, "retry": ANSWER}
    assert seen == ["O1"]
    assert statuses(ledger) == [("O1", "committed", "00"), ("O1", "duplicate", "00")]


async def test_a_refused_repeat_whose_match_differs_is_a_key_conflict(nursery, tmp_path: Path) -> None:
    """The deal's `match` (the account the money goes to) is compared on a refused repeat too: a repeat after
    the cut-off that names another account is a key conflict, never the original's answer (the two features
    met at their merge: the refused repeat's match was not evaluated, so the changed account went unseen)."""
    keyed = DEAL.replace("key = msg.ref }", "key = msg.ref  match = msg.pay_to }")
    program, ta = await _route(nursery, tmp_path, keyed, CUTOFF)
    ledger = tmp_path / "l.duckdb"

    def to(acct: str, msg_id: str) -> bytes:
        return orjson.dumps({**orjson.loads(order(msg_id=msg_id)), "pay_to": acct})

    async with clocked(AT_1459) as now:
        async with running(program, ledger) as sb:
            (first,) = await ask(sb, to("DE89370400440532013000", "m1"))
            now.fixed = AT_1506
            moved, retry = await ask(sb, to("GB33BUKB20201555555555", "m2"), to("DE89370400440532013000", "m3"))
    assert first == retry == ANSWER
    assert moved == CONFLICT
    assert ta.counts[("post", "O1")] == 1
    assert statuses(ledger) == [("O1", "committed", "00"), ("O1", "rejected", "12"), ("O1", "duplicate", "00")]
