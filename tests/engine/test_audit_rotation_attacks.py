"""Attacks on audit key rotation (engine/audit.py ``verify``), on real ledgers written by the real writer: an
attacker who can write the DuckDB file but holds no key, and one who holds an old (leaked, rotated-out) key."""
from __future__ import annotations

from pathlib import Path

from engine.audit import head_mac
from tests.engine import test_audit_rotation as rotation
from tests.engine.test_audit_rotation import A1, FP, check, ring, rotated, sql

bsp = rotation.bsp        # the CLI with a keyring (a fixture)


async def test_a_tamper_before_a_rotation_is_not_hidden_as_a_missing_key(tmp_path: Path) -> None:
    """No key: modify the first record, and name an unknown key as the rotation record's previous one.  Verify
    read the forged fingerprint before checking anything, skipped every record up to the rotation and said
    'cannot verify: add key ... (fp ffff...)' (exit 2), though the ring holds a1 and a1 seals seq 2..14."""
    path = tmp_path / "l.duckdb"
    await rotated(path)
    sql(path, "UPDATE config_versions SET sources = '{\"/r/a.route\": \"route a { evil }\"}' WHERE chain_seq = 1",
        "UPDATE audit_keys SET previous_fingerprint = 'ffffffffffffffff', previous_key_id = 'a0'")
    report = check(path, ring("a2", "a1"))
    assert not report.ok
    assert report.missing == [], [str(m) for m in report.missing]
    assert [b.seq for b in report.breaks][:1] == [1], [str(b) for b in report.breaks]


async def test_a_tamper_alone_before_a_rotation_with_the_old_key_missing_still_says_missing(tmp_path: Path) -> None:
    """The ring without a1: records sealed with it cannot be checked (exit 2), as before."""
    path = tmp_path / "l.duckdb"
    await rotated(path)
    report = check(path, ring("a2"))
    assert not report.breaks and [(m.first_seq, m.last_seq, m.fingerprint) for m in report.missing] \
        == [(1, 14, FP["a1"])]


async def test_an_old_key_cannot_cut_the_records_after_its_rotation(tmp_path: Path) -> None:
    """A1 leaked and was rotated out (a2 current, a1 kept to verify the old records).  Its holder deletes the
    rotation record and every record after it and re-seals the head with a1: verify said 'intact'."""
    path = tmp_path / "l.duckdb"
    await rotated(path)
    last = sql(path, "SELECT mac FROM deal_events WHERE chain_seq = 13")[0][0]
    assert last is not None
    sql(path, *(f"DELETE FROM {t} WHERE chain_seq >= 14" for t in
                ("deals", "deal_steps", "deal_events", "config_versions", "audit_keys")),
        "DELETE FROM deal_keys WHERE deal_id NOT IN (SELECT deal_id FROM deals)")
    con_head = head_mac(A1, 13, bytes(last))
    import duckdb
    con = duckdb.connect(str(path))
    con.execute("UPDATE audit_head SET chain_seq = 13, mac = ?", [con_head])
    con.close()
    report = check(path, ring("a2", "a1"))
    assert not report.ok
    assert any("a1" in b.what and "current" in b.what for b in report.breaks), [str(b) for b in report.breaks]


async def test_an_anchor_changed_with_an_unknown_key_fingerprint_is_a_break_not_a_missing_key(
        tmp_path: Path, bsp) -> None:
    """No key: delete an archived deal's kept key (a repeat of it would run again), make the anchor's count and
    digest match, and give the anchor the fingerprint of a key nobody has.  Verify said 'cannot verify: add key
    ... (fp ffff...)' (exit 2), though the ring holds every key this ledger was sealed with."""
    import duckdb

    from datetime import datetime, timezone
    from engine.audit import keys_digest
    from tests.engine.test_audit_rotation import write

    led, arc = tmp_path / "bsp.duckdb", tmp_path / "2026-01.duckdb"
    await write(led, ring("a1"), 0, 6, config=True)
    await write(led, ring("a1"), 100, 3, start=datetime(2026, 2, 1, tzinfo=timezone.utc))
    res = bsp("ledger", "archive", "--before", "2026-02-01", "--out", str(arc), "--ledger", str(led), "--yes",
              ring=("a1",))
    assert res.exit_code == 0, res.output
    await write(led, ring("a2", "a1"), 200, 2, start=datetime(2026, 3, 1, tzinfo=timezone.utc))
    assert bsp("audit", "verify", "--ledger", str(led), ring=("a2", "a1")).exit_code == 0

    con = duckdb.connect(str(led))
    (seq,) = con.execute("SELECT chain_seq FROM audit_anchor").fetchall()[0]
    con.execute("DELETE FROM archived_deals WHERE deal_id = (SELECT min(deal_id) FROM archived_deals)")
    n, digest = keys_digest(con, "SELECT key, deal_id, status, response_code, finished_at FROM archived_deals "
                                 "WHERE anchor_seq = ?", [seq])
    con.execute("UPDATE audit_anchor SET keys = ?, keys_sha256 = ?, key_fp = 'ffffffffffffffff'", [n, digest])
    con.close()
    res = bsp("audit", "verify", "--ledger", str(led), ring=("a2", "a1"))
    assert res.exit_code == 1 and "audit_anchor" in res.output, res.output
    # the ring without a1 (the anchor's real key, named by the rotation record): still a break, since the
    # fingerprint the anchor names is no key this ledger's chain knows
    res = bsp("audit", "verify", "--ledger", str(led), ring=("a2",))
    assert res.exit_code == 1 and "audit_anchor" in res.output, res.output


async def test_an_old_key_cannot_reseal_an_anchor_made_before_its_rotation(tmp_path: Path, bsp) -> None:
    """A1 sealed an archive's anchor, then leaked and was rotated out (a2 current, a1 kept to verify).  Its holder
    deletes an archived deal's kept key (a repeat of that deal would run again) and re-seals the anchor with a1:
    verify said intact, since the anchor names a1 and a1 is in the ring."""
    import duckdb

    from datetime import datetime, timezone
    from engine.audit import anchor_seal, anchors, keys_digest
    from tests.engine.test_audit_rotation import write

    led, arc = tmp_path / "bsp.duckdb", tmp_path / "2026-01.duckdb"
    await write(led, ring("a1"), 0, 6, config=True)
    await write(led, ring("a1"), 100, 3, start=datetime(2026, 2, 1, tzinfo=timezone.utc))
    res = bsp("ledger", "archive", "--before", "2026-02-01", "--out", str(arc), "--ledger", str(led), "--yes",
              ring=("a1",))
    assert res.exit_code == 0, res.output
    await write(led, ring("a2", "a1"), 200, 2, start=datetime(2026, 3, 1, tzinfo=timezone.utc))
    assert bsp("audit", "verify", "--ledger", str(led), ring=("a2", "a1")).exit_code == 0

    con = duckdb.connect(str(led))
    [a] = anchors(con)
    con.execute("DELETE FROM archived_deals WHERE deal_id = (SELECT min(deal_id) FROM archived_deals)")
    a.keys, a.keys_sha256 = keys_digest(con, "SELECT key, deal_id, status, response_code, finished_at FROM "
                                             "archived_deals WHERE anchor_seq = ?", [a.chain_seq])
    a.key_fp = FP["a1"]
    con.execute("UPDATE audit_anchor SET keys = ?, keys_sha256 = ?, key_fp = ?, seal = ?",
                [a.keys, a.keys_sha256, a.key_fp, anchor_seal(A1, a)])
    con.close()
    res = bsp("audit", "verify", "--ledger", str(led), ring=("a2", "a1"))
    assert res.exit_code == 1 and "audit_anchor" in res.output, res.output


async def test_a_rotation_to_a_key_nobody_has_written_with_the_old_key_says_who_could_have(tmp_path: Path) -> None:
    """A1's holder cuts the records after the rotation and re-seals the rotation record naming a key nobody
    has: verify cannot check past it (exit 2, not a pass), and its message says the old key's holder may have
    written it, instead of only asking for the key."""
    import duckdb

    from engine.audit import CHAINED, canonical, seal
    import pyarrow as pa

    path = tmp_path / "l.duckdb"
    await rotated(path)
    last = bytes(sql(path, "SELECT mac FROM deal_events WHERE chain_seq = 13")[0][0])
    con = duckdb.connect(str(path))
    for t in ("deals", "deal_steps", "deal_events", "config_versions"):
        con.execute(f"DELETE FROM {t} WHERE chain_seq >= 14")
    con.execute("DELETE FROM deal_keys WHERE deal_id NOT IN (SELECT deal_id FROM deals)")
    cols = [c for c in CHAINED["audit_keys"][1] if c != "chain_seq"]
    row = con.sql("SELECT " + ", ".join(f'"{c}"' for c in cols) + " FROM audit_keys").to_arrow_table()
    row = row.set_column(row.column_names.index("fingerprint"), "fingerprint", pa.array(["ffffffffffffffff"]))
    row = row.set_column(row.column_names.index("key_id"), "key_id", pa.array(["a9"]))
    sealed, _, _ = seal("audit_keys", row, CHAINED["audit_keys"][1], A1, 13, last)
    assert canonical(sealed, CHAINED["audit_keys"][1])
    con.execute("UPDATE audit_keys SET fingerprint = 'ffffffffffffffff', key_id = 'a9', mac = ?",
                [sealed.column("mac")[0].as_py()])
    con.close()
    report = check(path, ring("a2", "a1"))
    assert not report.ok and not report.breaks
    [m] = report.missing
    assert m.fingerprint == "ffffffffffffffff" and f"sealed with a1 (fp {FP['a1']})" in str(m), str(m)
    assert "written by someone holding a1" in str(m), str(m)
