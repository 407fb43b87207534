"""A camt.053 statement's own TxsSummry in `bsp reconcile --type camt053` (the statements table) and in `bsp
decode --statements --check-balances`: checked as a camt.052 report's, a disagreement a statement break that
names the statement's place (Stmt N and the byte offset of its <Stmt>), its Id, and what was said and found.

The corpus's camt.053 files have no TxsSummry: genkgo's multi-statement file is used with a TxsSummry written
into each statement (tests/formats/camt053kit.py), validated against its XSD.  Real DuckDB ledgers in tmp_path.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from typer.testing import CliRunner

from engine.cli import app
from engine.reconcile import load_statement, reconcile_file, statement_breaks
from tests.engine.test_reconcile import deals_for, write_deals
from tests.formats.camt053kit import MULTI, MULTI_XML, MULTI_XSD, side, totals_v2, valid, with_summary

pytestmark = pytest.mark.skipif(not MULTI_XML.is_file(), reason=f"conformance corpus not found at {MULTI_XML}")

GOOD = (totals_v2(1, "8.85", "8.85", "CRDT") + side("TtlCdtNtries", 1, "8.85") + side("TtlDbtNtries", 0, "0"),
        totals_v2(1, "7.00", "7.00", "DBIT") + side("TtlCdtNtries", 0, "0") + side("TtlDbtNtries", 1, "7.00"))
# 254's TxsSummry counts a second debit of 3.00 the statement does not hold (an entry missing from it)
BAD = (GOOD[0], GOOD[1].replace(side("TtlDbtNtries", 1, "7.00"), side("TtlDbtNtries", 2, "10.00")))


def _file(tmp_path: Path, summaries: tuple[str, str], name: str = "stmt.xml") -> Path:
    path = tmp_path / name
    path.write_bytes(valid(with_summary(MULTI_XML.read_bytes(), *summaries), MULTI_XSD))
    return path


def _statements(form) -> list[dict]:
    (table,) = [t for t in form.tables if t.name == "statements"]
    names = [c.name for c in table.columns]
    return [dict(zip(names, r)) for r in table.rows]


def _reconcile(tmp_path: Path, path: Path):
    ledger = tmp_path / "bsp.duckdb"
    trio.run(write_deals, ledger, deals_for(load_statement(path, "camt053")))
    return reconcile_file(ledger, path, "camt053", xsd_dir=MULTI / "xsd")


def test_statements_whose_txs_summary_agrees_pass(tmp_path: Path) -> None:
    path = _file(tmp_path, GOOD)
    form, rows = _reconcile(tmp_path, path)
    assert [r.status for r in rows] == ["matched", "matched"]
    assert [(s["reference"], s["status"], s["note"]) for s in _statements(form)] == [
        ("253EURNL26VAYB8060476890", "first", None), ("254EURNL26VAYB8060476890", "ok", None)]
    assert statement_breaks(form) == 0


def test_txs_summary_that_disagrees_is_a_statement_break_naming_the_statement(tmp_path: Path) -> None:
    """254 adds up by its balances (27.00 - 7.00 = 20.00) and follows on from 253, but its TxsSummry says two
    debits of 10.00: does_not_add_up, exit 1 though both lines match; the row names Stmt 2, its byte offset
    and its Id, the note what was said and what was found, in Decimal."""
    path = _file(tmp_path, BAD)
    data = path.read_bytes()
    form, _ = _reconcile(tmp_path, path)
    first, second = _statements(form)
    assert first["status"] == "first"
    at = data.index(b"<Stmt>", data.index(b"</Stmt>"))
    assert (second["where"], second["reference"], second["status"]) == (
        f"{path}: Stmt 2 (byte {at})", "254EURNL26VAYB8060476890", "does_not_add_up")
    assert second["note"] == ("TxsSummry/TtlDbtNtries says 2 debit(s) of 10.00 EUR, but the entries hold 1 of 7.00 "
                              "(difference +3.00)")
    assert statement_breaks(form) == 1
    r = CliRunner().invoke(app, ["reconcile", "--ledger", str(tmp_path / "bsp.duckdb"), "--against", str(path),
                                 "--type", "camt053", "--format", "json", "--out", "-"])
    assert r.exit_code == 1, r.output
    assert "2 lines, fully matched; 1 statement(s) break a control" in r.stderr
    (table,) = [t for t in json.loads(r.stdout)["tables"] if t["name"] == "statements"]
    assert table["rows"][1]["status"] == "does_not_add_up"


def test_decode_check_balances_tells_the_txs_summary_at_its_statement(tmp_path: Path) -> None:
    """bsp decode --statements --check-balances: the record, the byte offset of its <Stmt> and the Id."""
    good = _file(tmp_path, GOOD)
    r = CliRunner().invoke(app, ["decode", "-f", "iso20022", "--statements", "--check-balances", "--xsd",
                                 str(MULTI_XSD), str(good)])
    assert r.exit_code == 0, r.stderr
    bad = _file(tmp_path, BAD, "bad.xml")
    data = bad.read_bytes()
    r = CliRunner().invoke(app, ["decode", "-f", "iso20022", "--statements", "--check-balances", "--xsd",
                                 str(MULTI_XSD), str(bad)])
    assert r.exit_code == 1
    at = data.index(b"<Stmt>", data.index(b"</Stmt>"))
    assert (f"record 2, byte {at}: statement 254EURNL26VAYB8060476890: TxsSummry/TtlDbtNtries says 2 debit(s) of "
            f"10.00 EUR, but the entries hold 1 of 7.00 (difference +3.00)") in r.stderr
