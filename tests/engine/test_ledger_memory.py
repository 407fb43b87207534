"""DuckDB's memory limit on the ledger an engine writes (engine/ledger_memory.py): bounded, not DuckDB's 80 % of
the RAM, so that its cache of a ledger growing for weeks does not grow the engine's process with it."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.ledger_memory import ENV, default_limit, ram
from engine.ledger_store import LedgerError, LedgerStore

GIB = 1 << 30


def _limit(store: LedgerStore) -> str:
    return store._con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]


def test_the_writer_gets_a_quarter_of_the_ram_at_least_1_gib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    store = LedgerStore.open(tmp_path / "l.duckdb")
    try:
        limit = _limit(store)
    finally:
        store.close()
    total = ram()
    assert total is not None
    expected = min(max(total // 4, GIB), total * 4 // 5)
    number, unit = limit.split()
    got = float(number) * {"MiB": 1 << 20, "GiB": GIB}[unit]
    assert abs(got - expected) <= 0.1 * GIB, limit           # DuckDB shows it to a tenth: "5.8 GiB"


def test_the_default_is_bounded() -> None:
    assert default_limit(24 * GIB) == "6144MiB"          # a quarter
    assert default_limit(2 * GIB) == "1024MiB"           # at least 1 GiB
    assert default_limit(1 * GIB) == "819MiB"            # at most DuckDB's own 80 %
    assert default_limit(None) is None                   # not known: DuckDB's default


def test_the_variable_sets_another_and_a_wrong_one_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "512MiB")
    store = LedgerStore.open(tmp_path / "l.duckdb")
    try:
        assert _limit(store) == "512.0 MiB"
    finally:
        store.close()
    monkeypatch.setenv(ENV, "lots")
    with pytest.raises(LedgerError) as err:
        LedgerStore.open(tmp_path / "l.duckdb")
    text = str(err.value)
    assert str(tmp_path / "l.duckdb") in text and f"{ENV}='lots'" in text and "2GB" in text
    monkeypatch.delenv(ENV)
    LedgerStore.open(tmp_path / "l.duckdb").close()      # nothing was left open or locked by the refusal


def test_a_containers_memory_limit_bounds_the_ram(tmp_path: Path) -> None:
    # before: the host's RAM (SC_PHYS_PAGES) in a container limited to less, so a quarter of the host's could
    # be more than the container may use
    host = ram(tmp_path / "none")
    assert host is not None
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text(f"{2 * GIB}\n")
    assert ram(v2) == min(host, 2 * GIB) and default_limit(ram(v2)) == "1024MiB"
    (v2 / "memory.max").write_text("max\n")                      # no limit
    assert ram(v2) == host
    v1 = tmp_path / "v1" / "memory"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text(f"{3 * GIB}\n")
    assert ram(v1.parent) == min(host, 3 * GIB)
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")   # v1's "no limit"
    assert ram(v1.parent) == host

