"""The dead-letter desk as the operator meets it each morning (`bsp dead list | show | retry | purge`): what a
user would call a bug, each pinned by a test.  Real CLI commands on real keyed DuckDB ledgers."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest
import trio

from engine.ledger_query import query_dead_letters, query_deals
from test_deadletter import KEY, chain_ok, cli, fill

OTHER = """
format Req = json
channel mainframe = tcp listen { address = "127.0.0.1:0" framing = length2 }
route other {
    receive from mainframe as Req
    deal OTHER { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Req { ref = msg.ref  code = "00" }
    on error reply Req { ref = msg.ref  code = error.code }
}
"""


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BSP_AUDIT_KEY_FILE", "BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE", "BSP_ENV"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())


def test_a_retry_whose_route_is_gone_names_the_route_and_the_letter_keeps_waiting(tmp_path: Path) -> None:
    """d-timeout was failed by route bill_payment, which the current configuration no longer has (its channel is
    still there): re-injected, the message would meet whatever route takes the channel now.  Nothing runs; the
    message names the route and what to do, and the letter stays new (before: it ran as a malformed deal of no
    route, and its letter became another one)."""
    path = tmp_path / "l.duckdb"
    trio.run(fill, path)
    route = tmp_path / "other.route"
    route.write_text(OTHER)
    res = cli("retry", "d-timeout", "--ledger", str(path), "--routes", str(route))
    assert res.exit_code == 1, res.output
    assert res.output.splitlines() == [
        "d-timeout: NOT retried: failed: route 'bill_payment', which failed this letter, is not in the current "
        "configuration (routes: other); nothing ran and the letter still waits: load a configuration with route "
        "'bill_payment' (bsp reload), then retry it, or purge it (bsp dead purge d-timeout) and have its sender "
        "send it again"], res.output
    assert query_deals(path) == []
    [row] = query_dead_letters(path, ids=["d-timeout"])
    assert row["status"] == "new" and row["retry_outcome"].startswith("failed: route 'bill_payment'"), row
    assert len(query_dead_letters(path, limit=None)) == 3       # no letter of a new deal
    assert chain_ok(path)


async def _retried(path: Path, lid: str) -> None:
    from datetime import datetime, timezone

    from engine.ledger import open_ledger

    async with open_ledger(path, audit_key=KEY) as ledger:
        await ledger.mark_dead_letters([lid], status="retried", retried_at=datetime.now(timezone.utc),
                                       retry_outcome="committed (deal 0192f3a4b5c6d7e8f9a0b1c2d3e4f5a6)")


def test_purge_by_filters_leaves_the_letters_that_still_wait_unless_named(tmp_path: Path) -> None:
    """`bsp dead purge --yes` (every letter) deleted the messages of letters nobody had retried yet: a payment
    lost for good.  Filters now leave what waits and say so; --include-waiting or --status new names them."""
    path = tmp_path / "l.duckdb"
    trio.run(fill, path)
    trio.run(_retried, path, "d-timeout")
    res = cli("purge", "--ledger", str(path), "--yes")
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[1].startswith("left 2 dead letter(s) that still wait"), res.output
    status = {r["id"]: r["status"] for r in query_dead_letters(path, limit=None)}
    assert status == {"d-timeout": "purged", "d-web": "new", "d-old": "new"}
    res = cli("purge", "d-web", "--ledger", str(path), "--yes")          # by id: named, purged
    assert res.exit_code == 0 and res.output.startswith("purged 1 dead letter(s)"), res.output
    res = cli("purge", "--ledger", str(path), "--yes", "--include-waiting")
    assert res.exit_code == 0 and res.output.startswith("purged 1 dead letter(s)"), res.output
    assert {r["status"] for r in query_dead_letters(path, limit=None)} == {"purged"}
    assert chain_ok(path)


def test_purge_on_a_terminal_asks_first(tmp_path: Path) -> None:
    """On a terminal, `bsp dead purge --older-than 30d` asks before deleting messages for good; no: nothing."""
    import os
    import pty
    import subprocess
    import sys

    from kit import REPO

    path = tmp_path / "l.duckdb"
    trio.run(fill, path)
    trio.run(_retried, path, "d-old")
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "dead", "purge", "--ledger", str(path),
                                 "--older-than", "30d"], stdin=slave, stdout=slave, stderr=slave, cwd=str(REPO),
                                env={**os.environ, "BSP_AUDIT_KEY": base64.b64encode(KEY).decode()})
        os.close(slave)
        seen = b""
        while b"deleted for good)?" not in seen:
            try:
                chunk = os.read(master, 4096)
            except OSError:             # EIO: the command ended, the terminal closed, without asking
                chunk = b""
            assert chunk, seen
            seen += chunk
        os.write(master, b"n\n")
        assert proc.wait(timeout=60) == 1
    finally:
        os.close(master)
    assert query_dead_letters(path, ids=["d-old"], with_raw=True)[0]["raw"] is not None


async def _odd_letters(path: Path) -> None:
    from datetime import datetime, timezone

    from engine.deal import DeadLetter
    from engine.ledger import open_ledger

    now = datetime.now(timezone.utc)
    async with open_ledger(path, audit_key=KEY) as ledger:
        for lid, raw, reason in (
                ("esc", b'\x1b]0;pwned\x07\x1b[2J{"ref":"R1"}', "counterpart said \x1b[31mNO\x1b[0m"),
                ("iso", bytes.fromhex("0200723800010e80c000") + b"1234567890" + bytes(range(0x80, 0x86)), "bitmap"),
                ("utf8", '{"name":"张三","ref":"R2"}\r\n'.encode(), "rejected")):
            await ledger.dead_letter(DeadLetter(route=None, channel="front", reason=reason, raw=raw,
                                                config_version="v1", error_kind="malformed", at=now, id=lid))


def test_show_never_sends_terminal_controls_and_dumps_binary_with_offsets(tmp_path: Path) -> None:
    """`bsp dead show` printed a stored message that was ASCII as it is: its ESC sequences retitled or cleared
    the operator's terminal (the list escapes them); binary was one long line of hex, UTF-8 text hex too."""
    path = tmp_path / "l.duckdb"
    trio.run(_odd_letters, path)
    res = cli("show", "esc", "--ledger", str(path), "--reveal")
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.output and "\x07" not in res.output, repr(res.output)
    assert "counterpart said \\x1b[31mNO\\x1b[0m" in res.output
    assert "26 bytes, binary: offset, hex, ASCII" in res.output, res.output
    assert "00000000      0  1b 5d 30 3b 70 77 6e 65  64 07 1b 5b 32 4a 7b 22  |.]0;pwned..[2J{\"|" in res.output
    res = cli("show", "iso", "--ledger", str(path), "--reveal")
    lines = res.output.splitlines()
    assert lines[-2] == "00000000      0  02 00 72 38 00 01 0e 80  c0 00 31 32 33 34 35 36  |..r8......123456|"
    assert lines[-1] == "00000010     16  37 38 39 30 80 81 82 83  84 85                    |7890......|"
    res = cli("show", "utf8", "--ledger", str(path), "--reveal")
    assert '{"name":"张三","ref":"R2"}\\x0d' in res.output.splitlines(), res.output      # read as text


async def _many(path: Path, n: int) -> None:
    from datetime import datetime, timedelta, timezone

    from engine.deal import DeadLetter
    from engine.ledger import open_ledger

    now = datetime.now(timezone.utc)
    async with open_ledger(path, audit_key=KEY) as ledger:
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(ledger.dead_letter, DeadLetter(
                    route=None, channel="front", reason="channel back: unreachable", raw=b'{"ref":"R%d"}' % i,
                    config_version="v1", error_kind="unreachable", at=now - timedelta(seconds=i), id=f"m{i:03d}"))


def test_a_list_cut_at_its_limit_says_more_match(tmp_path: Path) -> None:
    """60 letters wait; `bsp dead list` showed the newest 50 and nothing else: the operator took 50 for all."""
    path = tmp_path / "l.duckdb"
    trio.run(_many, path, 60)
    hint = ("more dead letters match: the newest 50 are shown; --limit 0 lists every one (or narrow the filters: "
            "--since, --kind, --route ...)")
    res = cli("list", "--ledger", str(path))
    lines = res.stdout.splitlines()
    assert res.exit_code == 0 and lines[-1] == hint, res.output
    assert len(lines) == 2 + 50 + 1 and lines[2].startswith("m000") and lines[-2].startswith("m049"), lines[:3]
    res = cli("list", "--ledger", str(path), "--limit", "0")
    assert len(res.stdout.splitlines()) == 2 + 60 and hint not in res.output
    res = cli("list", "--ledger", str(path), "--limit", "60")
    assert len(res.stdout.splitlines()) == 2 + 60 and hint not in res.output
    res = cli("list", "--ledger", str(path), "--json")
    assert len(res.stdout.splitlines()) == 50 and hint in res.stderr, res.stderr      # JSON lines stay JSON


def test_a_time_range_backwards_is_a_usage_error_not_an_empty_list(tmp_path: Path) -> None:
    """--since after --until (swapped) listed "no dead letters match" without --live (the engine's API says
    since must be before until): read as nothing waiting.  Now a usage error naming both, for list and retry."""
    path = tmp_path / "l.duckdb"
    trio.run(fill, path)
    for args in (("list",), ("retry", "--dry-run")):
        res = cli(*args, "--ledger", str(path), "--since", "2026-01-02", "--until", "2026-01-01")
        said = " ".join(res.output.replace("│", " ").split())
        assert res.exit_code == 2, (args, res.output)
        assert ("--since 2026-01-02 (2026-01-02 00:00:00 UTC) is not before --until 2026-01-01 "
                "(2026-01-01 00:00:00 UTC): no dead letter can match") in said, said


def test_retry_all_selects_every_letter_that_waits(tmp_path: Path) -> None:
    """After an outage the operator types `bsp dead retry --all`: it was "No such option"; any filter had to be
    made up (--status new) to say "everything".  --all selects as filters do: retried ones left out."""
    path = tmp_path / "l.duckdb"
    trio.run(fill, path)
    trio.run(_retried, path, "d-timeout")
    res = cli("retry", "--all", "--dry-run", "--ledger", str(path))
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[-1] == "2 to retry, 1 already retried, 0 purged", res.output
    res = cli("retry", "--all", "d-web", "--ledger", str(path), "--routes", str(tmp_path))
    assert res.exit_code == 2 and "(or --all), not both" in " ".join(res.output.replace("│", " ").split())
