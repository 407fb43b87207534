"""A stricter tag inside a classified group (``classify ["card:personal", "card.cvv:secret"]``): the CVV
takes the tag that shows least of it, secret, in everything bsp keeps -- the ledger row (masked or
encrypted), a failure's text (the deal's reason, the dead letter's, the error reply), a ``--record
--mask`` capture -- as ``bsp check`` (W006) reads it.  It used to be masked as personal there ('7***',
or sealed with the group so that --reveal gave it back)."""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import duckdb
import pytest
import trio

from engine import fieldcrypt
from engine.registry import default_registry
from engine.replay.capture import Capture
from engine.replay.tap import recording
from kit import Client, compile_text, json_counterpart, running

CVV = "7391"
NAME = "Jane Card 0001"
ROUTE = """
format Req = json schema "s.json" classify ["card:personal", "card.cvv:secret"]
format Rsp = json
channel front = tcp listen {
    address = "127.0.0.1:0"  framing = length2
    on error reply Rsp { kind = error.kind  detail = error.detail }
}
channel back = tcp connect { address = "127.0.0.1:1"  framing = length4  timeout = 2s }
route pay {
    receive from front as Req when msg.op == "pay"
    call post = back as Req reply Rsp { op = "post"  card = msg.card } expect post.status == "OK"
    reply Rsp { code = "00" }
}
route date {
    receive from front as Req when msg.op == "date"
    reply Rsp { d = parse_date(msg.card.cvv, "%Y%m%d") }
}
"""
SCHEMA = {"type": "object", "properties": {"op": {"type": "string"}, "card": {"type": "object", "properties": {
    "number": {"type": "string"}, "cvv": {"type": "string", "maxLength": 4}}}}}


def req(op: str, cvv: str = CVV) -> bytes:
    return json.dumps({"op": op, "card": {"number": NAME, "cvv": cvv}}).encode()


def read(ledger: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("with_keys", [False, True], ids=["masked", "encrypted"])
async def test_a_secret_inside_a_personal_group_is_kept_as_a_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    with_keys: bool) -> None:
    ring = None
    if with_keys:
        monkeypatch.setenv("BSP_FIELD_KEYS", "k1:" + base64.b64encode(os.urandom(32)).decode())
        ring = fieldcrypt.load_keyring()
    else:
        monkeypatch.delenv("BSP_FIELD_KEYS", raising=False)
        monkeypatch.delenv("BSP_FIELD_KEYS_FILE", raising=False)
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    prog = compile_text(tmp_path, ROUTE)
    ledger, capture = tmp_path / "l.duckdb", tmp_path / "cap.duckdb"
    replies = []
    async with trio.open_nursery() as nursery:
        back = await json_counterpart(nursery, lambda r: {"status": "OK"})
        with recording(prog, default_registry(), capture, mask=True) as (registry, _):
            async with running(prog, ledger, {"back": {"address": f"127.0.0.1:{back}"}}, registry=registry) as sb:
                c = await Client.open(sb.channel("front").port)
                for payload in (req("pay"), req("date"), req("pay", CVV + "5")):
                    await c.send(payload)
                    replies.append((await c.recv_json())[0])
                await c.aclose()
        nursery.cancel_scope.cancel()
    assert replies[0] == {"code": "00"}
    # failure texts: the function's error and the schema's quote the CVV as a secret
    assert replies[1]["kind"] == "rejected" and "parse_date: '***' does not match" in replies[1]["detail"]
    assert replies[2]["kind"] == "malformed" and "field $.card.cvv" in replies[2]["detail"] \
        and "'***' is too long" in replies[2]["detail"]
    rows = read(ledger, "SELECT deal_id, route, reason, request FROM deals ORDER BY received_at")
    assert [r[1] for r in rows] == ["pay", "date", "(malformed)"]
    for _, route, reason, request in rows:
        assert CVV not in (reason or "") and "'7***'" not in (reason or "")
        if route != "(malformed)" or with_keys:      # an undecodable request without a keyring: its hex
            assert CVV not in request and NAME not in request
    assert "parse_date: '***'" in rows[1][2] and "'***' is too long" in rows[2][2]
    for deal_id, _, _, request in rows[:2]:
        card = json.loads(request)["card"]
        assert card["cvv"] == "***"
        if ring is None:
            assert card["number"] == "J***"
        else:      # the rest of the group encrypted; --reveal gives it back, never the CVV
            assert card["number"].startswith("enc:v1:k1:")
            shown = fieldcrypt.reveal(json.loads(request), ring, context=deal_id, root="request")
            assert shown["card"] == {"number": NAME, "cvv": "***"}
    dead = read(ledger, "SELECT reason FROM dead_letters")
    assert len(dead) == 2 and all(CVV not in r and "'7***'" not in r and "'***'" in r for (r,) in dead)
    # the masked capture: the request, the call that carries the card, the error reply
    cap = Capture(capture)
    frames = [f for ex in cap.exchanges for f in (ex.request, ex.reply, *(x for c in ex.calls
                                                                            for x in (c.request, c.reply)))]
    stored = [f.raw for f in frames if f is not None and f.raw is not None]
    assert stored and not [r for r in stored if CVV.encode() in r or b"7***" in r]
    pay = cap.exchanges[0]
    assert json.loads(pay.request.raw)["card"] == {"number": "J***", "cvv": "***"}
    assert json.loads(pay.calls[0].request.raw)["card"] == {"number": "J***", "cvv": "***"}


async def test_a_three_digit_secret_quoted_by_an_error_is_masked(tmp_path: Path) -> None:
    """A CVV of 3 digits is below the length at which classified values are masked wherever they appear
    (a code such as "00" must not be taken for one); where an error text quotes it, it is masked all the same."""
    cvv = "739"
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    prog = compile_text(tmp_path, ROUTE)
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(req("date", cvv))
        with trio.fail_after(10):
            (reply,) = await c.recv_json()
        await c.aclose()
    assert reply["kind"] == "rejected" and "parse_date: '***' does not match" in reply["detail"], reply
    ((reason,),) = read(ledger, "SELECT reason FROM deals")
    ((dead,),) = read(ledger, "SELECT reason FROM dead_letters")
    assert f"'{cvv}'" not in reason and f"'{cvv}'" not in dead and "'***'" in reason and "'***'" in dead
