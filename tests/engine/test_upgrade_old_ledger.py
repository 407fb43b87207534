"""Upgrade day: a ledger written by an older bsp (schema 4, ``old_ledgers/README.md``) opened by this one.

The migration says what it did (a line naming both versions and the way back), ``bsp version --ledger`` tells
the admin before the upgrade what this bsp will do with the file, and the old audit chain still verifies
after the migration."""
from __future__ import annotations

import base64
import gzip
import logging
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from engine.cli import app
from engine.ledger_store import SCHEMA_VERSION, LedgerStore

OLD = Path(__file__).parent / "old_ledgers" / "schema4.duckdb.gz"
AUDIT_KEY = "l+6RTM69OJKN6GU+7CmYe+K/nJBZnV71ogO4eYrAB5c="     # test-only: the fixture's audit key


def old_ledger(tmp_path: Path) -> Path:
    path = tmp_path / "bsp.duckdb"
    path.write_bytes(gzip.decompress(OLD.read_bytes()))
    return path


def schema(path: Path) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0]
    finally:
        con.close()


def test_migration_of_an_old_ledger_is_logged_and_its_chain_still_verifies(tmp_path, caplog, monkeypatch):
    path = old_ledger(tmp_path)
    assert schema(path) == 4
    with caplog.at_level(logging.WARNING, logger="bsp.ledger"):
        LedgerStore.open(path, base64.b64decode(AUDIT_KEY)).close()
    assert schema(path) == SCHEMA_VERSION
    lines = [r.getMessage() for r in caplog.records if "migrated" in r.getMessage()]
    assert len(lines) == 1, caplog.text
    assert f"ledger schema 4 migrated to {SCHEMA_VERSION}" in lines[0]
    assert "a bsp of schema 4 refuses this file" in lines[0] and "Upgrading bsp" in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bsp.ledger"):
        LedgerStore.open(path, base64.b64decode(AUDIT_KEY)).close()      # current: nothing to say
    assert "migrated" not in caplog.text

    monkeypatch.setenv("BSP_AUDIT_KEY", AUDIT_KEY)
    res = CliRunner().invoke(app, ["audit", "verify", "--ledger", str(path)], terminal_width=250)
    assert res.exit_code == 0, res.output
    assert "audit chain intact" in res.output and "40 deals" in res.output


def test_version_names_the_schema_of_this_bsp_and_of_a_ledger_file(tmp_path):
    path = old_ledger(tmp_path)
    run = CliRunner()
    res = run.invoke(app, ["version"])
    assert res.exit_code == 0 and f"(ledger schema {SCHEMA_VERSION})" in res.output

    res = run.invoke(app, ["version", "--ledger", str(path)], terminal_width=250)
    assert res.exit_code == 0, res.output
    assert f"{path}: ledger schema 4: this bsp migrates it to {SCHEMA_VERSION}" in res.output
    assert "a bsp of schema 4 refuses it" in res.output
    assert schema(path) == 4                                   # asking wrote nothing

    LedgerStore.open(path, base64.b64decode(AUDIT_KEY)).close()
    res = run.invoke(app, ["version", "--ledger", str(path)], terminal_width=250)
    assert res.exit_code == 0 and f"ledger schema {SCHEMA_VERSION}: current" in res.output

    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION + 1]).fetchall()
    con.close()
    res = run.invoke(app, ["version", "--ledger", str(path)], terminal_width=250)
    assert res.exit_code == 2
    assert f"ledger schema {SCHEMA_VERSION + 1}: newer than this bsp ({SCHEMA_VERSION}); it refuses" in res.output

    res = run.invoke(app, ["version", "--ledger", str(tmp_path / "none.duckdb")])
    assert res.exit_code == 2 and "no such ledger file" in res.output


async def test_status_names_the_ledger_schema_the_engine_migrated_to(tmp_path):
    from engine.ledger import open_ledger
    from engine.ops.backend import ledger_status

    path = old_ledger(tmp_path)
    async with open_ledger(path, audit_key=base64.b64decode(AUDIT_KEY)) as led:
        row, reasons = ledger_status(led)
    assert row["schema"] == SCHEMA_VERSION == schema(path) and reasons == [], row


def test_a_start_refused_by_the_ledger_leaves_no_empty_capture(tmp_path):
    # rolling back: an older bsp started on a ledger a newer one migrated is refused; each attempt used to
    # leave an empty capture (1 MB, "0 frame(s) of 0 exchange(s)") in the capture folder
    import subprocess
    import sys

    path = old_ledger(tmp_path)
    LedgerStore.open(path, base64.b64decode(AUDIT_KEY)).close()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION + 1]).fetchall()
    con.close()
    route = tmp_path / "echo.route"
    route.write_text('format Req = json\nchannel front = tcp listen {\n    address = "127.0.0.1:0"\n'
                     '    framing = length2\n}\nroute echo {\n    receive from front as Req\n'
                     '    reply Req { ref = msg.ref }\n}\n')
    capture = tmp_path / "captures" / "capture.duckdb"
    capture.parent.mkdir()
    bsp = Path(sys.executable).with_name("bsp")
    res = subprocess.run([str(bsp), "run", str(route), "--ledger", str(path), "--record", str(capture)],
                         capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin",
                                                                          "BSP_AUDIT_KEY": AUDIT_KEY})
    assert res.returncode == 1, res.stderr
    assert f"ledger schema version {SCHEMA_VERSION + 1} is newer than this bsp" in res.stderr
    assert f"capture {capture}: removed, nothing was recorded" in res.stderr
    assert list(capture.parent.iterdir()) == [], list(capture.parent.iterdir())


def test_version_names_what_a_killed_old_engine_left_beside_its_ledger(tmp_path):
    # crashed4.tar.gz: bsp a05666d SIGKILLed with 46 biller calls unanswered (old_ledgers/README.md)
    import tarfile

    with tarfile.open(Path(__file__).parent / "old_ledgers" / "crashed4.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    path = tmp_path / "crashed4.duckdb"
    res = CliRunner().invoke(app, ["version", "--ledger", str(path)], terminal_width=250)
    assert res.exit_code == 0, res.output
    assert f"{path}: left by an engine that did not drain (killed or crashed)" in res.output
    assert (f"  {path}.txn: 46 deal(s) in flight (resolved by their route's on restart policy at the next start), "
            f"0 with an ISO 8583 reversal queued") in res.output
    assert "only in the journal" not in res.output            # its loader had taken every acknowledged deal
    assert f"{path}: ledger schema 4: this bsp migrates it" in res.output
    assert schema(path) == 4

    clean = old_ledger(tmp_path)                                   # schema4: stopped with SIGTERM, drained
    res = CliRunner().invoke(app, ["version", "--ledger", str(clean)], terminal_width=250)
    assert res.exit_code == 0 and "did not drain" not in res.output, res.output
