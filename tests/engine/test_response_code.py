"""A committed deal's `response_code` is the code its reply carried (docs/ledger.md): the reply's field that the
route's error reply (its own, else its channel's) fills with `error.code`.  Before, only failures carried
one: every committed deal's was empty.  A duplicate carries its original's, also after a restart (the key
store's compact answer keeps the code); a route without such a field records none.

Real engines in process on 127.0.0.1 port 0 (TCP fixed-width, ISO 8583, HTTP JSON), a real JSON
counterpart, real DuckDB ledgers and transaction logs."""
from __future__ import annotations

from pathlib import Path

import httpx
import trio

from formats.iso8583 import codec_for
from kit import Client, compile_text, deals, json_counterpart, running

FIXED = """
format Req = fixed {
    op     string(4)
    ref    string(8)
    amount decimal(10, 2)
}
format Rsp = fixed {
    ref    string(8)
    rc     string(2)
    text   string(40)
}
format J = json

channel mf = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply Rsp { ref = ""  rc = error.code  text = error.text }
}
channel host = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 2s }
channel side = tcp listen { address = "127.0.0.1:0"  framing = length2 }

route pay {
    receive from mf as Req when msg.op == "PAY1"
    deal PAY { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref }
    call h = host as J reply J { ref = msg.ref  amount = msg.amount } expect h.status in ["OK", "PARTIAL"]
    reply Rsp { ref = msg.ref  rc = if h.status == "PARTIAL" then "10" else "00"  text = "paid" }
    on error reply Rsp { ref = msg.ref  rc = error.code  text = error.text }
}

# no error reply of its own: its channel's names the field
route enquiry {
    receive from mf as Req when msg.op == "ENQ1"
    reply Rsp { ref = msg.ref  rc = "00"  text = "balance" }
}

# a channel without an error reply, a route without one: nothing says which field is the code
route ping {
    receive from side as Req
    reply Rsp { ref = msg.ref  rc = "00"  text = "pong" }
}
"""


def fixed(op: str, ref: str, amount: str = "0000000100") -> bytes:
    return f"{op}{ref:<8}{amount:>10}".encode()


async def test_committed_deals_over_tcp_fixed_width_record_the_code_answered(nursery, tmp_path: Path) -> None:
    calls: list[str] = []

    def host(req: dict) -> dict:
        calls.append(req["ref"])
        return {"status": "PARTIAL" if req["ref"] == "P2" else "NO" if req["ref"] == "P3" else "OK"}

    prog = compile_text(tmp_path, FIXED % await json_counterpart(nursery, host))
    ledger = tmp_path / "l.duckdb"
    replies = []
    for run in range(2):                     # the second run answers P1's repeat from the log's compact answer
        async with running(prog, ledger) as sb:
            c = await Client.open(sb.channel("mf").port)
            s = await Client.open(sb.channel("side").port)
            with trio.fail_after(10):
                sends = [fixed("PAY1", "P1")] if run else [fixed("PAY1", r) for r in ("P1", "P2", "P3", "P1")] \
                    + [fixed("ENQ1", "E1")]
                for frame in sends:
                    await c.send(frame)
                    replies.extend(await c.recv())
                await s.send(fixed("PING", "X1"))
                replies.extend(await s.recv())
            await c.aclose()
            await s.aclose()
    assert [r[8:10] for r in replies] == [b"00", b"10", b"05", b"00", b"00", b"00", b"00", b"00"], replies
    assert calls == ["P1", "P2", "P3"]                # the repeats were answered, not run again
    got = [(d["route"], d["reference"], d["status"], d["response_code"]) for d in deals(ledger)]
    assert got == [
        ("pay", "P1", "committed", "00"),
        ("pay", "P2", "committed", "10"),             # the value the reply gave the field, not a constant
        ("pay", "P3", "failed", "05"),
        ("pay", "P1", "duplicate", "00"),             # the original's code
        ("enquiry", None, "committed", "00"),          # its channel's error reply names `rc`
        ("ping", None, "committed", None),            # no error reply fills a field with error.code: no code
        ("pay", "P1", "duplicate", "00"),             # after a restart: from the key store
        ("ping", None, "committed", None),
    ], got


ISO = """
format Iso = iso8583 iso8583_1987_ascii
channel pos = tcp listen { address = "127.0.0.1:0"  framing = length2 }
route purchase {
    receive from pos as Iso when msg.t == "0200"
    deal PURCHASE { ref = msg["11"]  amount = 0  key = msg["41"] + "/" + msg["11"] }
    validate { msg["4"] != "000000000000" else reject "13" "invalid amount" }
    reply Iso {
        t    = "0210"
        "3"  = msg["3"]
        "4"  = msg["4"]
        "7"  = msg["7"]
        "11" = msg["11"]
        "39" = if msg["4"] > "000000100000" then "10" else "00"
        "41" = msg["41"]
        "49" = msg["49"]
    }
    on error reply Iso {
        t    = "0210"
        "3"  = msg["3"]
        "4"  = msg["4"]
        "7"  = msg["7"]
        "11" = msg["11"]
        "39" = if error.kind == "refused" then "51" else error.code
        "41" = msg["41"]
        "49" = msg["49"]
    }
}
"""
ISO_CODEC = codec_for("iso8583_1987_ascii")


def iso(stan: str, amount: str) -> bytes:
    return ISO_CODEC.encode({"t": "0200", "2": "4111111111111111", "3": "000000", "4": amount, "7": "1125210000",
                             "11": stan, "41": "TERM0001", "49": "978"})


async def test_an_iso8583_route_records_field_39(tmp_path: Path) -> None:
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, ISO), ledger) as sb:
        c = await Client.open(sb.channel("pos").port)
        with trio.fail_after(10):
            for stan, amount in (("000001", "000000001050"), ("000002", "000000200000"),
                                 ("000003", "000000000000"), ("000001", "000000001050")):
                await c.send(iso(stan, amount))
                await c.recv()
            await c.send(iso("000004", "000000000100"), iso("000004", "000000000100"))   # one batch
            await c.recv(2)
        await c.aclose()
    got = [(d["reference"], d["status"], d["response_code"]) for d in deals(ledger)]
    assert got[:4] == [("000001", "committed", "00"), ("000002", "committed", "10"), ("000003", "rejected", "13"),
                       ("000001", "duplicate", "00")], got
    # a repeat whose original ran in the same batch (engine.txn.manager: "pending") carries its code too
    assert sorted(got[4:]) == [("000004", "committed", "00"), ("000004", "duplicate", "00")], got


HTTP = """
format J = json
channel api = http listen { address = "127.0.0.1:0"  path = "/pay" }
route pay {
    receive from api as J
    deal PAY { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref }
    validate { msg.amount > 0 else reject "13" "invalid amount" }
    reply J { ref = msg.ref  code = "00"  status = "PAID" }
    on error reply J { ref = msg.ref  code = error.code  status = "REJECTED" }
}
"""


async def test_an_http_json_route_records_its_code_and_a_repeat_the_same(tmp_path: Path) -> None:
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, HTTP), ledger) as sb:
        url = f"http://127.0.0.1:{sb.channel('api').port}/pay"
        async with httpx.AsyncClient() as c:
            answers = [(await c.post(url, json={"ref": ref, "amount": amount})).json()["code"]
                       for ref, amount in (("H1", 5), ("H1", 5), ("H2", 0))]
    assert answers == ["00", "00", "13"], answers
    got = [(d["reference"], d["status"], d["response_code"]) for d in deals(ledger)]
    assert got == [("H1", "committed", "00"), ("H1", "duplicate", "00"), ("H2", "rejected", "13")], got
