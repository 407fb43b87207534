"""``bsp ledger archive`` after a crash (docs/ledger.md "Archiving"): deals a real engine acknowledged and then
was killed (SIGKILL) before loading are only in its journal (``<ledger>.journal/``, engine/journal.py); the next
start loads them after every record there is, so an archive made before that start would leave them out of
their period.  It is refused, naming the journal; once the engine has started and stopped, it takes them."""
from __future__ import annotations

import base64
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import trio

from engine.journal import journal_dir, open_journaled_ledger
from kit import REPO, Client, json_counterpart, read_until
from test_journal import ROUTE
from test_ledger_archive import KEY, app, fill, q, sha

from typer.testing import CliRunner

ENGINE = textwrap.dedent("""
    import base64, sys, trio
    sys.path.insert(0, sys.argv[3])
    from dsl.load import compile_paths
    from engine.journal import open_journaled_ledger
    from engine.registry import default_registry
    from engine.runtime import Switchboard

    async def main():
        reg = default_registry()
        program = compile_paths([sys.argv[1]], reg).program
        # the loader never runs on its own: every acknowledged deal is only in the journal
        async with open_journaled_ledger(sys.argv[2], load_wait=3600, load_rows=10**9,
                                         audit_key=base64.b64decode(sys.argv[4])) as led:
            sb = Switchboard(program, reg, ledger=led)
            async with trio.open_nursery() as n:
                await n.start(sb.run)
                print("serving", sb.channel("front").port, flush=True)
    trio.run(main)
""")


@pytest.fixture
def bsp(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())

    def run(*args: str):
        return CliRunner().invoke(app(), list(args))
    return run


async def test_refused_while_the_journal_holds_deals_a_killed_engine_acknowledged(nursery, tmp_path: Path,
                                                                                 bsp) -> None:
    back = await json_counterpart(nursery, lambda req: {"status": "OK"})
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % (0, back))            # port 0: the engine binds one, and says which
    led, arc = tmp_path / "bsp.duckdb", tmp_path / "arc.duckdb"
    await fill(led)                                     # 6 January deals, a dead letter, 3 February ones, loaded
    script = tmp_path / "engine_main.py"
    script.write_text(ENGINE)
    proc = await trio.lowlevel.open_process([sys.executable, str(script), str(route), str(led), str(REPO),
                                             base64.b64encode(KEY).decode()], stdout=subprocess.PIPE)
    acked: list[str] = []
    try:
        with trio.fail_after(30):
            m, _ = await read_until(proc.stdout, rb"serving (\d+)\n")
            front = int(m[1])
            c = await Client.open(front)
            refs = [f"K{i:03d}" for i in range(40)]
            await c.send(*[b'{"ref":"%s","amount":10.25}' % r.encode() for r in refs])
            for r in await c.recv_json(40):
                assert r["code"] == "00"
                acked.append(r["ref"])
        proc.kill()                                     # SIGKILL: no drain, nothing loaded into DuckDB
        await proc.wait()
        await c.aclose()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stdout.aclose()
    assert len(acked) == 40 and q(led, "SELECT count(*) FROM deals WHERE reference LIKE 'K%'") == [(0,)]
    jdir = journal_dir(led)
    before = sha(led)

    # received today: with --before tomorrow they belong to the period, yet they are not in the ledger
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%d")
    res = bsp("ledger", "archive", "--before", tomorrow, "--out", str(arc), "--ledger", str(led), "--yes")
    assert res.exit_code == 1, res.output
    assert f"{jdir}: 40 deal(s) acknowledged by the engine are only in its journal" in res.output, res.output
    assert "left in flight" not in res.output          # answered: their rows wait in the journal
    assert "Start the engine once" in res.output and "nothing was changed" in res.output
    assert sha(led) == before and not arc.exists() and any(jdir.glob("*.wal"))

    # as told: the engine starts (loading them) and stops; the archive then takes them with their period
    async with open_journaled_ledger(led, audit_key=KEY) as started:
        assert started.stats.recovered_rows == 40
    res = bsp("ledger", "archive", "--before", tomorrow, "--out", str(arc), "--ledger", str(led), "--yes")
    assert res.exit_code == 0, res.output
    assert q(arc, "SELECT count(*) FROM deals WHERE reference LIKE 'K%'") == [(40,)]
    assert q(led, "SELECT count(*) FROM deals") == [(0,)]
    assert bsp("audit", "verify", "--ledger", str(led), "--archive", str(arc)).exit_code == 0
