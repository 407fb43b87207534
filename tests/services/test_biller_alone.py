"""``python -m engine.sim.biller``: the bill payment biller served alone until Ctrl-C/SIGTERM (docs/tour-admin.md,
the dead-retry walk-through): biller down -> payments fail unreachable, dead letters -> start the biller ->
`bsp dead retry --deployment` -> committed.  Real engine, real processes, real sockets on 127.0.0.1."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import trio

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.ledger_query import query_dead_letters, query_deals
from engine.registry import default_registry
from engine.runtime import Switchboard
from engine.sim import bill_traffic

BSP = str(Path(sys.executable).parent / "bsp")


def _start_biller(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "engine.sim.biller", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()          # printed once listening
    return proc, first


def test_the_biller_alone_brings_a_dead_letter_back_through_bsp_dead_retry(tmp_path, dead_port):
    registry = default_registry()
    program = compile_paths([bill_traffic.ROUTE], registry).program
    ledger_path = tmp_path / "ledger.duckdb"
    down = dead_port                              # nothing listens there: the biller is down

    async def payments_while_the_biller_is_down():
        async with open_ledger(ledger_path, audit_key=None, keyring=None) as ledger:
            sb = Switchboard(program, registry, ledger=ledger, overrides={
                "mainframe": {"address": "127.0.0.1:0"}, "biller": {"address": f"127.0.0.1:{down}"}})
            async with trio.open_nursery() as nursery:
                await nursery.start(sb.run)
                res = await bill_traffic.drive(("127.0.0.1", sb.channel("mainframe").port), None, 20)
                sb.drain()
        return res

    res = trio.run(payments_while_the_biller_is_down)
    assert res.by_code.get("91", 0) > 0, res.by_code
    letters = [x for x in query_dead_letters(ledger_path) if "unreachable" in (x.get("reason") or "")]
    assert letters, query_dead_letters(ledger_path)
    letter = letters[0]

    # the biller comes up (on a port of its own choosing, which it prints: no other test can have taken it),
    # and the deployment names where it is
    biller, first = _start_biller("--address", "127.0.0.1:0", "--refuse-digits", "")
    try:
        assert first.startswith("biller listening on 127.0.0.1:"), first
        biller_port = int(first.split()[3].rpartition(":")[2])
        deployment = tmp_path / "platform.yaml"
        deployment.write_text(f"""version: 1
routes:
  - {bill_traffic.ROUTE}
ledger: ledger.duckdb
channels:
  biller: {{address: "127.0.0.1:{biller_port}"}}
""")
        retry = subprocess.run([BSP, "dead", "retry", letter["id"], "--deployment", str(deployment)],
                               capture_output=True, text=True, timeout=120)
        assert retry.returncode == 0, retry.stdout + retry.stderr
        assert f"{letter['id']}: retried: committed (deal " in retry.stdout, retry.stdout
    finally:
        biller.send_signal(signal.SIGINT)              # Ctrl-C: stops cleanly and says what it answered
        out, err = biller.communicate(timeout=20)
    assert biller.returncode == 0, err
    assert out.strip() == "biller stopped: answered 1 request(s), 0 of them refused", out
    [row] = [x for x in query_dead_letters(ledger_path) if x["id"] == letter["id"]]
    assert row["status"] == "retried"
    assert any(d["status"] == "committed" for d in query_deals(ledger_path))


def test_sigterm_stops_it_and_a_taken_address_is_exit_1_naming_it():
    biller, first = _start_biller("--address", "127.0.0.1:0")
    assert first.startswith("biller listening on 127.0.0.1:") and "Ctrl-C stops it" in first, first
    port = int(first.split()[3].rpartition(":")[2])
    taken = subprocess.run([sys.executable, "-m", "engine.sim.biller", "--address", f"127.0.0.1:{port}"],
                           capture_output=True, text=True, timeout=60)
    biller.send_signal(signal.SIGTERM)
    out, err = biller.communicate(timeout=20)
    assert biller.returncode == 0 and out.strip() == "biller stopped: answered 0 request(s), 0 of them refused", err
    assert taken.returncode == 1
    assert taken.stderr.startswith(f"error: cannot serve the biller on 127.0.0.1:{port}: Address already in use; "
                                   f"is another biller running there"), taken.stderr
    assert "give --address" in taken.stderr
