"""Every dead letter carries the code its deal records (``error_code`` = ``deals.response_code``), whether or
not a reply was sent: a file's bad line (the decode failure's 30) or a record a rule refused (the rule's code),
an HTTP request answered by the channel's problem (no ``on error reply``), a TCP request whose route has no
error reply, a NATS message without a reply subject.  Until 2026-11-28 only a letter whose route answered had a
code, so an auditor read ``rejected 13`` on the deal and nothing on its letter.  ``bsp dead list`` shows it (the
code column) and ``--code`` selects by it, as the ledger query and ``GET /dead-letters?code=`` do.  Real
folders, loopback sockets, a real nats-server and real DuckDB ledgers."""
from __future__ import annotations

from pathlib import Path

import duckdb
import httpx
import orjson
import pytest
import trio
from typer.testing import CliRunner

from engine.cli import app
from engine.ledger_query import query_dead_letters
from kit import Client, compile_text, running
from natskit import bound, eventually, nats_client, nats_registry, nats_server, value

FILE_ROUTE = '''
format Pay = json

channel inbox = file watch {
    dir     = "in"
    pattern = "*.jsonl"
}

route pay {
    receive from inbox as Pay
    validate {
        msg.amount > 0 else reject "13" "invalid amount"
    }
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
}
'''

HTTP_ROUTE = '''
format Pay = json
format Ack = json

channel api = http listen {
    address = "127.0.0.1:0"
    path    = "/payments"
}

route pay {
    receive from api as Pay
    validate {
        msg.amount > 0 else reject "13" "invalid amount"
    }
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    reply Ack { status = "OK"  ref = msg.ref }
}
'''

TCP_ROUTE = '''
format Pay = json

channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}

route pay {
    receive from front as Pay
    validate {
        msg.amount > 0 else reject "13" "invalid amount"
    }
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    reply Pay { ref = msg.ref  status = "OK" }
}
'''

NATS_ROUTE = '''
format Order = json
format Ack   = json

channel orders = nats consume {{
    url        = "{url}"
    subject    = "orders.new"
    stream     = "ORDERS"
    durable    = "bsp-orders"
    fetch_wait = 200ms
}}

route take_order {{
    receive from orders as Order
    validate {{
        msg.amount > 0 else reject "13" "invalid amount"
    }}
    deal ORDER {{ ref = msg.ref  amount = msg.amount  currency = "EUR" }}
    reply Ack {{ ref = msg.ref  status = "OK" }}
}}
'''


def _codes(ledger: Path) -> tuple[dict[str, str | None], dict[str, tuple[str | None, str | None]]]:
    """(deal id -> response_code of the refused deals, letter id -> (error_kind, error_code))."""
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        deals = dict(con.execute("SELECT deal_id, response_code FROM deals WHERE status IN ('rejected', 'failed')")
                     .fetchall())
        letters = {i: (k, c) for i, k, c in con.execute("SELECT id, error_kind, error_code FROM dead_letters")
                   .fetchall()}
    finally:
        con.close()
    return deals, letters


def _same_codes(ledger: Path, expect: set[tuple[str, str]]) -> None:
    deals, letters = _codes(ledger)
    assert set(letters) == set(deals), (letters, deals)
    assert {i: c for i, (_, c) in letters.items()} == deals          # each letter has its deal's code
    assert set(letters.values()) == expect, letters


async def _wait(cond, what: str) -> None:
    with trio.fail_after(10):
        while not cond():
            await trio.sleep(0.02)


async def test_a_file_batchs_dead_letters_carry_their_deals_codes(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, FILE_ROUTE), ledger):
        (inbox / ".bad.tmp").write_text('{"ref": "B1", "amount": 5}\n{"ref": "B2", "amount": \n'
                                        '{"ref": "B3", "amount": -1}\n')
        (inbox / ".bad.tmp").rename(inbox / "bad.jsonl")
        await _wait(lambda: (inbox / "error" / "bad.jsonl").exists(), "the file to error/")
    # the line that did not decode: malformed, 30; the line the rule refused: the rule's 13
    _same_codes(ledger, {("malformed", "30"), ("rejected", "13")})
    # shown by bsp dead list (the code column) and selected by --code, as the ledger query does
    runner = CliRunner()
    res = runner.invoke(app, ["dead", "list", "--ledger", str(ledger)])
    assert res.exit_code == 0, res.output
    head, *rows = res.output.splitlines()[1:]
    assert head.split()[:9] == ["id", "at", "(UTC)", "status", "channel", "route", "kind", "code", "reason"], head
    assert sorted(r.split()[6:8] for r in rows) == [["malformed", "30"], ["rejected", "13"]], rows
    res = runner.invoke(app, ["dead", "list", "--ledger", str(ledger), "--code", "13", "--json"])
    assert res.exit_code == 0, res.output
    [one] = [orjson.loads(line) for line in res.output.splitlines()]
    assert (one["error_kind"], one["error_code"]) == ("rejected", "13") and "record 3" in one["reason"]
    assert [r["error_code"] for r in query_dead_letters(ledger, code="30")] == ["30"]
    assert query_dead_letters(ledger, code="91") == []
    res = runner.invoke(app, ["dead", "show", one["id"], "--ledger", str(ledger)])
    assert res.exit_code == 0 and "     error_code: 13" in res.output.splitlines(), res.output


async def test_an_http_request_answered_by_the_channels_problem_has_its_code(tmp_path: Path) -> None:
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, HTTP_ROUTE), ledger) as sb:
        url = f"http://127.0.0.1:{sb.channel('api').port}/payments"
        async with httpx.AsyncClient() as c:
            bad = await c.post(url, content=b'{"ref": "H1", "amount": ', headers={"content-type": "application/json"})
            rej = await c.post(url, json={"ref": "H2", "amount": 0})
    assert (bad.status_code, bad.json()["kind"]) == (400, "malformed")
    assert rej.json()["kind"] == "rejected"
    _same_codes(ledger, {("malformed", "30"), ("rejected", "13")})


async def test_a_tcp_request_whose_route_has_no_error_reply_has_its_code(tmp_path: Path) -> None:
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, TCP_ROUTE), ledger) as sb:
        client = await Client.open(sb.channel("front").port)
        await client.send(b'{"ref": "T1", "amount": 0}', b'{"ref": "T2", "amount": 1}')
        replies = await client.recv_json(1)           # the one committed; the refused one is not answered
        await client.aclose()
    assert replies == [{"ref": "T2", "status": "OK"}]
    _same_codes(ledger, {("rejected", "13")})


async def test_a_nats_message_without_a_reply_subject_has_its_code(tmp_path: Path, nursery) -> None:
    pytest.importorskip("nats")
    ledger = tmp_path / "l.duckdb"
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        reg = nats_registry()
        prog = compile_text(tmp_path, NATS_ROUTE.format(url=srv.url), registry=reg)
        async with running(prog, ledger, registry=reg) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consumer ready")
            await nc.publish("orders.new", b'{"ref": "N1", "amount": 0}')       # no Bsp-Reply-To: no reply
            await eventually(lambda: value(ch.acked == 1), "the message acknowledged")
    _same_codes(ledger, {("rejected", "13")})
