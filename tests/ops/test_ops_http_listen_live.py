"""An http listen channel under `bsp run` (the live engine, whose channels are handed a forwarding handler
that follows reloads): a rejected deal is answered 422 and a failed one 502 as under the plain runtime,
and a request refused for its signature is recorded as an UNAUTHENTICATED deal with a dead letter
(they used to be answered as if the route had served them, and refusals were neither recorded nor kept).

Real engine, real sockets on 127.0.0.1 (port 0), a real DuckDB ledger."""
from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import httpx
import pytest

from engine.ledger_query import query_dead_letters
from opskit import live, rows

SECRET = "live-partner-secret-91"

ROUTE = '''
format Pay = json
format Ack = json

channel api = http listen {
    address    = "127.0.0.1:0"
    path       = "/payments/{id}"
    signature_header  = "X-Signature"
    signature_key_env = "BSP_TEST_LIVE_PARTNER_KEY"
}
channel back = tcp connect { address = "127.0.0.1:1"  framing = length2  timeout = 200ms }

route pay {
    receive from api as Pay when msg.ref != "F1"
    validate {
        msg.amount > 0   else reject "13" "amount must be positive"
    }
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    reply Ack { status = "OK"  ref = msg.ref }
}

route forward {
    receive from api as Pay when msg.ref == "F1"
    deal FORWARD { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    call sent = back as Pay { ref = msg.ref }
    reply Ack { status = "OK"  ref = msg.ref }
}
'''


@pytest.fixture(autouse=True)
def partner_key(monkeypatch) -> None:
    monkeypatch.setenv("BSP_TEST_LIVE_PARTNER_KEY", SECRET)


def signed(body: bytes) -> dict[str, str]:
    return {"content-type": "application/json", "X-Signature": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}


async def test_http_listen_under_bsp_run_answers_each_outcome_and_records_refusals(tmp_path: Path) -> None:
    (tmp_path / "api.route").write_text(ROUTE)
    ledger = tmp_path / "l.duckdb"
    async with live([tmp_path / "api.route"], ledger) as eng:
        url = f"http://127.0.0.1:{eng.current.channels['api'].port}/payments/1"
        async with httpx.AsyncClient(timeout=10) as c:
            good = b'{"ref": "G1", "amount": 10}'
            r = await c.post(url, content=good, headers=signed(good))
            assert r.status_code == 200 and r.json() == {"status": "OK", "ref": "G1"}, r.text
            bad = b'{"ref": "R1", "amount": -1}'
            r = await c.post(url, content=bad, headers=signed(bad))
            assert r.status_code == 422, (r.status_code, r.text)
            assert r.json()["code"] == "13" and r.json()["deal_status"] == "rejected"
            unreachable = b'{"ref": "F1", "amount": 5}'
            r = await c.post(url, content=unreachable, headers=signed(unreachable))
            assert r.status_code == 502, (r.status_code, r.text)
            assert r.json()["deal_status"] == "failed"
            forged = b'{"ref": "U1", "amount": 99}'
            r = await c.post(url, content=forged, headers={**signed(b"other"), "content-type": "application/json"})
            assert r.status_code == 401, (r.status_code, r.text)
            assert r.json()["kind"] == "unauthenticated" and r.json()["deal_status"] == "rejected"
            form = b"ref=M1&amount=\xff"           # signed, but not a form: a malformed deal, recorded
            r = await c.post(url, content=form, headers={**signed(form), "content-type": "application/x-www-form-urlencoded"})
            assert r.status_code == 400 and r.json()["kind"] == "malformed", (r.status_code, r.text)
    got = rows(ledger, "SELECT deal_type, status, response_code, reference FROM deals ORDER BY received_at")
    assert got == [("PAYMENT", "committed", None, "G1"), ("pay", "rejected", "13", None),
                   ("FORWARD", "failed", "91", "F1"), ("UNAUTHENTICATED", "rejected", "63", None),
                   ("MALFORMED", "rejected", "30", None)], got
    letters = query_dead_letters(ledger, with_raw=True)
    assert sorted((bytes(x["raw"]), x["error_kind"]) for x in letters) == sorted(
        [(bad, "rejected"), (unreachable, "unreachable"), (forged, "unauthenticated"), (form, "malformed")]), letters
