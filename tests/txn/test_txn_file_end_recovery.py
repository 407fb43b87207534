"""A file's end message (``file watch`` with ``end_message = true``) left in flight by a SIGKILL, its route's call
sent and unanswered: the restart's recovery rebuilds its ``file.*``, the header and trailer records included
(``file.header.*``, ``file.trailer.*``, read again from the records the channel's index noted with the message's
deal id), so that the route's ``on restart compensate`` builds its compensation from them as the route wrote it
(before 2026-11-28 they read null at recovery)."""
from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import trio

from txnkit import Gate, deals, engine_serving, json_counterpart, start_engine

ROUTE = """
format Line = csv header false {
    ref     string
    amount  decimal(2)
}

format Head = csv header false {
    company  string
    count    integer
}

format Tail = csv header false {
    tag    string
    total  decimal(2)
}

format J = json

channel inbox = file watch {
    dir           = "in"
    pattern       = "*.csv"
    record        = "csv"
    skip_header   = 1
    header        = Head
    header_count  = "count"
    skip_trailer  = 1
    trailer       = Tail
    trailer_total = "total"
    total_field   = "amount"
    total_format  = Line
    end_message   = true
}

channel back = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 60s }

route pay {
    receive from inbox as Line
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref }
}

route file_ended {
    receive from inbox when file.end
    on restart compensate
    call post = back as J reply J {
        op = "post"  ref = file.name  company = file.header.company  total = file.trailer.total
    } expect post.status == "OK"
        compensate call back as J reply J {
            op = "cancel"  ref = file.name  company = file.header.company  total = file.trailer.total
        }
}
"""


class Seen(Gate):
    """The ``Gate`` (the first request held, unanswered, until ``open``) keeping each request, amounts as
    Decimal; ``cancelled`` is set once a cancel came."""

    def __init__(self) -> None:
        super().__init__(Counter(), 0)
        self.requests: list[dict] = []
        self.cancelled = trio.Event()

    def __call__(self, req: dict) -> dict | None:
        self.requests.append(json.loads(json.dumps(req), parse_float=Decimal))
        if req["op"] == "cancel":
            self.cancelled.set()
        return super().__call__(req)


async def test_a_recovered_end_message_reads_its_header_and_trailer(nursery, tmp_path: Path) -> None:
    gate = Seen()
    port = await json_counterpart(nursery, gate)
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % port)
    ledger = tmp_path / "l.duckdb"
    inbox = tmp_path / "in"
    inbox.mkdir()
    served = await start_engine(route, ledger)
    try:
        (inbox / "a.csv").write_bytes(b"ACME,2\nA1,1.50\nA2,3.25\nT,4.75\n")
        with trio.fail_after(60):                   # a guard against a hang, not a timing
            await gate.holding.wait()               # the end route's call reached the counterpart, unanswered
        served.proc.kill()                          # SIGKILL with the end message's deal in flight
        await served.proc.wait()
    finally:
        gate.open()
        if served.proc.returncode is None:
            served.proc.kill()
            await served.proc.wait()
        await served.proc.stderr.aclose()
    post = {"ref": "a.csv", "company": "ACME", "total": Decimal("4.75")}
    assert gate.requests == [{"op": "post", **post}]
    assert (inbox / "a.csv").exists()               # killed before the move

    async with engine_serving(route, ledger):
        with trio.fail_after(60):
            await gate.cancelled.wait()             # recovery compensated the call in doubt
            while not (inbox / "done" / "a.csv").exists():     # the message settled: the file moves on
                await trio.sleep(0.05)
    # the compensation was built from the file's header and trailer, as the first run built the call
    assert gate.requests == [{"op": "post", **post}, {"op": "cancel", **post}]
    ends = [d for d in deals(ledger) if d["route"] == "file_ended"]
    assert len(ends) == 1 and ends[0]["status"] == "failed", ends
    assert sorted(d["status"] for d in deals(ledger) if d["route"] == "pay") == ["committed", "committed"]
