"""Classified values (pan / secret / personal) never in clear in what an operator or a client reads:
the deal's reason, the dead letter's reason, error replies (error.detail), the deals.request of a
request no route took or no format read, and the log -- whatever the bad input (docs/security.md)."""
from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path

import duckdb
import pytest
import trio

from dsl.functions import f_parse_date
from engine import fieldcrypt
from formats.classify import safe_error_text
from formats.errors import FormatError
from kit import Client, compile_text, json_counterpart, running

PAN = "4111111111111111"
CVV = "S3cr3tCvv9"
NAME = "Zanzibar Quux"
CLEAR = (PAN, PAN[6:], CVV, NAME, "Zanzibar", PAN.encode("cp037").hex(), PAN.encode().hex()[:20],
         " ".join(f"{b:02x}" for b in PAN.encode("cp037"))[:20])
SCHEMA = {"type": "object", "properties": {
    "op": {"type": "string"}, "amount": {"type": "number"}, "holder": {"type": "string", "maxLength": 20},
    "card": {"type": "object", "properties": {"number": {"type": "string", "pattern": "^[0-9]{16}$"},
                                              "cvv": {"type": "string", "maxLength": 12}}}}}
ROUTE = """
format Req = json schema "s.json" classify ["card.number:pan", "card.cvv:secret", "holder:personal"]
format Rsp = json
format Fix = fixed {
    code string(2)
    holder string(5) personal
}
format Card = copybook "CARD.cpy" encoding "cp037" names lower classify ["pan:pan", "holder:personal"]
channel front = tcp listen {
    address = "127.0.0.1:0"  framing = length2
    on error reply Rsp { kind = error.kind  text = error.text  detail = error.detail }
}
channel cb = tcp listen {
    address = "127.0.0.1:0"  framing = length2
    on error reply Rsp { kind = error.kind  detail = error.detail }
}
channel back = tcp connect { address = "127.0.0.1:1"  framing = length4  timeout = 2s }
route pay {
    receive from front as Req when msg.op == "pay"
    call post = back as Req reply Rsp { op = "post" card = msg.card holder = msg.holder } expect post.status == "OK"
    reply Rsp { code = "00" }
}
route fix {
    receive from front as Req when msg.op == "fix"
    reply Fix { code = "00" holder = msg.holder }
}
route num {
    receive from front as Req when msg.op == "num"
    reply Rsp { n = round(msg.holder, 0) d = parse_date(msg.card.number, "%Y%m%d") }
}
route date {
    receive from front as Req when msg.op == "date"
    reply Rsp { d = parse_date(msg.card.number, "%Y%m%d") }
}
route card { receive from cb as Card  reply Rsp { ok = "1" } }
"""
CARD_CPY = """       01 CARD-REQ.
          05 OP        PIC X(4).
          05 PAN       PIC 9(16).
          05 HOLDER    PIC X(13).
"""


def req(op: str, pan: str = PAN, cvv: str = CVV, name: str = NAME) -> bytes:
    return json.dumps({"op": op, "card": {"number": pan, "cvv": cvv}, "holder": name, "amount": 1}).encode()


def read(ledger: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def assert_clear_of_values(where: str, text: str) -> None:
    for value in CLEAR:
        assert value not in text, f"{where} shows {value!r}: {text}"


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> fieldcrypt.Keyring:
    monkeypatch.setenv("BSP_FIELD_KEYS", "k1:" + base64.b64encode(os.urandom(32)).decode())
    ring = fieldcrypt.load_keyring()
    assert ring is not None
    return ring


async def test_bad_input_quotes_no_classified_value(tmp_path: Path, nursery: trio.Nursery, keys: fieldcrypt.Keyring,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    (tmp_path / "CARD.cpy").write_text(CARD_CPY)
    back = await json_counterpart(nursery, lambda r: {"status": "NO"})
    sends = [
        ("front", req("pay", cvv=CVV * 2)),          # schema: the secret is too long
        ("front", req("pay", name=NAME * 2)),        # schema: the personal value is too long
        ("front", req("pay", pan=PAN + "22")),       # schema: the PAN does not match the pattern
        ("front", req("fix")),                       # reply encode: the personal value does not fit
        ("front", req("num")),                       # a function refuses the personal value
        ("front", req("date")),                      # a function refuses the PAN
        ("front", req("nope")),                      # no route takes it
        ("cb", ("PAY " + PAN[:15] + "X" + NAME).encode("cp037")),    # EBCDIC number with a letter in it
    ]
    ledger = tmp_path / "l.duckdb"
    replies = []
    async with running(compile_text(tmp_path, ROUTE), ledger, {"back": {"address": f"127.0.0.1:{back}"}}) as sb:
        for channel, payload in sends:
            c = await Client.open(sb.channel(channel).port)
            await c.send(payload)
            replies.append((await c.recv_json())[0])
            await c.aclose()
    kinds = [r["kind"] for r in replies]
    assert kinds == ["malformed"] * 3 + ["internal"] + ["rejected"] * 2 + ["unrouted", "malformed"], replies   # a function refusing a message field is the sender's (rejected), docs/language.md "What a failure is"
    for r in replies:
        assert_clear_of_values("an error reply", json.dumps(r))
    # the messages still say what is wrong, where
    details = [r["detail"] for r in replies]
    assert "field $.card.cvv" in details[0] and "'***' is too long" in details[0]
    assert "field $.holder" in details[1] and "'Z***' is too long" in details[1]
    assert "'411111********1122' does not match '^[0-9]{16}$'" in details[2]
    assert "field holder: 'Z***' is 13 characters, the field holds 5" in details[3]
    assert "round: 'Z***' is not a number" in details[4]
    assert "parse_date: '411111******1111' does not match '%Y%m%d'" in details[5]
    assert "byte 4, field pan: invalid DISPLAY number" in details[7]
    rows = read(ledger, "SELECT deal_type, reason, request FROM deals ORDER BY received_at")
    assert len(rows) == len(sends)
    for deal_type, reason, request in rows:
        assert_clear_of_values(f"the reason of a {deal_type} deal", reason)
        assert_clear_of_values(f"the request of a {deal_type} deal", request)
    dead = read(ledger, "SELECT reason, raw FROM dead_letters")
    assert len(dead) == len(sends)
    for reason, raw in dead:
        assert_clear_of_values("a dead letter's reason", reason)
        assert bytes(raw).startswith(b"enc:v1:k1:")          # kept, encrypted (docs/security.md)
    assert_clear_of_values("the log", caplog.text)
    # the request nobody could read is kept encrypted, and --reveal gives its bytes back
    (deal_id, stored), = read(ledger, "SELECT deal_id, request FROM deals WHERE route = '(malformed)' "
                                      "AND channel = 'cb'")
    assert fieldcrypt.reveal(json.loads(stored), keys, context=deal_id, root="request") == sends[-1][1].hex()


def test_a_decoder_error_on_a_classified_field_masks_the_bytes_it_quotes() -> None:
    raw = b"PAY 411111111111111XJane"
    exc = FormatError("expected integer digits, found '411111111111111X' (not '%Y%m%d')", offset=4, field="acct")
    text = safe_error_text(exc, {"acct": "pan"}, raw=raw)
    assert text == "byte 4, field acct: expected integer digits, found '411111******111X' (not '%Y%m%d')"
    assert safe_error_text(exc, {"other": "pan"}, raw=raw) == str(exc)          # not classified: as it was
    ebcdic = ("PAY " + PAN[:15] + "X").encode("cp037")
    hexed = " ".join(f"{b:02x}" for b in ebcdic[4:])
    exc = FormatError(f"invalid DISPLAY number {hexed!r} for PIC 9(16)", offset=4, field="card.pan")
    assert hexed not in safe_error_text(exc, {"card": "secret"}, raw=ebcdic)


def test_parse_date_does_not_quote_a_piece_of_its_text() -> None:
    with pytest.raises(ValueError) as info:
        f_parse_date(PAN, "%Y%m%d")
    assert str(info.value).endswith("the first 8 characters match it, 8 are left over")
    assert PAN[8:] not in str(info.value).replace(PAN, "")
