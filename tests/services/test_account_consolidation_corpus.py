"""A real bank's camt.053 (corpus: genkgo camt053 v2 minimal) through the account consolidation route.

Its account NL26VAYB8060476890 is in the consolidation table, but its closing
booked balance (CLBD) is in SEK while the account is EUR: the route must
reject it with code 15, record it under the statement id, and not post it."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import orjson
import pytest
import trio

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.sim.services.account_consolidation import SERVICES
from engine.sim.services.catalog import route_files
from engine.sim.services.harness import running_services
from engine.sim.services.registry import services_registry
from formats.framing import make_framer

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
CAMT = CORPUS / "iso20022" / "genkgo_camt053_v2_minimal" / "input" / "camt053.v2.minimal.xml"


async def _send(tmp_path: Path, document: Path) -> tuple[dict, int, Path]:
    """``document`` sent to the account consolidation service's camt.053 channel, in an engine of its own:
    (its ack, the requests the mainframe simulator got, the ledger)."""
    if not document.is_file():      # a clone outside the workspace has no corpus (as tests/formats/conftest.py)
        pytest.skip(f"conformance corpus not found at {CORPUS.resolve()}")
    registry = services_registry()
    program = compile_paths(route_files("account_consolidation"), registry).program
    assert program is not None
    ledger_path = tmp_path / "l.duckdb"
    async with open_ledger(ledger_path, audit_key=None) as ledger:
        async with running_services(program, registry, ledger, SERVICES) as rig:
            stream = await trio.open_tcp_stream("127.0.0.1", rig.port("ac_camt"))
            framer = make_framer("length4")
            async with stream:
                await stream.send_all(framer.frame(document.read_bytes()))
                replies: list[bytes] = []
                with trio.fail_after(30):
                    while not replies:
                        replies = framer.feed(await stream.receive_some(65536))
            host = rig.sims["ac_mainframe"]
    return orjson.loads(replies[0]), host.requests, ledger_path


def _rows(ledger_path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


async def test_corpus_camt053_with_a_foreign_currency_closing_balance_is_rejected(tmp_path):
    ack, host_requests, ledger_path = await _send(tmp_path, CAMT)
    assert ack["code"] == "15", ack
    assert host_requests == 0
    (row,) = _rows(ledger_path, "SELECT reference, status, party, amount, currency FROM deals")
    # the party is the account's bank, not the account (classified personal: the ledger keeps a party in clear)
    assert row[:3] == ("253EURNL26VAYB8060476890", "rejected", "VAYBNL2A")
    assert str(row[3]) == "27.0000" and row[4] == "SEK"


MULTI = CORPUS / "iso20022" / "genkgo_camt053_v2_multi_statement" / "input" / "camt053.v2.multi.statement.xml"


async def test_corpus_camt053_with_two_statements_is_rejected_not_half_posted(tmp_path):
    """genkgo's multi-statement camt.053: statement 253 (closing 27.00 EUR) then 254 (closing 20.00 EUR)
    of the same account. The route posts one closing balance per message: it must refuse the message
    (30, saying why) rather than post 253's 27.00 and answer 00 while 254's 20.00 is dropped."""
    ack, host_requests, ledger_path = await _send(tmp_path, MULTI)
    assert ack["code"] == "30", ack
    assert "several statements" in ack["text"]
    assert host_requests == 0
    assert _rows(ledger_path, "SELECT reference, status FROM deals") == [("253EURNL26VAYB8060476890", "rejected")]


async def _drop(tmp_path: Path, name: str, data: bytes, *more: tuple[str, bytes],
                channel: str = "ac_camt_files") -> tuple[int, Path, Path]:
    """``data`` (then each of ``more``: (name, bytes)) dropped as a file into the account consolidation service's
    camt.053 file channel (record = "camt053"), in one engine of its own, each once the channel has archived
    the one before: (the requests the mainframe simulator got, the ledger, the channel's folder)."""
    registry = services_registry()
    program = compile_paths(route_files("account_consolidation"), registry).program
    assert program is not None
    ledger_path = tmp_path / "l.duckdb"
    async with open_ledger(ledger_path, audit_key=None) as ledger:
        async with running_services(program, registry, ledger, SERVICES, work_dir=tmp_path / "work") as rig:
            inbox = rig.dirs[channel]
            for file, content in ((name, data), *more):
                (inbox / f".{file}").write_bytes(content)
                (inbox / f".{file}").rename(inbox / file)        # complete once it has its final name
                with trio.fail_after(60):
                    while not ((inbox / "done" / file).exists() or (inbox / "error" / file).exists()):
                        await trio.sleep(0.05)
            host = rig.sims["ac_mainframe"]
            return host.requests, ledger_path, inbox


async def test_corpus_camt053_file_with_two_statements_posts_each_on_its_own(tmp_path):
    """The same multi-statement camt.053 as a file (host-to-host): the channel hands each <Stmt> to the route
    as its own statement: 253 (18.15 + 8.85 = 27.00) and 254 (27.00 - 7.00 = 20.00) both add up, each is a
    committed deal and a posting; genkgo's expected JSON gives these amounts (closing 2700 and 2000 minor units)."""
    if not MULTI.is_file():
        pytest.skip(f"conformance corpus not found at {CORPUS.resolve()}")
    requests, ledger_path, inbox = await _drop(tmp_path, "stmts.xml", MULTI.read_bytes())
    assert (inbox / "done" / "stmts.xml").exists()
    assert requests == 2
    rows = _rows(ledger_path, "SELECT reference, status, amount, currency FROM deals ORDER BY reference")
    assert [(r[0], r[1], str(r[2]), r[3]) for r in rows] == [
        ("253EURNL26VAYB8060476890", "committed", "27.0000", "EUR"),
        ("254EURNL26VAYB8060476890", "committed", "20.0000", "EUR")]


async def test_a_statement_of_a_file_that_does_not_add_up_is_refused_alone(tmp_path):
    """254's closing balance changed from 20.00 to 21.00: 253 is posted, 254 refused (30) with a reason naming
    it, the amounts and the byte offset of its statement; the file goes to error/ saying so."""
    if not MULTI.is_file():
        pytest.skip(f"conformance corpus not found at {CORPUS.resolve()}")
    data = MULTI.read_bytes()
    assert data.count(b'<Amt Ccy="EUR">20.00</Amt>') == 1
    bad = data.replace(b'<Amt Ccy="EUR">20.00</Amt>', b'<Amt Ccy="EUR">21.00</Amt>')
    requests, ledger_path, inbox = await _drop(tmp_path, "bad.xml", bad)
    assert requests == 1
    rows = _rows(ledger_path, "SELECT reference, status, response_code, reason FROM deals ORDER BY reference")
    assert [r[:3] for r in rows] == [("253EURNL26VAYB8060476890", "committed", None),     # a file gets no reply
                                     ("254EURNL26VAYB8060476890", "rejected", "30")]
    # the statement's Id holds the account (personal): the reason masks it, as every classified value
    text = ("opening balance OPBD 27.00 EUR + 1 booked entry (-7.00) = 20.00 EUR, but the closing balance CLBD is "
            "21.00 EUR (difference +1.00)")
    assert "statement does not add up: 254EURN***: " + text in rows[1][3], rows[1][3]
    assert "NL26VAYB8060476890" not in rows[1][3]
    reason = (inbox / "error" / "bad.xml.reason.txt").read_text()
    assert "1 problem(s) in 2 record(s)" in reason and text in reason and "NL26VAYB8060476890" not in reason
    assert f"record 2, byte offset {bad.index(b'<Stmt>', bad.index(b'</Stmt>')) - bad.index(b'<Stmt>')}" in reason


async def test_a_statement_in_a_second_file_is_a_duplicate_posted_once(tmp_path):
    """Deal key (member/Stmt Id/closing date): the bank sends the file again under a new message id (other
    bytes, so the channel's run-once check does not catch it): both statements are recorded as duplicates
    and the mainframe gets no second posting. A record has no answer to repeat, so each repeat is told as
    94 and the file goes to error/ naming them (as standing orders' batch files, tests/services/test_deal_keys.py)."""
    if not MULTI.is_file():
        pytest.skip(f"conformance corpus not found at {CORPUS.resolve()}")
    data = MULTI.read_bytes()
    again = data.replace(b"CAMT053RIB000000000001", b"CAMT053RIB000000000002")
    assert again != data
    requests, ledger_path, inbox = await _drop(tmp_path, "day1.xml", data, ("day1-resent.xml", again))
    assert requests == 2
    assert (inbox / "done" / "day1.xml").exists()
    reason = (inbox / "error" / "day1-resent.xml.reason.txt").read_text()
    assert "2 problem(s) in 2 record(s)" in reason and reason.count("failed (duplicate, code 94)") == 2, reason
    assert _rows(ledger_path, "SELECT reference, status, response_code FROM deals ORDER BY status, reference") == [
        ("253EURNL26VAYB8060476890", "committed", None), ("254EURNL26VAYB8060476890", "committed", None),
        ("253EURNL26VAYB8060476890", "duplicate", "94"), ("254EURNL26VAYB8060476890", "duplicate", "94")]


async def test_an_rje_file_of_mt940_statements_posts_each_on_its_own(tmp_path):
    """Three MT940 from the FIN gateway in one RJE file ($-separated; the simulator's, which add up): each is a
    statement of its own; the second's 62F is then put 0.01 off: it alone is refused, with the amounts."""
    import random

    from engine.sim.services.account_consolidation import make_mt940
    from formats.swift import SwiftCodec
    codec = SwiftCodec("940")
    rng = random.Random(7)
    reqs = [make_mt940("good", n, rng, run="T") for n in (1, 2, 3)]
    closing = reqs[1].values["block4"][-1]["value"]
    closing["amount"] += Decimal("0.01") if closing["mark"] == "C" else Decimal("-0.01")
    data = b"$".join(codec.encode(r.values) for r in reqs)
    requests, ledger_path, inbox = await _drop(tmp_path, "MT940-1.rje", data, channel="ac_swift_files")
    assert requests == 2
    rows = _rows(ledger_path, "SELECT reference, status, response_code, reason FROM deals ORDER BY reference")
    assert [(r[0], r[1]) for r in rows] == [(reqs[0].ref, "committed"), (reqs[1].ref, "rejected"),
                                            (reqs[2].ref, "committed")]
    assert f"statement does not add up: {reqs[1].ref}: closing balance :62F:" in rows[1][3]
    assert "(difference +0.01)" in rows[1][3]
    reason = (inbox / "error" / "MT940-1.rje.reason.txt").read_text()
    assert "1 problem(s) in 3 record(s)" in reason and f"record 2, byte offset {data.index(b'$') + 1}" in reason
