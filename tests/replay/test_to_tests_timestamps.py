"""--to-tests writes a timestamp the routes read from the clock as `now()`, in a test `at` that instant.

Until 2026-11-28 every exchange whose reply or call held a timestamp value (an ISO 20022 `CreDtTm`) was
skipped, "a timestamp value (the language has no timestamp literal)": the shipped remittance and claims
services, whose calls carry `CreDtTm = format_date(now(), "%Y-%m-%dT%H:%M:%S+00:00")`, got no test at all.
The test runs `at` the instant the routes read, so `now()` is that timestamp again; a route that writes it at
the whole second gets a test `at` that second.

Until the language had a timestamp literal (2026-11-28), a timestamp that was not of the clock (a partner's
time the reply copies, a zone-less time of a fixed-width request) skipped its exchange, "the language has no
timestamp literal"; it is now written as one (`2026-01-02T03:04:05Z`, `2026-11-25T10:00:00`) and the test
passes.

Until 2026-11-28 the test's clock was written quoted (`at "2026-11-25T10:00:00Z"`) and a date value as
`parse_date("20261126", "%Y%m%d")`: they are written as a hand-written test gives them, the bare timestamp
literal and the date literal (`2026-11-26`), and the tests pass."""
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
from engine.replay.totests import write_tests
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

# a desk's booking, fixed-width: its time has no zone (a timestamp that is not of the clock, which the
# request must give as a timestamp: the format takes no text there)
format Booking = fixed {
    ref     string(4)
    booked  date(14, "%Y%m%d%H%M%S")
    value   date(8, "%Y%m%d")
}
format Booked = json

channel desk = http listen {
    address = "127.0.0.1:0"
    path    = "/bookings"
}

route book {
    receive from desk as Booking
    deal BOOKING { ref = msg.ref  amount = 1  currency = "EUR" }
    reply Booked {
        ref   = msg.ref
        day   = format_date(msg.booked, "%Y-%m-%d")
        late  = msg.booked > 2026-11-25T18:00:00
        stamp = format_date(msg.booked + 90s, "%H:%M:%S")
        next  = format_date(msg.value + 1d, "%Y-%m-%d")
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
                        url = f"http://127.0.0.1:{sb.channel('desk').port}/bookings"
                        r = await c.post(url, content=b"B1  2026112510000020261126",
                                         headers={"content-type": "text/plain"})
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
    # T4's CreDtTm is the partner's time, not the clock's: a timestamp literal; B1's booking time has no zone
    # and the fixed-width request takes no text for it: a zone-less literal
    assert res.written == 5 and not res.skipped, (res.skipped, text)
    assert "CreDtTm = 2026-01-02T03:04:05Z" in text, text
    assert "given desk sends Booking {" in text and "booked = 2026-11-25T10:00:00\n" in text, text
    assert text.count("CreDtTm = now()") == 2, text
    assert "CreDtTm = add_days(now(), 1)" in text, text
    # T2 wrote the second of the instant it read: its test runs at that whole second
    t2 = text.split('"recorded exchange 2 (ref T2)"')[1].split("{", 1)[0]
    assert t2.startswith(' at 2') and "." not in t2 and '"' not in t2, t2
    # every test's clock is the bare timestamp literal, as a hand-written test gives it; a date is a date literal
    assert text.count(" at ") == 5 and ' at "' not in text, text
    assert "value = 2026-11-26\n" in text and "parse_date" not in text, text
    ran = run_paths([res.path], registry)
    assert not ran.broken and len(ran.outcomes) == 5, ran
    assert all(o.passed for o in ran.outcomes), [f for o in ran.outcomes for f in o.failures]
