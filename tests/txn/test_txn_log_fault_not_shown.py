"""A request failed because the transaction log cannot be written (its write failed, or past the bound new
work is refused up front): the client is told the code and a short text, never the log's path nor the OS
error; the full reason stays in the deal row and the engine's log (engine/txn/manager.py ``_log_fault``,
engine/channels/http_listen.py problem details; docs/transactions.md).

Real engine in process, a real JSON counterpart and an HTTP client on 127.0.0.1 port 0, a real DuckDB ledger;
the log is a real ``TxnLog`` whose write descriptor is swapped for a read-only one (``txnkit.Unwritable``:
EBADF, as a full disk gives ENOSPC)."""
from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from engine.txn.manager import manager_for
from txnkit import Client, Counterpart, Unwritable, compile_text, deals, json_counterpart, running

HTTP_ROUTE = """
format J = json
channel api = http listen { address = "127.0.0.1:0"  path = "/transfers" }
channel debit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 2s }
route transfer {
    receive from api as J
    deal TRANSFER { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref }
    call d = debit as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect d.status == "OK"
    reply J { ref = msg.ref  code = "00" }
}
"""

TCP_ROUTE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel debit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 2s }
route transfer {
    receive from front as J
    deal TRANSFER { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref }
    call d = debit as J reply J { op = "post"  ref = msg.ref  amount = msg.amount } expect d.status == "OK"
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code  text = error.text }
}
"""


def _no_server_detail(text: str, ledger: Path) -> None:
    for secret in (str(ledger), str(ledger.parent), ".txn", "EBADF", "Errno", "entries wait"):
        assert secret not in text, (secret, text)


async def test_an_http_client_gets_a_short_problem_without_the_logs_path(nursery, tmp_path: Path) -> None:
    debit = Counterpart()
    port = await json_counterpart(nursery, debit.answer)
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, HTTP_ROUTE % port), ledger) as sb:
        mgr = manager_for(sb.ledger)
        broken = Unwritable(mgr.log)
        try:
            url = f"http://127.0.0.1:{sb.channel('api').port}/transfers"
            async with httpx.AsyncClient() as c:
                failed = await c.post(url, json={"ref": "H1", "amount": 5})       # the write fails
                mgr._lazy.append({"t": "recorded", "ids": ["x"], "keys": []})   # an entry waits ...
                mgr.later_max = 1                                              # ... at the bound
                mgr.monotonic = lambda: mgr.failing[0]                         # within the second after
                refused = await c.post(url, json={"ref": "H2", "amount": 5})   # refused up front
        finally:
            broken.restore()
    for r in (failed, refused):
        assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json", r.text
        p = r.json()
        assert (p["kind"], p["code"], p["deal_status"]) == ("internal", "96", "failed"), p
        assert p["detail"] == "transaction log unavailable", p
        _no_server_detail(r.text, ledger)
    assert sum(v for (op, _), v in debit.counts.items() if op == "post") == 0      # nothing sent
    by = {d["reference"]: d["reason"] for d in deals(ledger)}
    assert str(ledger) + ".txn" in by["H1"] and "EBADF" in by["H1"] and "request not sent to d" in by["H1"]
    assert "entries wait to be written to the transaction log" in by["H2"] and "EBADF" in by["H2"], by["H2"]


async def test_error_text_in_a_reply_is_short(nursery, tmp_path: Path) -> None:
    debit = Counterpart()
    port = await json_counterpart(nursery, debit.answer)
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, TCP_ROUTE % port), ledger) as sb:
        mgr = manager_for(sb.ledger)
        broken = Unwritable(mgr.log)
        try:
            c = await Client.open(sb.channel("front").port)
            await c.send(b'{"ref": "T1", "amount": 5}')
            (raw,) = await c.recv(1)
            await c.aclose()
        finally:
            broken.restore()
    assert orjson.loads(raw) == {"ref": "T1", "code": "96", "text": "transaction log unavailable"}
    _no_server_detail(raw.decode(), ledger)
