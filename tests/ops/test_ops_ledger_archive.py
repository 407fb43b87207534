"""A repeat of a deal archived by ``bsp ledger archive`` (docs/ledger.md "Archiving") is still refused as a
duplicate, never run again: a real engine (LiveEngine) with a keyed route, a real counterpart on loopback,
a real DuckDB ledger and transaction log; the engine stopped, the ledger archived through the CLI, the key
store's retention passed (the log compacted as it compacts itself on open, its clock 40 days on), the
engine started again and the request repeated."""
from __future__ import annotations

import base64
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
import trio
import typer
from typer.testing import CliRunner

from engine.commands import audit as audit_cmd, ledger as ledger_cmd
from engine.txn.log import TxnLog, log_path
from formats.framing import LengthPrefixFramer
from opskit import json_counterpart, live, rows

KEY = bytes(range(32))
DAY = 86400.0

ROUTE = '''
format J = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel debit = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 2s }
route transfer {
    receive from front as J
    deal TRANSFER { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref }
    call d = debit as J reply J { ref = msg.ref  amount = msg.amount } expect d.status == "OK"
    reply J { ref = msg.ref  code = "00" }
    on error reply J { ref = msg.ref  code = error.code }
}
'''


async def ask(port: int, ref: str) -> dict:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    await stream.send_all(tx.frame(b'{"ref":"%s","amount":10.00}' % ref.encode()))
    got: list[bytes] = []
    with trio.fail_after(10):
        while not got:
            data = await stream.receive_some(65536)
            assert data, "the engine closed the connection without an answer"
            got.extend(rx.feed(data))
    await stream.aclose()
    return orjson.loads(got[0])


def cli(*args: str):
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    ledger_cmd.register(app)
    audit_cmd.register(app)
    return CliRunner().invoke(app, list(args))


async def test_a_repeat_of_an_archived_deal_is_refused_as_a_duplicate(nursery, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())
    seen: Counter = Counter()

    def answer(req: dict) -> dict:
        seen[req["ref"]] += 1
        return {"status": "OK", "ref": req["ref"]}

    back = await json_counterpart(nursery, answer)
    route = tmp_path / "transfer.route"
    route.write_text(ROUTE % back)
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "archive.duckdb"
    async with live([route], led, audit_key=KEY) as eng:
        port = eng.channels["front"].port
        assert await ask(port, "A1") == {"ref": "A1", "code": "00"}
    assert seen["A1"] == 1
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    res = cli("ledger", "archive", "--before", tomorrow, "--out", str(arc), "--ledger", str(led), "--yes")
    assert res.exit_code == 0, res.output
    assert rows(led, "SELECT count(*) FROM deals") == [(0,)]
    assert rows(arc, "SELECT status FROM deals WHERE reference = 'A1'") == [("committed",)]
    # the key store's retention (35 days) has passed: the log drops the key and looks past keys up in the ledger
    TxnLog(log_path(led), retention=35 * DAY, clock=lambda: time.time() + 40 * DAY).close()

    async with live([route], led, audit_key=KEY) as eng:
        port = eng.channels["front"].port
        assert await ask(port, "A1") == {"ref": "A1", "code": "94"}      # a repeat: not run again
        assert await ask(port, "B1") == {"ref": "B1", "code": "00"}      # a new key runs
    assert seen == {"A1": 1, "B1": 1}
    got = rows(led, "SELECT status, reason FROM deals WHERE reference = 'A1'")
    assert len(got) == 1 and got[0][0] == "duplicate" and "past the key store's retention" in got[0][1], got
    res = cli("audit", "verify", "--ledger", str(led), "--archive", str(arc))
    assert res.exit_code == 0, res.output
