"""An engine started with another key under a key id the ledger already sealed values with is refused at start
even when its transaction log holds nothing sealed (a fresh or compacted log): the ledger keeps one check value
per key id (``field_key_checks``, engine/field_key_checks.py), and a key that does not open its id's is refused
with one error naming the ledger, the key id and where the keyring came from (exit 2).  Before, the engine
started and sealed new deals' fields under the same id with the other key: one of the two populations could
never be revealed again.  A key id the ledger sealed with that the ring lacks is a warning at start.

Real `bsp run` processes, a real ledger in tmp_path; `bsp deals show --reveal` as a subprocess."""
from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from engine.txn.keycheck import sealed_values
from engine.txn.log import TxnLog
from test_txn_keyring_mismatch import start_or_refuse
from txnkit import REPO, engine_serving, rows

# no deal key: the transaction log keeps no reply, so nothing sealed stays in it after a clean stop
ROUTE = '''
format J = json classify ["card:pan"]
channel api = http listen { address = "127.0.0.1:0" }
route pay {
    receive from api as J
    deal PAY { ref = msg.id  amount = 1 }
    reply J { ok = "yes" }
}
'''
PAN = "4111111111111111"
A, B = os.urandom(32), os.urandom(32)


def ring(*entries: tuple[str, bytes]) -> str:
    return ",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in entries)


async def post(port: int, ref: str) -> None:
    async with httpx.AsyncClient(timeout=60) as c:          # not httpx's 5 s: a hang guard
        r = await c.post(f"http://127.0.0.1:{port}/", json={"id": ref, "card": PAN})
    assert r.status_code == 200, r.text


def reveal(ledger: Path, deal_id: str, keys: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BSP_")} | {"BSP_FIELD_KEYS": keys}
    return subprocess.run([sys.executable, "-m", "engine.cli", "deals", "show", deal_id, "--ledger", str(ledger),
                           "--reveal", "--json"], cwd=str(REPO), env=env, capture_output=True, text=True, timeout=120)


async def test_another_key_under_a_used_id_is_refused_with_nothing_sealed_in_the_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BSP_FIELD_KEYS_FILE", "BSP_AUDIT_KEY", "BSP_AUDIT_KEY_FILE", "BSP_ENV"):
        monkeypatch.delenv(name, raising=False)
    route, ledger = tmp_path / "pay.route", tmp_path / "l.duckdb"
    route.write_text(ROUTE)
    monkeypatch.setenv("BSP_FIELD_KEYS", ring(("k1", A)))
    async with engine_serving(route, ledger) as served:
        await post(served.ports["api"], "R1")
    log = TxnLog(Path(f"{ledger}.txn"))
    try:
        assert not list(sealed_values(log))          # the transaction log cannot tell a wrong key
    finally:
        log.close()

    monkeypatch.setenv("BSP_FIELD_KEYS", ring(("k1", B)))
    status, err = await start_or_refuse(route, ledger)
    assert status == 2, err
    assert (f"error: {ledger}: field key 'k1' of the keyring from BSP_FIELD_KEYS is not the key this ledger's "
            f"values under that id were sealed with") in err, err
    assert "Traceback" not in err and base64.b64encode(B).decode() not in err, err
    assert [r["n"] for r in rows(ledger, "SELECT count(*) AS n FROM deals")] == [1]     # nothing sealed with B

    # the other key under a new id, the old id left out of the ring: it starts, and says k1's values are unreadable
    monkeypatch.setenv("BSP_FIELD_KEYS", ring(("k2", B)))
    async with engine_serving(route, ledger) as served:
        await post(served.ports["api"], "R2")
    status, err = await start_or_refuse(route, ledger)
    assert status is None, err
    assert (f"{ledger}: the ledger holds values sealed with field key 'k1', which the field keyring from "
            f"BSP_FIELD_KEYS does not hold (it has k2)") in err, err

    # both keys in the ring: both deals reveal; a wrong k2 is refused by the reveal too
    ids = [r["deal_id"] for r in rows(ledger, "SELECT deal_id FROM deals ORDER BY received_at")]
    for deal_id in ids:
        shown = reveal(ledger, deal_id, ring(("k2", B), ("k1", A)))
        assert shown.returncode == 0 and PAN in shown.stdout and "warning" not in shown.stderr, shown.stderr
    wrong = reveal(ledger, ids[1], ring(("k2", A), ("k1", A)))
    assert wrong.returncode == 2, wrong.stderr
    assert wrong.stderr.startswith(f"error: {ledger}: field key 'k2' of the keyring from BSP_FIELD_KEYS is not "
                                   f"the key"), wrong.stderr
    assert "Nothing was revealed" in wrong.stderr and PAN not in wrong.stdout
