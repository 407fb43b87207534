"""An engine started with a field keyring that cannot open its transaction log's sealed values (another key
under the same key id, the old key id dropped from the ring, no keyring at all) is refused at start with one
error naming the log, the key id and where the keyring came from (exit 2, like an audit key the chain does not
verify with). Before, it started, and the first repeat of a kept deal key failed inside the engine: an HTTP 500,
a traceback in the log, no deal and no dead letter (engine/txn/keycheck.py).

Real `bsp run` processes, a real ledger and transaction log in tmp_path."""
from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import httpx
import pytest
import trio

from txnkit import REPO, engine_serving

ROUTE = '''
format J = json classify ["card:pan"]
channel api = http listen { address = "127.0.0.1:0" }
route pay {
    receive from api as J
    deal PAY { ref = msg.id  amount = 1  key = msg.id }
    reply J { ok = "yes"  card = msg.card }
}
'''
PAN = "4111111111111111"
A, B = os.urandom(32), os.urandom(32)


def ring(*entries: tuple[str, bytes]) -> str:
    return ",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in entries)


async def post(port: int) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as c:          # not httpx's 5 s: a hang guard
        return await c.post(f"http://127.0.0.1:{port}/", json={"id": "R1", "card": PAN})


async def start_or_refuse(route: Path, ledger: Path) -> tuple[int | None, str]:
    """(exit status, stderr) of a `bsp run` refused at start; (None, stderr) when it served (then stopped)."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "engine.cli", "run", str(route), "--ledger", str(ledger), "--grace", "5"],
        cwd=str(REPO), stderr=subprocess.PIPE)
    buf = b""
    try:
        with trio.fail_after(60):
            while b"serving" not in buf:
                chunk = await proc.stderr.receive_some(4096)
                if not chunk:
                    return await proc.wait(), buf.decode()
                buf += chunk
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
            return None, buf.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stderr.aclose()


async def test_a_keyring_that_cannot_open_the_log_is_refused_at_start(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BSP_FIELD_KEYS_FILE", "BSP_AUDIT_KEY", "BSP_AUDIT_KEY_FILE", "BSP_ENV"):
        monkeypatch.delenv(name, raising=False)
    route, ledger = tmp_path / "pay.route", tmp_path / "l.duckdb"
    route.write_text(ROUTE)
    monkeypatch.setenv("BSP_FIELD_KEYS", ring(("k1", A)))
    async with engine_serving(route, ledger) as served:
        first = await post(served.ports["api"])
    assert first.status_code == 200 and first.json()["card"] == PAN

    # another key under k1: the ledger's check value for k1 refuses it first (engine/field_key_checks.py)
    monkeypatch.setenv("BSP_FIELD_KEYS", ring(("k1", B)))
    status, err = await start_or_refuse(route, ledger)
    assert status == 2 and (f"error: {ledger}: field key 'k1' of the keyring from BSP_FIELD_KEYS is not the key "
                            f"this ledger's values") in err, err
    with duckdb.connect(str(ledger)) as con:       # a ledger written before its check values (schema < 8)
        con.execute("DELETE FROM field_key_checks").fetchall()

    cases = [(ring(("k1", B)), "field key 'k1' of the keyring from BSP_FIELD_KEYS is not the key the "
                               "transaction log's values were sealed with"),
             (ring(("k2", B)), "the transaction log holds values sealed with field key 'k1', which the field "
                               "keyring from BSP_FIELD_KEYS does not hold (it has k2)"),
             (None, "the transaction log holds values sealed with the field keyring (key id 'k1'")]
    for keys, want in cases:
        if keys is None:
            monkeypatch.delenv("BSP_FIELD_KEYS")
        else:
            monkeypatch.setenv("BSP_FIELD_KEYS", keys)
        status, err = await start_or_refuse(route, ledger)
        assert status == 2, (keys, err)
        assert f"error: {ledger}.txn: {want}" in err, err
        assert "Traceback" not in err and base64.b64encode(B).decode() not in err, err

    # the new key under a new id, the old one kept: the repeat is answered with the original reply
    monkeypatch.setenv("BSP_FIELD_KEYS", ring(("k2", B), ("k1", A)))
    async with engine_serving(route, ledger) as served:
        again = await post(served.ports["api"])
    assert again.status_code == 200 and again.content == first.content
