"""Configuration sources content-addressed in the ledger (schema 11, engine/config_sources.py, docs/ledger.md
``config_files``): a text shared by versions is stored once; a schema-10 ledger migrates without losing a source
and its chain still verifies; ``bsp audit verify`` finds an edited or deleted file row; ``bsp ledger archive``
takes the texts of the versions it moves and keeps the live ones.  Real DuckDB files."""
from __future__ import annotations

import base64
import dataclasses
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from engine.audit import seal, verify
from engine.config_sources import all_sources, digest, sources_of
from engine.deal import to_json
from engine.ledger import open_ledger
from engine.ledger_store import CONFIG_SCHEMA, LedgerStore
from test_dead_letter_chain import _app as app
from test_ledger_archive import FEB, JAN, deal, q, tamper as sql

KEY = bytes(range(32))
BIG = "".join(f'<xs:element name="E{i:06d}" type="xs:string"/>\n' for i in range(60_000))     # ~3 MB




def report(path: Path):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return verify(con, path, KEY)
    finally:
        con.close()


async def test_two_versions_sharing_a_big_file_store_it_once(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    v1 = {"/r/a.route": "route a { v1 }", "/r/iso/pacs.008.xsd": BIG}
    v2 = {"/r/a.route": "route a { v2 }", "/r/iso/pacs.008.xsd": BIG}
    async with open_ledger(path, audit_key=KEY) as ledger:
        assert await ledger.record_config("v1", v1)
        assert await ledger.record_config("v2", v2)
    # the big text once, each route text once: 3 rows, the bytes of one copy of BIG (not two)
    assert q(path, "SELECT count(*), sum(strlen(text)) FROM config_files")[0] == (
        3, len(BIG) + len(v1["/r/a.route"]) + len(v2["/r/a.route"]))
    assert q(path, "SELECT count(*) FROM config_versions WHERE sources IS NULL AND manifest IS NOT NULL") == [(2,)]
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert all_sources(con) == {"v1": v1, "v2": v2}
        assert list(sources_of(con, "v2")) == list(v2)          # the paths in the order the program gave them
        assert sources_of(con, "nope") is None
    finally:
        con.close()
    assert report(path).ok


async def test_deal_show_lists_the_files_of_its_version(tmp_path: Path) -> None:
    from engine.ledger_query import get_deal

    path = tmp_path / "l.duckdb"
    async with open_ledger(path, audit_key=KEY, keyring=None) as ledger:
        await ledger.record_config("v1", {"/r/b.route": "route b {}", "/r/a.route": "route a {}", "/x.xsd": BIG})
        await ledger.commit(deal(1, JAN))
    d = get_deal(path, f"{1:032x}")
    assert d["config"]["version"] == "v1"
    assert d["config"]["files"] == ["/r/a.route", "/r/b.route", "/x.xsd"]


def _old_ledger(path: Path, versions: dict[str, object]) -> None:
    """A ledger as bsp of schema 10 left it: each version row holds its whole sources JSON, sealed over
    (chain_seq, version, loaded_at, sources); no manifest column, no config_files."""
    store = LedgerStore.open(path, KEY)
    try:
        with store.transaction() as tail:
            for i, (version, sources) in enumerate(versions.items()):
                t = pa.table({"version": [version], "loaded_at": [JAN + timedelta(minutes=i)],
                              "sources": [sources if isinstance(sources, str) else to_json(sources)]},
                             schema=pa.schema(list(CONFIG_SCHEMA)[:3]))
                sealed, tail.seq, tail.prev = seal("config_versions", t, ("chain_seq", "version", "loaded_at",
                                                                          "sources"), KEY, tail.seq, tail.prev)
                store.connection.register("_old", sealed)
                store.connection.execute("INSERT INTO config_versions (version, loaded_at, sources, chain_seq, mac) "
                                         "SELECT version, loaded_at, sources, chain_seq, mac FROM _old").fetchall()
                store.connection.unregister("_old")
    finally:
        store.close()
    sql(path, "DROP TABLE config_files", "ALTER TABLE config_versions DROP COLUMN manifest",
        "ALTER TABLE config_versions DROP COLUMN sealed_whole", "UPDATE schema_version SET version = 10")


OLD = {"v1": {"/r/a.route": "route a { 1 }", "/r/x.xsd": BIG},
       "v2": {"/r/a.route": "route a { 2 }", "/r/x.xsd": BIG},
       "v3": '{"/r/a.route": "route a { spaced JSON }"}',     # not what bsp writes: kept whole
       "v4": None}


async def test_a_schema_10_ledger_migrates_and_reads_the_same_sources(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    _old_ledger(path, OLD)
    con = duckdb.connect(str(path), read_only=True)
    try:            # the old file read-only (an archive of schema 10): the readers take its whole sources
        before = all_sources(con)
    finally:
        con.close()
    assert before == {"v1": OLD["v1"], "v2": OLD["v2"], "v3": {"/r/a.route": "route a { spaced JSON }"}, "v4": None}
    assert report(path).ok
    size_before = q(path, "SELECT sum(strlen(sources)) FROM config_versions")[0][0]

    LedgerStore.open(path, KEY).close()         # migrates to 11
    assert q(path, "SELECT max(version) FROM schema_version") == [(11,)]
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert all_sources(con) == before
    finally:
        con.close()
    assert q(path, "SELECT version, sources IS NULL, sealed_whole FROM config_versions ORDER BY version") == [
        ("v1", True, True), ("v2", True, True), ("v3", False, None), ("v4", True, None)]
    stored = q(path, "SELECT count(*), sum(strlen(text)) FROM config_files")[0]
    assert stored == (3, len(BIG) + 2 * len("route a { 1 }"))
    assert stored[1] < size_before / 1.9                  # BIG once instead of twice
    rep = report(path)
    assert rep.ok, [str(b) for b in rep.breaks]           # the old macs verify over the rebuilt sources
    assert rep.by_table["config_versions"] == 4
    # the flag is outside the mac, but either value other than the one written fails it
    sql(path, "UPDATE config_versions SET sealed_whole = NULL WHERE version = 'v2'")
    breaks = [str(b) for b in report(path).breaks]
    assert len(breaks) == 1 and "config_versions v2" in breaks[0] and "does not match its mac" in breaks[0], breaks
    sql(path, "UPDATE config_versions SET sealed_whole = true WHERE version = 'v2'")

    # a split row's file edited: its rebuilt sources no longer match the row's mac, and the file its hash
    sql(path, f"UPDATE config_files SET text = 'route a {{ evil }}' WHERE sha256 = '{digest('route a { 1 }')}'")
    breaks = [str(b) for b in report(path).breaks]
    assert any("config_versions v1" in b and "does not match its mac" in b for b in breaks), breaks
    assert any("config_files" in b and "does not match its sha256" in b and "version v1: /r/a.route" in b
               for b in breaks), breaks

    # the writer goes on: a new version shares BIG with the migrated ones
    sql(path, f"UPDATE config_files SET text = 'route a {{ 1 }}' WHERE sha256 = '{digest('route a { 1 }')}'")
    async with open_ledger(path, audit_key=KEY) as ledger:
        await ledger.record_config("v5", {"/r/a.route": "route a { 5 }", "/r/x.xsd": BIG})
    assert q(path, "SELECT count(*) FROM config_files") == [(4,)]
    assert report(path).ok


async def test_audit_verify_finds_an_edited_or_deleted_file_row(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    async with open_ledger(path, audit_key=KEY) as ledger:
        await ledger.record_config("v1", {"/r/a.route": "route a {}", "/r/x.xsd": BIG})
        await ledger.record_config("v2", {"/r/a.route": "route a { 2 }", "/r/x.xsd": BIG})
    assert report(path).ok
    big = digest(BIG)
    sql(path, f"UPDATE config_files SET text = replace(text, 'E000001', 'EVIL001') WHERE sha256 = '{big}'")
    breaks = [str(b) for b in report(path).breaks]
    assert len(breaks) == 1 and "config_files" in breaks[0] and big in breaks[0], breaks
    assert "does not match its sha256: it was replaced (version v1: /r/x.xsd; version v2: /r/x.xsd)" in breaks[0]

    # replaced together with its hash: the manifests (chained) name a text no longer there
    evil = BIG.replace("E000001", "EVIL001")
    sql(path, f"UPDATE config_files SET sha256 = '{digest(evil)}' WHERE sha256 = '{big}'")
    breaks = [str(b) for b in report(path).breaks]
    assert len(breaks) == 2 and all(f"/r/x.xsd (sha256 {big}) is missing from config_files" in b for b in breaks)
    con = duckdb.connect(str(path), read_only=True)
    try:
        with pytest.raises(Exception, match="/r/x.xsd .*missing from config_files"):
            sources_of(con, "v1")
    finally:
        con.close()

    # a manifest pointed at another text: the row's mac
    sql(path, f"UPDATE config_files SET sha256 = '{big}', text = $${BIG}$$ WHERE sha256 = '{digest(evil)}'",
        f"UPDATE config_versions SET manifest = replace(manifest, '{digest('route a { 2 }')}', "
        f"'{digest('route a {}')}') WHERE version = 'v2'")
    breaks = [str(b) for b in report(path).breaks]
    assert len(breaks) == 1 and "config_versions v2" in breaks[0] and "does not match its mac" in breaks[0], breaks




async def test_archive_round_trip_keeps_the_texts_of_both_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "2026-01.duckdb"
    v0 = {"/r/a.route": "route a { 0 }", "/r/old.xsd": "<only v0/>", "/r/x.xsd": BIG}
    v1 = {"/r/a.route": "route a { 1 }", "/r/x.xsd": BIG}
    async with open_ledger(led, audit_key=KEY, keyring=None) as ledger:
        await ledger.record_config("v0", v0)
        for i in range(4):
            await ledger.commit(dataclasses.replace(deal(i, JAN + timedelta(days=i)), config_version="v0"))
        await ledger.record_config("v1", v1)
        for i in range(2):
            await ledger.commit(deal(100 + i, FEB + timedelta(days=i)))
    res = CliRunner().invoke(app(), ["ledger", "archive", "--before", "2026-02-01", "--out", str(arc),
                                     "--ledger", str(led), "--yes"])
    assert res.exit_code == 0, res.output
    for f, want in ((arc, {"v0": v0, "v1": v1}), (led, {"v1": v1})):
        con = duckdb.connect(str(f), read_only=True)
        try:
            assert all_sources(con) == want, f
        finally:
            con.close()
        out = CliRunner().invoke(app(), ["audit", "verify", "--ledger", str(f)])
        assert out.exit_code == 0, out.output
    # the live ledger keeps the texts its versions name, not v0's own one (in the archive now)
    assert sorted(r[0] for r in q(led, "SELECT text FROM config_files WHERE strlen(text) < 100")) == [
        "route a { 1 }"]
    assert q(arc, "SELECT count(*) FROM config_files") == [(4,)]
    # the archived text edited: its verify finds it
    sql(arc, f"UPDATE config_files SET text = '<evil/>' WHERE sha256 = '{digest('<only v0/>')}'")
    out = CliRunner().invoke(app(), ["audit", "verify", "--ledger", str(arc)])
    assert out.exit_code != 0 and "config_files" in out.output, out.output


def test_a_real_old_ledger_keeps_its_sources_through_the_migration(tmp_path: Path) -> None:
    """The schema 4 ledger a real older bsp wrote (old_ledgers/README.md): its configuration version's sources
    read the same before (the file read-only, as an old archive is) and after the migration, and its chain,
    sealed by that bsp over the whole sources, still verifies."""
    from test_upgrade_old_ledger import AUDIT_KEY, old_ledger

    key = base64.b64decode(AUDIT_KEY)
    path = old_ledger(tmp_path)
    con = duckdb.connect(str(path), read_only=True)
    try:
        before = all_sources(con)
        assert verify(con, path, key).ok
    finally:
        con.close()
    assert before and all(isinstance(s, dict) and s for s in before.values())
    LedgerStore.open(path, key).close()
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert all_sources(con) == before
        assert con.execute("SELECT count(*) FROM config_versions WHERE sealed_whole AND sources IS NULL"
                           ).fetchall() == [(len(before),)]
        rep = verify(con, path, key)
        assert rep.ok, [str(b) for b in rep.breaks]
    finally:
        con.close()


async def test_an_archive_of_a_migrated_ledger_seals_its_kept_version_again_as_a_manifest(tmp_path: Path,
                                                                                        monkeypatch) -> None:
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "2026-01.duckdb"
    v0 = {"/r/a.route": "route a { 0 }", "/r/x.xsd": BIG}
    v1 = {"/r/a.route": "route a { 1 }", "/r/x.xsd": BIG}
    _old_ledger(led, {"v0": v0, "v1": v1})
    async with open_ledger(led, audit_key=KEY, keyring=None) as ledger:       # migrates: both rows split
        for i in range(3):
            await ledger.commit(dataclasses.replace(deal(i, JAN + timedelta(days=i)), config_version="v0"))
        await ledger.commit(deal(100, FEB))
    assert q(led, "SELECT count(*) FROM config_versions WHERE sealed_whole") == [(2,)]
    res = CliRunner().invoke(app(), ["ledger", "archive", "--before", "2026-02-01", "--out", str(arc),
                                     "--ledger", str(led), "--yes"])
    assert res.exit_code == 0, res.output
    assert q(arc, "SELECT version, sealed_whole FROM config_versions ORDER BY version") == [("v0", True), ("v1", True)]
    assert q(led, "SELECT version, sealed_whole, sources IS NULL FROM config_versions") == [("v1", None, True)]
    for f, want in ((arc, {"v0": v0, "v1": v1}), (led, {"v1": v1})):
        con = duckdb.connect(str(f), read_only=True)
        try:
            assert all_sources(con) == want, f
        finally:
            con.close()
        out = CliRunner().invoke(app(), ["audit", "verify", "--ledger", str(f)])
        assert out.exit_code == 0, out.output
