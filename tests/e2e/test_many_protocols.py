"""Item 8: one engine runs tcp, tls, http, file and nats channels together, and routes receive on
one protocol and send on another.

* EBCDIC copybook over TCP in -> JSON over HTTP out -> EBCDIC reply          (route pay)
* NATS JetStream consume -> JSON over TCP call, acked after the commit         (route order)
* HTTP JSON in -> NATS JetStream publish (msg-id = deal reference) -> JSON out (route transfer)
* TLS tcp listen -> reply                                                     (route ping)
* file watch (JSON lines) -> file write, one deal per record                  (route batch)

Everything is real: loopback sockets, a nats-server -js, a DuckDB ledger, a watched directory.
"""
from __future__ import annotations

import functools
import os
from decimal import Decimal
from pathlib import Path

import duckdb
import httpx
import orjson
import trio

from dsl.load import compile_paths
from engine.certs import new_ca
from engine.http import Response, Router, serve_http
from engine.ledger import open_ledger
from engine.runtime import Switchboard
from engine.testing.nats_server import eventually, nats_client, nats_registry, nats_server
from engine.tls import client_context
from formats.framing import LengthPrefixFramer

PAY_REQ = """\
       01 PAY-REQ.
          05 TXN-CODE        PIC X(4).
          05 TRACE-NO        PIC X(12).
          05 ACCOUNT         PIC X(20).
          05 AMOUNT          PIC S9(11)V99 COMP-3.
          05 CURRENCY        PIC X(3).
"""
PAY_RSP = """\
       01 PAY-RSP.
          05 TRACE-NO        PIC X(12).
          05 RESP-CODE       PIC X(2).
          05 CONF-REF        PIC X(16).
          05 AMOUNT          PIC S9(11)V99 COMP-3.
"""

ROUTE = """
format PayReq = copybook "PAY-REQ.cpy" encoding cp037 names lower
format PayRsp = copybook "PAY-RSP.cpy" encoding cp037 names lower
format Json   = json

channel mainframe = tcp listen {{
    address = "127.0.0.1:0"
    framing = length2
}}

channel fx = http call {{
    url     = "{http_url}"
    timeout = 3s
}}

channel secure = tcp listen {{
    address = "127.0.0.1:0"
    framing = length2
    cert    = "{cert}"
    key     = "{key}"
}}

channel orders = nats consume {{
    url        = "{nats}"
    subject    = "orders.new"
    stream     = "ORDERS"
    fetch_wait = 200ms
}}

channel book = tcp connect {{
    address = "127.0.0.1:{book}"
    framing = length4
    timeout = 3s
}}

channel api = http listen {{
    address = "127.0.0.1:0"
    path    = "/transfers"
}}

channel bus = nats publish {{
    url     = "{nats}"
    subject = "transfers.out"
    stream  = "TRANSFERS"
}}

channel inbox = file watch {{
    dir     = "in"
    pattern = "*.jsonl"
}}

channel outbox = file write {{
    dir   = "out"
    name  = "ACK-{{seq}}.json"
    fsync = false
}}

route pay {{
    receive from mainframe as PayReq when msg.txn_code == "PY01"
    deal PAYMENT {{
        ref      = trim(msg.trace_no)
        amount   = msg.amount
        currency = msg.currency
    }}
    call post = fx as Json reply Json {{
        reference = trim(msg.trace_no)
        account   = trim(msg.account)
        amount    = msg.amount
        currency  = msg.currency
    }} expect post.status == "OK"
    reply PayRsp {{
        trace_no  = msg.trace_no
        resp_code = "00"
        conf_ref  = post.confirmation
        amount    = msg.amount
    }}
    on error reply PayRsp {{
        trace_no  = msg.trace_no
        resp_code = error.code
        conf_ref  = ""
        amount    = 0
    }}
}}

route order {{
    receive from orders as Json
    deal ORDER {{
        ref      = msg.ref
        amount   = msg.amount
        currency = "EUR"
    }}
    call booked = book as Json reply Json {{
        ref    = msg.ref
        amount = msg.amount
    }} expect booked.status == "OK"
}}

route transfer {{
    receive from api as Json
    deal TRANSFER {{
        ref      = msg.ref
        amount   = msg.amount
        currency = "EUR"
    }}
    call pub = bus as Json reply Json {{
        ref    = msg.ref
        amount = msg.amount
    }}
    reply Json {{
        ref       = msg.ref
        seq       = pub.seq
        duplicate = pub.duplicate
    }}
}}

route ping {{
    receive from secure as Json
    reply Json {{
        pong = msg.ping
    }}
}}

route batch {{
    receive from inbox as Json
    deal BATCH {{
        ref      = msg.ref
        amount   = msg.amount
        currency = "EUR"
    }}
    call w = outbox as Json reply Json {{
        ref    = msg.ref
        amount = msg.amount
    }}
}}
"""


def packed(value: Decimal, digits: int = 13, scale: int = 2) -> bytes:
    """COMP-3 (packed decimal) with a C/D sign nibble."""
    n = int(abs(value) * (10 ** scale))
    nibbles = f"{n:0{digits}d}" + ("d" if value < 0 else "c")
    if len(nibbles) % 2:
        nibbles = "0" + nibbles
    return bytes.fromhex(nibbles)


def pay_request(trace: str, account: str, amount: str, currency: str = "EUR") -> bytes:
    text = lambda s, w: s.ljust(w).encode("cp037")  # noqa: E731
    return text("PY01", 4) + text(trace, 12) + text(account, 20) + packed(Decimal(amount)) + text(currency, 3)


async def fx_endpoint(nursery: trio.Nursery, seen: list) -> int:
    router = Router()

    @router.route("POST", "/payments")
    async def pay(request):  # type: ignore[no-untyped-def]
        body = request.json()
        seen.append(body)
        return Response.json({"status": "OK", "confirmation": "FX-" + body["reference"]})

    return await nursery.start(functools.partial(serve_http, router, "127.0.0.1", 0))


async def json_book(nursery: trio.Nursery, seen: list) -> int:
    async def handler(stream: trio.SocketStream) -> None:
        f = LengthPrefixFramer(4)
        async with stream:
            while data := await stream.receive_some(65536):
                reqs = [orjson.loads(p) for p in f.feed(data)]
                seen.extend(reqs)
                await stream.send_all(b"".join(f.frame(b'{"status": "OK"}') for _ in reqs))

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


async def framed_call(stream: trio.abc.Stream, payload: bytes) -> bytes:
    f = LengthPrefixFramer(2)
    await stream.send_all(f.frame(payload))
    with trio.fail_after(10):
        while True:
            data = await stream.receive_some(65536)
            assert data, "connection closed before the reply"
            frames = f.feed(data)
            if frames:
                return frames[0]


async def test_one_engine_many_protocols(tmp_path: Path, nursery) -> None:
    (tmp_path / "PAY-REQ.cpy").write_text(PAY_REQ)
    (tmp_path / "PAY-RSP.cpy").write_text(PAY_RSP)
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    ca = new_ca("e2e CA")
    ca_pem, _ = ca.write(tmp_path / "ca")
    cert, key = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True).write(tmp_path / "srv")
    fx_seen: list = []
    book_seen: list = []
    http_port = await fx_endpoint(nursery, fx_seen)
    book_port = await json_book(nursery, book_seen)

    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        route = tmp_path / "many.route"
        route.write_text(ROUTE.format(http_url=f"http://127.0.0.1:{http_port}/payments", cert=cert, key=key,
                                      nats=srv.url, book=book_port))
        reg = nats_registry()
        res = compile_paths([route], reg)
        assert res.program is not None, [str(d.message) for d in res.diagnostics]
        prog = res.program
        ledger_path = tmp_path / "ledger.duckdb"
        assert {c.kind for c in prog.channels.values()} == {
            "tcp.listen", "http.call", "nats.consume", "tcp.connect", "http.listen", "nats.publish",
            "file.watch", "file.write"}

        async with open_ledger(ledger_path) as ledger:
            sb = Switchboard(prog, reg, ledger=ledger, grace=5)
            async with trio.open_nursery() as engine:
                await engine.start(sb.run)

                # 1. EBCDIC over TCP in -> JSON over HTTP out -> EBCDIC reply
                mf = await trio.open_tcp_stream("127.0.0.1", sb.channel("mainframe").port)
                raw = await framed_call(mf, pay_request("T0000001", "ACC-42", "120.50"))
                await mf.aclose()
                rsp = reg.get("format", "copybook").build(prog.formats["PayRsp"]).decode(raw)
                assert rsp["trace_no"].strip() == "T0000001" and rsp["resp_code"] == "00"
                assert rsp["conf_ref"].strip() == "FX-T0000001" and rsp["amount"] == Decimal("120.50")
                (sent,) = fx_seen
                assert {k: v for k, v in sent.items() if k != "amount"} == {
                    "reference": "T0000001", "account": "ACC-42", "currency": "EUR"}
                assert Decimal(str(sent["amount"])) == Decimal("120.50")

                # 2. NATS consume -> TCP call; acked after the commit
                orders = sb.channel("orders")
                await eventually(lambda: _v(orders.ready.is_set()), "nats consumer ready")
                await nc.publish("orders.new", b'{"ref": "O-1", "amount": 9.99}')
                await eventually(lambda: _v(orders.acked == 1), "O-1 consumed and acked")
                assert [b["ref"] for b in book_seen] == ["O-1"]

                # 3. HTTP in -> NATS publish -> JSON out (dedup by deal reference)
                api_url = f"http://127.0.0.1:{sb.channel('api').port}/transfers"
                async with httpx.AsyncClient() as http:
                    first = await http.post(api_url, json={"ref": "X-1", "amount": 5})
                    again = await http.post(api_url, json={"ref": "X-1", "amount": 5})
                assert first.status_code == 200, first.text
                assert first.json() == {"ref": "X-1", "seq": 1, "duplicate": False}
                assert again.json() == {"ref": "X-1", "seq": 1, "duplicate": True}
                assert await nc.stream_messages("TRANSFERS") == 1

                # 4. TLS tcp listen in the same engine
                tls = await trio.open_ssl_over_tcp_stream(
                    "127.0.0.1", sb.channel("secure").port, ssl_context=client_context(ca=ca_pem),
                    https_compatible=False)
                pong = await framed_call(tls, b'{"ping": "hello"}')
                await tls.aclose()
                assert orjson.loads(pong) == {"pong": "hello"}

                # 5. file watch -> file write
                tmp = tmp_path / "in" / ".b.tmp"
                tmp.write_text('{"ref": "F-1", "amount": 1}\n{"ref": "F-2", "amount": 2}\n')
                os.replace(tmp, tmp_path / "in" / "b.jsonl")
                await eventually(lambda: _v((tmp_path / "in" / "done" / "b.jsonl").exists()), "file processed")
                assert sorted(orjson.loads(p.read_bytes())["ref"] for p in (tmp_path / "out").iterdir()) == \
                    ["F-1", "F-2"]

                sb.drain()

    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        rows = con.execute("SELECT channel, route, reference, status FROM deals ORDER BY received_at").fetchall()
    finally:
        con.close()
    by_channel = {}
    for channel, route_name, ref, status in rows:
        by_channel.setdefault(channel, []).append((route_name, ref, status))
    assert by_channel["mainframe"] == [("pay", "T0000001", "committed")]
    assert by_channel["orders"] == [("order", "O-1", "committed")]
    assert [r[2] for r in by_channel["api"]] == ["committed", "committed"]
    assert by_channel["secure"] == [("ping", None, "committed")]
    assert sorted(by_channel["inbox"]) == [("batch", "F-1", "committed"), ("batch", "F-2", "committed")]


async def _v(value: object) -> object:
    return value
