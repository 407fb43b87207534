"""`bsp run` without a field keyring says at start that what it keeps of requests as received (dead letters,
malformed requests' hex, the transaction log) holds card numbers in clear (PCI DSS 3.5); with a keyring, or
with nothing classified, it says nothing (engine/ops/keyless.py)."""
from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BSP = str(Path(sys.executable).parent / "bsp")
CLASSIFIED = """
format Card = iso8583 iso8583_1987_ascii
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
route purchase {
    receive from front as Card when msg.t == "0200"
    reply Card { t = "0210"  "11" = msg["11"]  "39" = "00" }
}
"""
PLAIN = """
format Req = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
route r { receive from front as Req  reply Req { code = "00" } }
"""


def start_lines(tmp_path: Path, route: str, keyring: bool) -> str:
    (tmp_path / "r.route").write_text(route)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BSP_FIELD_KEYS", "BSP_AUDIT_KEY"))}
    if keyring:
        env["BSP_FIELD_KEYS"] = "k1:" + base64.b64encode(os.urandom(32)).decode()
    err = tmp_path / "stderr"
    with open(err, "wb") as f:
        proc = subprocess.Popen([BSP, "run", str(tmp_path / "r.route"), "--ledger", str(tmp_path / "l.duckdb")],
                                stdout=subprocess.DEVNULL, stderr=f, env=env, cwd=tmp_path)
    try:
        for _ in range(600):
            if "bsp: serving" in err.read_text() or proc.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    text = err.read_text()
    assert "bsp: serving" in text, text
    return text


@pytest.mark.parametrize("route, keyring, warned", [(CLASSIFIED, False, True), (CLASSIFIED, True, False),
                                                    (PLAIN, False, False)])
def test_a_keyless_engine_says_what_it_keeps_in_clear(tmp_path: Path, route: str, keyring: bool,
                                                      warned: bool) -> None:
    text = start_lines(tmp_path, route, keyring)
    lines = [ln for ln in text.splitlines() if ln.startswith("warning: no field keyring")]
    if not warned:
        assert lines == [], text
        return
    assert len(lines) == 1, text
    assert "Card.2" in lines[0] and "dead letters" in lines[0] and "transaction log" in lines[0], lines[0]
    assert "BSP_FIELD_KEYS_FILE" in lines[0] and "docs/security.md#the-ledgers-keys" in lines[0], lines[0]
