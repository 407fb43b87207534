"""The statement checks read only statements: ``bsp reconcile --type mt940`` reads MT940, MT942 and MT950 (an
MT950 FIN message reconciled end to end, its statement checked) and refuses the corpus's MT103, MT101 and
pain.001 files naming the file, line, byte, what they are and what is read; ``--type camt053`` says which type
reads a SWIFT or CSV file; ``bsp report statement-continuity`` lists the ledger's statements, not its MT103
deals; the ``continuity`` step refuses an MT103 saying what it is.  Real corpus files, real DuckDB ledgers."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import trio
from typer.testing import CliRunner

from engine.cli import app
from engine.deal import DealEvent, DealRecord
from engine.ledger import open_ledger
from engine.reconcile import load_statement, reconcile_file
from engine.reports import ReportError
from engine.steps.continuity import head
from formats.swift import SwiftCodec
from tests.formats.test_swift_statement_kind import MT950

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
MT103 = CORPUS / "swift" / "prowide_mt103_rje_batches" / "input" / "MT103-out-ack.rje"
MT101 = CORPUS / "swift" / "prowide_mt101_fin" / "input" / "MT101.fin"
PAIN001 = CORPUS / "iso20022" / "sepa_king_pain_001_001_03" / "input" / "pain.001.001.03.xml"
ING = CORPUS / "swift" / "mt940_jejik_ing" / "input" / "ing.sta"
READ = "expected an MT940 (customer statement), MT942 (interim transaction report) or MT950 (statement message)"


@pytest.fixture(autouse=True)
def _corpus() -> None:
    if not MT103.is_file():
        pytest.skip(f"conformance corpus not found at {CORPUS.resolve()}")


@pytest.mark.parametrize("path, line, byte, found", [
    (MT103, 1, 29, "an MT103 (Single Customer Credit Transfer) is no bank statement (its block 2 says 103"),
    (MT101, 1, 29, "an MT101 (Request for Transfer) is no bank statement (its block 2 says 101"),
    (PAIN001, 3, 158, "no bank statement here: found an XML document (ISO 20022 pain.001.001.03)"),
])
def test_mt940_type_refuses_what_is_no_statement_saying_what_it_is(path: Path, line: int, byte: int,
                                                                    found: str) -> None:
    """Before, the MT103 batch and the MT101 were read as MT940 statements and refused as 'the MT940 file has
    no :61: statement lines', the pain.001 as 'no MT940/MT942 fields found'."""
    with pytest.raises(ReportError) as e:
        load_statement(path, "mt940")
    text = str(e.value)
    assert text.startswith(f"{path}:{line}: byte {byte}")
    assert found in text and READ in text
    assert path.read_bytes()[byte:byte + 3] in (b"{2:", b"<Do")


def test_mt940_type_refuses_a_csv_and_names_the_type_that_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "lines.csv"
    path.write_text("booking_date,amount,currency,reference\n2026-11-27,12.50,EUR,A1\n")
    with pytest.raises(ReportError) as e:
        load_statement(path, "mt940")
    assert str(e.value).startswith(f"{path}:1: byte 0: no bank statement here: found CSV text (first line "
                                   f"'booking_date,amount,currency,reference'); {READ}")
    assert str(e.value).endswith("; it reads with --type csv")


def test_camt053_type_says_what_a_swift_or_text_file_is_and_which_type_reads_it(tmp_path: Path) -> None:
    with pytest.raises(ReportError) as e:
        load_statement(ING, "camt053")
    assert str(e.value) == (f"{ING}:1: byte 0: found text (first line '0000 01INGBNL2AXXXX00001'), not a camt.053 "
                            f"XML document (BkToCstmrStmt); it reads with --type mt940")
    with pytest.raises(ReportError) as e:
        load_statement(MT103, "camt053")
    assert str(e.value) == (f"{MT103}:1: byte 29: found an MT103 (Single Customer Credit Transfer), not a camt.053 "
                            f"XML document (BkToCstmrStmt)")


async def _commit(path: Path, deals: list[DealRecord]) -> None:
    async with open_ledger(path) as ledger:
        for d in deals:
            await ledger.commit(d)


def _deal(at: datetime, **kw) -> DealRecord:
    return DealRecord(**{"deal_type": "PAYMENT", "route": "r", "config_version": "v1", "channel": "c",
                         "status": "committed", "received_at": at, "finished_at": at + timedelta(milliseconds=3),
                         **kw})


def test_an_mt950_fin_message_reconciles_and_its_statement_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "nostro.fin"
    path.write_text(MT950)
    lines = load_statement(path, "mt940")
    assert [(ln.amount, ln.refs[:2], ln.where) for ln in lines] == [
        (Decimal("250000.00"), ("REF20261127A", "CHAS1127001"), f"{path}:6"),
        (Decimal("-100000.50"), ("REF20261127B", "CHAS1127002"), f"{path}:7")]
    ledger = tmp_path / "bsp.duckdb"
    at = datetime(2026, 11, 27, 10, tzinfo=timezone.utc)
    trio.run(_commit, ledger, [_deal(at, reference=ln.refs[0], amount=abs(ln.amount), currency="EUR")
                               for ln in lines])
    form, rows = reconcile_file(ledger, path, "mt940")
    assert [r.status for r in rows] == ["matched", "matched"]
    (table,) = [t for t in form.tables if t.name == "statements"]
    (row,) = table.dicts()
    assert (row["account"], row["statement"], row["status"], row["closing"]) == ("400123456", "321/1", "first",
                                                                                  Decimal("1149999.50"))
    assert dict(form.figures)["statement breaks"] == "0"


def _ledger_json(values: dict) -> dict:
    return json.loads(json.dumps(values, default=str))


def test_statement_continuity_lists_the_statements_not_the_ledgers_mt103_deals(tmp_path: Path) -> None:
    """A ledger holding a committed MT103 (the corpus's, as the ledger keeps it) and an MT950: the report lists
    the MT950 only (before, the MT103 was listed as an 'unchecked' statement of its own account)."""
    mt103 = _ledger_json(SwiftCodec().decode(MT103.read_text("ascii").split("$")[0].strip().encode()))
    mt950 = _ledger_json(SwiftCodec().decode(MT950.encode()))
    at = datetime(2026, 11, 27, 10, tzinfo=timezone.utc)
    ledger = tmp_path / "bsp.duckdb"
    trio.run(_commit, ledger, [
        _deal(at, reference="PAY1", amount=Decimal("10"), currency="USD", party="BANK", request=mt103,
              events=[DealEvent(at, None, "accepted", {"key": "payments|M0001/PAY1"})]),
        _deal(at + timedelta(hours=1), deal_type="STATEMENT", reference="NOSTRO261127", amount=Decimal("0"),
              currency="EUR", party="BANK", request=mt950,
              events=[DealEvent(at, None, "accepted", {"key": "statement_mt950|M0002/NOSTRO261127"})]),
    ])
    r = CliRunner().invoke(app, ["report", "statement-continuity", "--ledger", str(ledger), "--from", "2026-11-01",
                                 "--to", "2026-11-30", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["tables"][0]["rows"]
    assert [(row["account"], row["reference"], row["status"]) for row in rows] == [
        ("M0002", "NOSTRO261127", "first")]


def test_the_continuity_step_reads_an_mt950_and_refuses_an_mt103_saying_what_it_is() -> None:
    msg = SwiftCodec().decode(MT950.encode())
    h = head(msg, "ac_swift message")
    assert (h.label, h.closing, h.entries) == ("NOSTRO261127", Decimal("1149999.50"), 2)
    mt103 = SwiftCodec().decode(MT103.read_text("ascii").split("$")[0].strip().encode())
    with pytest.raises(ValueError, match=r"^an MT103 \(Single Customer Credit Transfer\) is no bank statement"):
        head(mt103, "ac_swift message")
    with pytest.raises(ValueError, match=r"^field 2 \(:23B:\) is no field of a bank statement"):
        head(mt103["block4"], "ac_swift message")


def test_reconcile_command_exits_2_naming_the_mt103(tmp_path: Path) -> None:
    trio.run(_commit, tmp_path / "bsp.duckdb", [])
    r = CliRunner().invoke(app, ["reconcile", "--ledger", str(tmp_path / "bsp.duckdb"), "--against", str(MT103),
                                 "--type", "mt940", "--date", str(date(2026, 11, 27))])
    assert r.exit_code == 2, r.output
    assert "an MT103 (Single Customer Credit Transfer) is no bank statement" in r.output


def test_decode_statements_names_each_mt103_of_a_batch_at_its_byte() -> None:
    """bsp decode -f swift --statements: the corpus's ACK + MT103 batch is three bad records, each at its block 2
    (before: 'mandatory field :25: ... is missing from this MT940 statement')."""
    batch = CORPUS / "swift" / "prowide_mt103_rje_batches" / "input" / "MT103-bulk-with-ack.rje"
    r = CliRunner().invoke(app, ["decode", "-f", "swift", "--statements", "--check-balances", str(batch)])
    assert r.exit_code == 1, r.output
    data = batch.read_bytes()
    at = [i for i in range(len(data)) if data.startswith(b"{2:O103", i)]
    for no, byte in enumerate(at, 1):
        assert (f"{batch}: record {no}, byte {byte}, field block2: an MT103 (Single Customer Credit Transfer) is no "
                f"bank statement") in r.stderr
    assert "0 records decoded, 3 bad" in r.stderr


def test_decode_statements_reads_an_mt950(tmp_path: Path) -> None:
    path = tmp_path / "nostro.fin"
    path.write_text(MT950)
    r = CliRunner().invoke(app, ["decode", "-f", "swift", "--statements", "--check-balances", str(path)])
    assert r.exit_code == 0, r.output
    (line,) = r.stdout.splitlines()
    doc = json.loads(line, parse_float=Decimal)
    assert doc["statement"]["final_closing_balance"]["amount"]["amount"] == Decimal("1149999.50")
