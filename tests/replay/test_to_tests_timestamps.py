"""--to-tests writes a timestamp the routes read from the clock as `now()`, in a test `at` that instant.

Until 2026-11-28 every exchange whose reply or call held a timestamp value (an ISO 20022 `CreDtTm`) was
skipped, "a timestamp value (the language has no timestamp literal)": the shipped remittance and claims
services, whose calls carry `CreDtTm = format_date(now(), "%Y-%m-%dT%H:%M:%S+00:00")`, got no test at all.
The test runs `at` the instant the routes read, so `now()` is that timestamp again; a route that writes it at
the whole second gets a test `at` that second.  A timestamp that is not of the clock is still skipped, with
the reason (the language has no timestamp literal)."""
from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import trio

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.registry import default_registry
from engine.replay.capture import Capture
from engine.replay.guide import FormatGuide
from engine.replay.profile import Profile
from engine.replay.tap import recording
from engine.replay.totests import NO_TIMESTAMP, write_tests
from engine.routetest.runner import run_paths
from engine.runtime import Switchboard
from engine.runtime.binder import Binder

REPO = Path(__file__).resolve().parents[2]

ROUTE = '''
format Pay = json
format P2  = iso20022 pacs.002.001.11 xsd "pacs.002.001.11.xsd"

channel api = http listen {
    address = "127.0.0.1:0"
    path    = "/payments"
}

route pay {
    receive from api as Pay
    let when = if msg.kind == "exact" then now()
               else if msg.kind == "second" then format_date(now(), "%Y-%m-%dT%H:%M:%S+00:00")
               else if msg.kind == "tomorrow" then add_days(now(), 1)
               else msg.sent
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    reply P2 {
        message                          = "pacs.002.001.11"
        FIToFIPmtStsRpt.GrpHdr.MsgId     = msg.ref
        FIToFIPmtStsRpt.GrpHdr.CreDtTm   = when
    }
}
'''

SENT = [("exact", "T1"), ("second", "T2"), ("tomorrow", "T3"), ("partner", "T4")]


def record(tmp: Path) -> tuple[Path, Path]:
    conf = tmp / "conf"
    conf.mkdir()
    (conf / "pay.route").write_text(ROUTE)
    shutil.copy(REPO / "routes" / "remittance" / "xsd" / "pacs.002.001.11.xsd", conf)
    registry = default_registry()
    res = compile_paths([conf / "pay.route"], registry)
    assert res.program is not None, res.diagnostics
    program = res.program
    capture = tmp / "ts.duckdb"
    with recording(program, registry, capture) as (rreg, _rec):
        async def main() -> None:
            async with open_ledger(tmp / "ledger.duckdb", audit_key=None, keyring=None) as ledger:
                sb = Switchboard(program, rreg, ledger=ledger)
                async with trio.open_nursery() as nursery:
                    await nursery.start(sb.run)
                    url = f"http://127.0.0.1:{sb.channel('api').port}/payments"
                    async with httpx.AsyncClient() as c:
                        for kind, ref in SENT:
                            r = await c.post(url, json={"ref": ref, "amount": 5, "kind": kind,
                                                        "sent": "2026-01-02T03:04:05+00:00"})
                            assert r.status_code == 200, r.text
                    sb.drain()

        trio.run(main)
    return capture, conf


def test_clock_timestamps_are_written_as_now_and_the_tests_pass(tmp_path: Path) -> None:
    capture, conf = record(tmp_path)
    registry = default_registry()
    program = compile_paths([conf / "pay.route"], registry).program
    res = write_tests(Capture(capture), program, FormatGuide(program, Binder(program, registry).codec),
                      tmp_path / "out", [conf / "pay.route"], Profile(), mask=False)
    text = res.path.read_text()
    # T1, T2, T3 are written; T4's CreDtTm is the partner's time, not the clock's: skipped, with the reason
    assert res.written == 3, (res.skipped, text)
    assert list(res.skipped) == [NO_TIMESTAMP], res.skipped
    assert "(ref T4)" not in text
    assert text.count("CreDtTm = now()") == 2, text
    assert "CreDtTm = add_days(now(), 1)" in text, text
    # T2 wrote the second of the instant it read: its test runs at that whole second
    t2 = text.split('"recorded exchange 2 (ref T2)"')[1].split("{", 1)[0]
    assert t2.startswith(' at "') and "." not in t2, t2
    ran = run_paths([res.path], registry)
    assert not ran.broken and len(ran.outcomes) == 3, ran
    assert all(o.passed for o in ran.outcomes), [f for o in ran.outcomes for f in o.failures]
