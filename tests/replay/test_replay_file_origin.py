"""A `file watch` route's records replay with the place they came from: the capture stores each record's
origin with its request (frames.origin), a replay gives it back as `file.*`, so the shipped standing orders
route (whose result lines name file.name and file.line) replays against the same configuration with no
difference; a capture of before the column still replays (file.* null, as then); `--to-tests` writes the
place as the test's `file { ... }` clause, and the written tests pass."""
from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
import trio

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.registry import default_registry
from engine.replay.capture import Capture, CaptureError
from engine.replay.guide import FormatGuide
from engine.replay.profile import Profile
from engine.replay.session import replay_file
from engine.replay.tap import recording
from engine.replay.totests import write_tests
from engine.routetest.runner import run_paths
from engine.runtime import Switchboard
from engine.runtime.binder import Binder

REPO = Path(__file__).resolve().parents[2]
ROUTE = REPO / "routes" / "standing_orders" / "standing_orders.route"
HEADER = "utility_id,mandate_ref,debtor_name,debtor_iban,amount,currency,due_date,bill_ref"


def _batch() -> bytes:
    due = (date.today() + timedelta(days=30)).isoformat()
    # refused before the mainframe is called (no mainframe needed); each still writes a result line
    # naming its file and line through the route's `on error`
    lines = [HEADER,
             f"UT999999,M-1,A PAYER,DE89370400440532013000,12.50,EUR,{due},B-1",      # unknown utility
             f"UT000001,M-2,B PAYER,DE00370400440532013000,20.00,EUR,{due},B-2",      # IBAN check digits
             f"UT000002,M-3,C PAYER,DE89370400440532013000,30.00,USD,{due},B-3"]      # currency
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("so")
    inbox, outbox = tmp / "inbox", tmp / "outbox"
    inbox.mkdir()
    outbox.mkdir()
    registry = default_registry()
    res = compile_paths([ROUTE], registry)
    assert res.program is not None, [str(d.message) for d in res.diagnostics]
    program = res.program
    path = tmp / "so.duckdb"
    with recording(program, registry, path) as (rreg, _rec):
        async def main() -> None:
            async with open_ledger(tmp / "ledger.duckdb", audit_key=None, keyring=None) as ledger:
                sb = Switchboard(program, rreg, ledger=ledger, overrides={
                    "so_batch_in": {"dir": str(inbox)}, "so_result_out": {"dir": str(outbox)},
                    "so_mainframe": {"address": "127.0.0.1:1"}})
                async with trio.open_nursery() as nursery:
                    await nursery.start(sb.run)
                    (inbox / "SO-1.csv").write_bytes(_batch())
                    with trio.fail_after(20):
                        while not any((inbox / d / "SO-1.csv").exists() for d in ("done", "error")):
                            await trio.sleep(0.05)
                    sb.drain()

        trio.run(main)
    results = "".join(p.read_text() for p in outbox.iterdir() if p.is_file())
    assert results.count("SO-1.csv") == 3, results          # the route wrote file.name into each line
    return path


def test_the_capture_stores_each_records_origin(capture: Path) -> None:
    con = duckdb.connect(str(capture), read_only=True)
    try:
        rows = con.execute("SELECT origin FROM frames WHERE role = 'inbound' AND direction = 'in' "
                           "ORDER BY t_ms").fetchall()
        others = con.execute("SELECT count(*) FROM frames WHERE origin IS NOT NULL AND "
                             "NOT (role = 'inbound' AND direction = 'in')").fetchone()[0]
    finally:
        con.close()
    assert len(rows) == 3 and others == 0
    assert all('"name": "SO-1.csv"' in r[0] for r in rows), rows


def test_a_file_watch_capture_replays_with_no_difference(capture: Path) -> None:
    report = replay_file(capture, [ROUTE], default_registry())
    s = report.summary()
    assert s["exchanges"] == 3 and s["identical"] == 3, report.diff.unexpected
    assert s["unexpected_differences"] == 0


def test_a_capture_without_the_origin_column_still_replays(capture: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.duckdb"
    shutil.copy(capture, old)
    con = duckdb.connect(str(old))
    try:
        con.execute("ALTER TABLE frames DROP COLUMN origin")
    finally:
        con.close()
    assert all(f.origin is None for f in Capture(old).frames)
    report = replay_file(old, [ROUTE], default_registry())
    s = report.summary()
    # replayed as before the column: every exchange, with file.* null in the result lines
    assert s["exchanges"] == 3 and s["identical"] == 0
    assert {d.field for d in report.diff.unexpected} >= {"source_file", "source_line"}


def test_a_damaged_origin_is_told_with_the_frame(capture: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.duckdb"
    shutil.copy(capture, bad)
    con = duckdb.connect(str(bad))
    try:
        con.execute("UPDATE frames SET origin = '{\"name\": 7}' WHERE origin IS NOT NULL")
    finally:
        con.close()
    with pytest.raises(CaptureError, match=r"bad\.duckdb: frame \d+ \(channel so_batch_in\), column frames\.origin: .*name = 7"):
        Capture(bad)


def test_to_tests_writes_the_file_clause_and_the_tests_pass(capture: Path, tmp_path: Path) -> None:
    registry = default_registry()
    program = compile_paths([ROUTE], registry).program
    out = tmp_path / "gen"
    res = write_tests(Capture(capture), program, FormatGuide(program, Binder(program, registry).codec), out,
                      [ROUTE], Profile(), mask=False)      # as recorded (masked: test_to_tests_stand_ins.py)
    assert res.written == 3, res.skipped
    text = res.path.read_text()
    for line in (2, 3, 4):
        assert (f'file {{ name = "SO-1.csv"  line = {line}  record = {line}  offset = ' in text), text
    ran = run_paths([res.path], registry)
    assert not ran.broken, [d.message for b in ran.broken for d in b.diagnostics]
    assert len(ran.outcomes) == 3 and all(o.passed for o in ran.outcomes), \
        [f for o in ran.outcomes for f in o.failures]


def test_a_header_records_fields_are_stored_with_their_types() -> None:
    """file.header (a `header = FORMAT` channel): amounts and dates go into the capture's JSON and come back
    as Decimal and date (a plain json.dumps of the origin failed on them: the tap could not store it)."""
    import datetime as dt
    from decimal import Decimal

    from engine.channels.file_origin import RecordOrigin
    from engine.replay.origin import dump, load

    header = {"company": "ACME", "value_date": dt.date(2026, 11, 30), "count": 2, "total": Decimal("4.75")}
    origin = RecordOrigin("PAY.csv", 2, 21, 2, 2, header=header)
    back = load(dump(origin))
    assert back == origin and back.header == header and isinstance(back.header["total"], Decimal)
    assert "header" not in dump(RecordOrigin("PAY.csv", 2, 21, 2, 2))       # as before, without one


def test_to_tests_writes_the_header_fields_one_by_one() -> None:
    import datetime as dt
    from decimal import Decimal

    from engine.channels.file_origin import RecordOrigin
    from engine.replay.origin import dump
    from engine.replay.totests import file_clause

    origin = RecordOrigin("PAY.csv", 2, 21, 2, 2, header={"company": "ACME", "value_date": dt.date(2026, 11, 30),
                                                          "total": Decimal("4.75")})
    assert file_clause(dump(origin)) == (
        ' file { name = "PAY.csv"  line = 2  record = 2  offset = 21  records = 2  header.company = "ACME"  '
        'header.total = 4.75  header.value_date = 2026-11-30 }')
