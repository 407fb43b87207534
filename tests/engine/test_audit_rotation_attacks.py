"""Attacks on audit key rotation (engine/audit.py ``verify``), on real ledgers written by the real writer: an
attacker who can write the DuckDB file but holds no key, and one who holds an old (leaked, rotated-out) key."""
from __future__ import annotations

from pathlib import Path

from engine.audit import head_mac
from tests.engine.test_audit_rotation import A1, FP, check, ring, rotated, sql


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
