"""The dead letter of a repeat refused as a key conflict (its deal key was already used for another deal:
engine/txn/fingerprint.py) is refused again when an operator retries it (the key still names the original),
the original untouched; the live engine counts each in ``bsp_route_key_conflicts_total``.

Real engine (LiveEngine, the admin API's retry: ``EngineBackend.retry_dead_letter``), real loopback
counterparts, a real DuckDB ledger and transaction log."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from opskit import live
from test_ops_dead_retry_keys import Host, ask, letter_of, req, retry, route_file, statuses


async def test_a_key_conflict_retried_is_refused_again_and_counted(nursery, tmp_path: Path) -> None:
    debit, credit = await Host().bind(), await Host().bind()
    await debit.up(nursery)
    await credit.up(nursery)
    ledger = tmp_path / "l.duckdb"
    async with live([route_file(tmp_path, debit, credit)], ledger) as eng:
        port = eng.channels["front"].port
        assert (await ask(port, req("K1"))) == {"ref": "K1", "code": "00"}
        assert (await ask(port, req("K1", "20.00"))) == {"ref": "K1", "code": "12"}
        letter = await letter_of(ledger, "K1")
        assert letter["error_kind"] == "key_conflict"
        res = await retry(eng, letter["id"])
        assert res["ok"] is False and res["outcome"].startswith("rejected (deal "), res
        assert "key_conflict: deal key 'transfer|K1/20260301' was used by deal " in res["outcome"], res
        assert "amount 20.00 (the original: 10.00)" in res["outcome"], res
        metrics = eng.observer.metrics.render()
        metrics = metrics.decode() if isinstance(metrics, bytes) else metrics
    assert 'bsp_route_key_conflicts_total{route="transfer"} 2.0' in metrics
    assert debit.counts == Counter({("post", "K1"): 1}) and credit.counts == Counter({("post", "K1"): 1})
    assert statuses(ledger, "K1") == ["committed", "rejected", "rejected"]
