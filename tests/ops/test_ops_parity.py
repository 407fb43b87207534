"""The same traffic through the plain runtime (engine.runtime.Switchboard: channels get its Dispatcher),
the live engine `bsp run` uses (channels get a forwarding HandlerRef) and the live engine recording
(`--record`: the HandlerRef wrapped in a recording tap) gives the same replies, deals, steps and dead
letters.  Each case runs three times, once per engine; a feature that depended on what the channel was
handed (an attribute of the dispatcher, an outcome list, a per-frame header) shows here as a difference.

Real sockets on 127.0.0.1 (port 0), real TCP counterparts, real DuckDB ledgers."""
from __future__ import annotations

import hashlib
import hmac
import os
from collections import Counter
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import httpx
import pytest
import trio

from engine.ledger import open_ledger
from engine.registry import default_registry
from engine.replay.tap import recording
from engine.runtime import Switchboard
from formats.iso8583 import codec_for
from formats.iso8583.macs import MacPolicy, plan_mac
from opskit import compile_file, live, rows
from kit import TRANSFER_ROUTE, Client, Counterpart, json_counterpart  # noqa: E402  (tests/engine, put on the path by opskit)

KINDS = ["plain", "live", "live-record"]


@asynccontextmanager
async def serving(kind: str, route: Path, ledger: Path, overrides: dict | None = None
                  ) -> AsyncIterator[Callable[[str], Any]]:
    """``route`` served by engine ``kind``; yields ``channel(name)`` -> the running channel object."""
    registry = default_registry()
    program = compile_file(route, registry)
    if kind == "plain":
        async with open_ledger(ledger) as led:
            sb = Switchboard(program, registry, ledger=led, overrides=overrides, grace=5)
            async with trio.open_nursery() as nursery:
                await nursery.start(sb.run)
                try:
                    yield sb.channel
                finally:
                    sb.drain()
        return
    with recording(program, registry, ledger.with_name("cap.duckdb") if kind == "live-record" else None) \
            as (reg, _):
        async with live([route], ledger, overrides=overrides, registry=reg) as eng:
            yield lambda name: eng.channels[name]


# ---------------------------------------------------------------- tcp listen: bad input, error replies
BAD_INPUT = """
format Req = json
format Rsp = json

channel front = tcp listen {
    address   = "127.0.0.1:0"
    framing   = length2
    max_frame = 256
    on error reply Rsp {
        code = error.code
        kind = error.kind
    }
}
channel back = tcp connect { address = "127.0.0.1:1"  framing = length4  timeout = 2s }

route pay {
    receive from front as Req when msg.op == "pay"
    validate {
        msg.amount > 0 else reject "13" "invalid amount"
    }
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "CNY" }
    call post = back as Req reply Rsp { op = "post"  ref = msg.ref } expect post.status == "OK"
    reply Rsp { ref = msg.ref  code = "00" }
}
"""


@pytest.mark.parametrize("kind", KINDS)
async def test_tcp_listen_bad_input_and_framing_errors(kind: str, nursery, tmp_path: Path) -> None:
    back = Counterpart(refuse={"N1"})
    port = await json_counterpart(nursery, back.answer)
    route = tmp_path / "pay.route"
    route.write_text(BAD_INPUT)
    ledger = tmp_path / "l.duckdb"
    async with serving(kind, route, ledger, {"back": {"address": f"127.0.0.1:{port}"}}) as channel:
        c = await Client.open(channel("front").port)
        with trio.fail_after(10):
            await c.send(b'{"op":"pay","ref":"G1","amount":5}', b'{"op":"pay","ref":"R1","amount":-1}',
                         b'{"op":"other","ref":"U1"}', b'not json', b'{"op":"pay","ref":"N1","amount":3}')
            replies = await c.recv_json(5)
            bad = await Client.open(channel("front").port)
            await bad.send_raw(b"\x01\x01" + b"x" * 20)            # declares 257 bytes, max_frame is 256
            (framing,) = await bad.recv_json()
            assert await bad.closed()
        await c.aclose()
        await bad.aclose()
    assert replies == [{"ref": "G1", "code": "00"}, {"code": "13", "kind": "rejected"},
                       {"code": "12", "kind": "unrouted"}, {"code": "30", "kind": "malformed"},
                       {"code": "05", "kind": "refused"}], replies
    assert framing == {"code": "30", "kind": "malformed"}
    got = rows(ledger, "SELECT route, status, response_code FROM deals ORDER BY received_at, route")
    assert sorted(got) == sorted([("pay", "committed", "00"), ("pay", "rejected", "13"),     # 00: the code answered
                                  ("(unrouted)", "rejected", "12"), ("(malformed)", "rejected", "30"),
                                  ("pay", "failed", "05"), ("(malformed)", "rejected", "30")]), got
    dead = sorted(rows(ledger, "SELECT error_kind, channel FROM dead_letters"))
    assert dead == sorted([("rejected", "front"), ("unrouted", "front"), ("malformed", "front"),
                           ("refused", "front"), ("malformed", "front")]), dead
    assert back.counts == Counter({("post", "G1"): 1, ("post", "N1"): 1})


# ---------------------------------------------------------------- ISO 8583 with a MAC
MAC_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
PLAIN = codec_for("iso8583_1987_ascii")
NET = PLAIN.with_mac(MacPolicy("retail-des", MAC_KEY, plan_mac(PLAIN.spec, "retail-des", None), None,
                               frozenset({"0800", "0810"})))
MAC_ROUTE = ('format Net = iso8583 iso8583_1987_ascii mac_algorithm "retail-des" mac_key_env "BSP_PARITY_MAC_KEY" '
             'mac_exempt ["0800", "0810"]\n') + """
channel pos = tcp listen { address = "127.0.0.1:0"  framing = length2 }

route purchase {
    receive from pos as Net when msg.t == "0200"
    deal PURCHASE { ref = msg["11"]  amount = 0 }
    reply Net { t = "0210"  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "39" = "00"
                "41" = msg["41"]  "49" = msg["49"]  "64" = "FFFFFFFFFFFFFFFF" }
    on error reply Net { t = "0210"  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]
                         "39" = error.code  "41" = msg["41"]  "49" = msg["49"] }
}
"""


def iso_req(stan: str) -> dict[str, str]:
    return {"t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000001050", "7": "1125210000",
            "11": stan, "41": "TERM0001", "49": "840"}


@pytest.mark.parametrize("kind", KINDS)
async def test_iso8583_mac_unauthenticated(kind: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BSP_PARITY_MAC_KEY", MAC_KEY.hex().upper())
    route = tmp_path / "pos.route"
    route.write_text(MAC_ROUTE)
    ledger = tmp_path / "l.duckdb"
    tampered = bytearray(NET.encode(iso_req("000002")))
    at = tampered.index(b"000000001050") + 7
    tampered[at] = ord("9")
    async with serving(kind, route, ledger) as channel:
        c = await Client.open(channel("pos").port)
        with trio.fail_after(10):
            await c.send(NET.encode(iso_req("000001")), bytes(tampered), NET.encode(iso_req("000003")))
            replies = [NET.decode(r) for r in await c.recv(3)]
        await c.aclose()
    assert [(r["11"], r["39"]) for r in replies] == [("000001", "00"), ("000002", "63"), ("000003", "00")]
    got = rows(ledger, "SELECT reference, status, response_code FROM deals ORDER BY reference NULLS LAST")
    assert got == [("000001", "committed", "00"), ("000003", "committed", "00"), (None, "rejected", "63")], got
    dead = rows(ledger, "SELECT error_kind, raw FROM dead_letters")
    assert [(k, bytes(r)) for k, r in dead] == [("unauthenticated", bytes(tampered))]


# ---------------------------------------------------------------- transactions: compensation, deal keys


@pytest.mark.parametrize("kind", KINDS)
async def test_compensation_and_repeated_keys(kind: str, nursery, tmp_path: Path) -> None:
    debit, credit = Counterpart(), Counterpart(refuse={"T2"})
    route = tmp_path / "transfer.route"
    route.write_text(TRANSFER_ROUTE % (await json_counterpart(nursery, debit.answer),
                                  await json_counterpart(nursery, credit.answer)))
    ledger = tmp_path / "l.duckdb"
    async with serving(kind, route, ledger) as channel:
        c = await Client.open(channel("front").port)
        with trio.fail_after(10):
            await c.send(b'{"ref":"T1","amount":10}')
            first = await c.recv_json(1)
            await c.send(b'{"ref":"T2","amount":10}')
            refused = await c.recv_json(1)
            await c.send(b'{"ref":"T1","amount":10}', b'{"ref":"T3","amount":1}', b'{"ref":"T3","amount":1}')
            rest = await c.recv_json(3)
        await c.aclose()
    assert first == [{"ref": "T1", "code": "00", "conf": "C-T1-post"}]
    assert refused == [{"ref": "T2", "code": "05"}]
    assert rest[0] == first[0] and rest[1] == rest[2] == {"ref": "T3", "code": "00", "conf": "C-T3-post"}
    assert debit.counts == Counter({("post", "T1"): 1, ("post", "T2"): 1, ("cancel", "T2"): 1, ("post", "T3"): 1})
    assert credit.counts == Counter({("post", "T1"): 1, ("post", "T2"): 1, ("post", "T3"): 1})
    got = sorted(rows(ledger, "SELECT reference, status FROM deals"))
    assert got == [("T1", "committed"), ("T1", "duplicate"), ("T2", "failed"), ("T3", "committed"),
                   ("T3", "duplicate")], got
    steps = rows(ledger, "SELECT s.step, s.outcome FROM deal_steps s JOIN deals d USING (deal_id) "
                         "WHERE d.reference = 'T2' ORDER BY s.seq")
    assert steps[-2:] == [("c", "refused"), ("d.compensate", "ok")], steps
    assert rows(ledger, "SELECT error_kind FROM dead_letters") == [("refused",)]


# ---------------------------------------------------------------- http listen
HTTP_SECRET = "parity-partner-secret-5"
HTTP_ROUTE = '''
format Pay = json
format Ack = json
channel api = http listen {
    address    = "127.0.0.1:0"
    path       = "/payments/{id}"
    signature_header  = "X-Signature"
    signature_key_env = "BSP_PARITY_PARTNER_KEY"
}
route pay {
    receive from api as Pay
    validate { msg.amount > 0 else reject "13" "amount must be positive" }
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref }
    reply Ack { status = "OK"  ref = msg.ref  id = http.params.id }
}
'''


@pytest.mark.parametrize("kind", KINDS)
async def test_http_listen_outcomes_refusals_and_keys(kind: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BSP_PARITY_PARTNER_KEY", HTTP_SECRET)

    def signed(body: bytes) -> dict[str, str]:
        return {"content-type": "application/json",
                "X-Signature": hmac.new(HTTP_SECRET.encode(), body, hashlib.sha256).hexdigest()}

    route = tmp_path / "api.route"
    route.write_text(HTTP_ROUTE)
    ledger = tmp_path / "l.duckdb"
    statuses = []
    async with serving(kind, route, ledger) as channel:
        url = f"http://127.0.0.1:{channel('api').port}/payments/7"
        async with httpx.AsyncClient(timeout=10) as c:
            for body, headers in [(b'{"ref": "G1", "amount": 10}', None), (b'{"ref": "G1", "amount": 10}', None),
                                  (b'{"ref": "R1", "amount": -1}', None),
                                  (b'{"ref": "U1", "amount": 9}', signed(b"other"))]:
                r = await c.post(url, content=body, headers=headers or signed(body))
                statuses.append((r.status_code, r.json().get("id") or r.json().get("code")))
    assert statuses == [(200, "7"), (200, "7"), (422, "13"), (401, "63")], statuses
    got = sorted(rows(ledger, "SELECT deal_type, status FROM deals"))
    assert got == [("PAYMENT", "committed"), ("PAYMENT", "duplicate"), ("UNAUTHENTICATED", "rejected"),
                   ("pay", "rejected")], got
    assert sorted(rows(ledger, "SELECT error_kind FROM dead_letters")) == [("rejected",), ("unauthenticated",)]


# ---------------------------------------------------------------- file watch
FILE_ROUTE = '''
format Pay = json
channel inbox = file watch { dir = "%s"  pattern = "*.jsonl"  rescan = 50ms }
route pay {
    receive from inbox as Pay
    validate { msg.amount > 0 else reject "13" "invalid amount" }
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref }
}
'''


@pytest.mark.parametrize("kind", KINDS)
async def test_file_watch_records_and_their_outcomes(kind: str, tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    route = tmp_path / "files.route"
    route.write_text(FILE_ROUTE % inbox)
    ledger = tmp_path / "l.duckdb"
    async with serving(kind, route, ledger):
        for name, data in [("good.jsonl", b'{"ref": "A1", "amount": 5}\n{"ref": "A2", "amount": 6}\n'),
                           ("bad.jsonl", b'{"ref": "B1", "amount": 5}\n{"ref": "B2", "amount": -1}\n'
                                         b'{"ref": "A1", "amount": 5}\n')]:
            (inbox / f".{name}").write_bytes(data)
            os.replace(inbox / f".{name}", inbox / name)
            with trio.fail_after(10):
                while (inbox / name).exists():
                    await trio.sleep(0.02)
    assert (inbox / "done" / "good.jsonl").exists() and (inbox / "error" / "bad.jsonl").exists()
    reason = (inbox / "error" / "bad.jsonl.reason.txt").read_text()
    assert "2 problem(s) in 3 record(s)" in reason, reason
    assert "record 2, byte offset 27: rejected (rejected, code 13)" in reason, reason
    assert "record 3, byte offset 55: failed (duplicate, code 94): repeats deal" in reason, reason
    got = sorted(rows(ledger, "SELECT reference, status, response_code FROM deals WHERE reference IS NOT NULL"))
    # no reply, no response-code field: committed deals record no code; the repeat records the 94 it failed with
    # (the reason file's "duplicate, code 94"), not its original's empty one
    assert got == [("A1", "committed", None), ("A1", "duplicate", "94"), ("A2", "committed", None),
                   ("B1", "committed", None)], got


# ---------------------------------------------------------------- timer
TIMER_ROUTE = '''
format Tick = json
channel tick = timer { every = 30ms  immediate = true }
channel back = tcp connect { address = "127.0.0.1:1"  framing = length2  timeout = 200ms }
route beat {
    receive from tick as Tick
    deal BEAT { ref = "beat"  amount = 0  currency = "CNY" }
    call x = back as Tick { n = 1 }
}
'''


@pytest.mark.parametrize("kind", KINDS)
async def test_timer_ticks_that_fail_are_recorded_and_logged(kind: str, tmp_path: Path, caplog) -> None:
    route = tmp_path / "beat.route"
    route.write_text(TIMER_ROUTE)
    ledger = tmp_path / "l.duckdb"
    async with serving(kind, route, ledger) as channel:
        with trio.fail_after(10):
            while channel("tick").ticks < 2:
                await trio.sleep(0.01)
    assert "channel tick: tick 1 failed (unreachable, code 91)" in caplog.text, caplog.text
    got = set(rows(ledger, "SELECT status, response_code FROM deals"))
    assert got == {("failed", "91")}, got


# ---------------------------------------------------------------- memory
MEMORY_ROUTE = '''
format Req = json
channel teller = memory { framing = length2 }
route echo {
    receive from teller as Req
    validate { msg.amount > 0 else reject "13" "invalid amount" }
    deal ECHO { ref = msg.ref  amount = msg.amount  currency = "CNY" }
    reply Req { ref = msg.ref  code = "00" }
    on error reply Req { ref = msg.ref  code = error.code }
}
'''


@pytest.mark.parametrize("kind", KINDS)
async def test_memory_channel(kind: str, tmp_path: Path) -> None:
    from formats.framing import make_framer
    import orjson

    route = tmp_path / "teller.route"
    route.write_text(MEMORY_ROUTE)
    ledger = tmp_path / "l.duckdb"
    async with serving(kind, route, ledger) as channel:
        ch = channel("teller")
        stream = await ch.connect()
        tx, rx = make_framer("length2"), make_framer("length2")
        await stream.send_all(tx.frame(b'{"ref": "M1", "amount": 2}') + tx.frame(b'{"ref": "M2", "amount": 0}'))
        got: list[bytes] = []
        with trio.fail_after(10):
            while len(got) < 2:
                got.extend(rx.feed(await stream.receive_some(65536)))
        await stream.aclose()
    assert [orjson.loads(g) for g in got] == [{"ref": "M1", "code": "00"}, {"ref": "M2", "code": "13"}]
    assert sorted(rows(ledger, "SELECT reference, status FROM deals"), key=str) == [("M1", "committed"),
                                                                                   (None, "rejected")]
