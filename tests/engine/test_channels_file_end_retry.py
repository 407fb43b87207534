"""``end_message = true``: a file's end message whose route failed (its counterpart down) waits as a dead letter;
``bsp dead retry``, once the counterpart is up, sends it again AS the end message: with its ``file.*`` (the
summary from its bytes, ``file.header`` and ``file.trailer`` from the records the channel's index noted with it),
so that the end route takes it, not the record routes (before 2026-11-28 the retry re-injected its bytes bare:
the record route refused them as a malformed record, and the operator did the end route's work by hand)."""
from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path

import trio

from engine.ledger_query import query_dead_letters
from formats.framing import LengthPrefixFramer
from kit import REPO, compile_text, deals, running

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

channel back = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 5s }

route pay {
    receive from inbox as Line
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref }
}

route file_ended {
    receive from inbox when file.end
    call done = back as J reply J {
        op        = "end"
        name      = file.name
        status    = file.status
        committed = file.committed
        company   = file.header.company
        total     = file.trailer.total
    } expect done.status == "OK"
}
"""


class Host:
    """A JSON counterpart (length4) whose port is bound at once and which is down (bound, not listening: a
    connect is refused) until ``up``; it keeps each request and answers ``{"status": "OK"}``."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.sock = trio.socket.socket()
        self.port = 0

    async def bind(self) -> "Host":
        await self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        return self

    async def up(self, nursery: trio.Nursery) -> None:
        self.sock.listen(16)
        await nursery.start(trio.serve_listeners, self._serve, [trio.SocketListener(self.sock)])

    async def _serve(self, stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(4)
        async with stream:
            while data := await stream.receive_some(65536):
                for p in f.feed(data):
                    self.requests.append(json.loads(p, parse_float=Decimal))     # amounts as Decimal
                    await stream.send_all(f.frame(b'{"status": "OK"}'))


async def test_a_retried_end_message_reaches_the_end_route_with_its_file_fields(nursery, tmp_path: Path) -> None:
    host = await Host().bind()
    route = tmp_path / "pay.route"
    inbox = tmp_path / "in"
    inbox.mkdir()
    ledger = tmp_path / "l.duckdb"
    prog = compile_text(tmp_path, ROUTE % host.port, name="pay.route")
    (inbox / "a.csv").write_bytes(b"ACME,2\nA1,1.50\nA2,3.25\nT,4.75\n")
    async with running(prog, ledger):
        with trio.fail_after(30):
            while not (inbox / "done" / "a.csv").exists():       # the end message ran (and failed) before the move
                await trio.sleep(0.05)
    [letter] = [x for x in query_dead_letters(ledger)]
    assert letter["route"] == "file_ended" and letter["error_kind"] == "unreachable", letter
    assert [d["status"] for d in deals(ledger) if d["route"] == "file_ended"] == ["failed"]

    await host.up(nursery)                   # the counterpart is up: the letter is retried, as an operator does
    with trio.fail_after(60):
        res = await trio.run_process([sys.executable, "-m", "engine.cli", "dead", "retry", letter["id"],
                                      "--routes", str(route), "--ledger", str(ledger)],
                                     cwd=str(REPO), capture_stdout=True, capture_stderr=True, check=False)
    out = (res.stdout + res.stderr).decode()
    assert res.returncode == 0, out
    assert f"{letter['id']}: retried: committed (deal " in out, out
    # the end route ran, with the file's fields: the summary, and the header and trailer records read again
    assert host.requests == [{"op": "end", "name": "a.csv", "status": "done", "committed": 2, "company": "ACME",
                              "total": Decimal("4.75")}], host.requests
    ends = [d for d in deals(ledger) if d["route"] == "file_ended"]
    assert [d["status"] for d in ends] == ["failed", "committed"]
    assert ends[1]["deal_type"] == "file_ended"            # a deal of the end route, not of the record route
    assert [d["status"] for d in deals(ledger) if d["route"] == "pay"] == ["committed", "committed"]
    assert not [d for d in deals(ledger) if d["route"] not in ("pay", "file_ended")]
    [row] = [x for x in query_dead_letters(ledger)]
    assert row["status"] == "retried"
