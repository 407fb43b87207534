"""Dead letters in a real ledger: stored group-committed, listed with filters, retried, purged."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest
import trio
import typer
from typer.testing import CliRunner

from engine.audit import verify
from engine.commands.dead import register
from engine.deadletter import raw_bytes, retry
from engine.deal import DeadLetter, DealError
from engine.fieldcrypt import Keyring
from engine.ledger import open_ledger
from engine.ledger_query import query_dead_letters, query_deals

NOW = datetime.now(timezone.utc).replace(microsecond=0)
KEY = bytes(range(32))
PAN = b"4111111111111111"


def letters() -> list[DeadLetter]:
    return [
        DeadLetter(route=None, channel="mainframe", reason="no route took it", raw=b"0200" + PAN,
                   config_version="v1", error_kind="unrouted", at=NOW - timedelta(days=40), id="d-old"),
        DeadLetter(route="bill_payment", channel="mainframe", reason="biller timed out after 5s", raw=b"PAY1",
                   config_version="v1", error_kind="timeout", error_code="91", at=NOW - timedelta(hours=2),
                   id="d-timeout"),
        DeadLetter(route=None, channel="web", reason="bad frame at stream byte 4", raw=b"\xff\xfe",
                   config_version="v2", error_kind="malformed", at=NOW - timedelta(minutes=5), id="d-web"),
    ]


async def fill(path: Path, keyring: Keyring | None = None) -> None:
    async with open_ledger(path, audit_key=KEY, keyring=keyring) as ledger:
        async with trio.open_nursery() as nursery:       # concurrent: one group-committed batch
            for letter in letters():
                nursery.start_soon(ledger.dead_letter, letter)
        with pytest.raises(DealError, match="dead letter x: field raw: expected the received bytes"):
            await ledger.dead_letter(DeadLetter(route=None, channel="c", reason="r", raw="text",  # type: ignore[arg-type]
                                                config_version="v1", id="x"))


def chain_ok(path: Path) -> bool:
    con = duckdb.connect(str(path), read_only=True)
    try:
        report = verify(con, path, KEY)
    finally:
        con.close()
    return report.ok


async def test_stored_and_filtered(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path)
    ids = lambda **kw: [r["id"] for r in query_dead_letters(path, **kw)]  # noqa: E731
    assert ids() == ["d-web", "d-timeout", "d-old"]                 # newest first
    assert ids(channel="mainframe") == ["d-timeout", "d-old"]
    assert ids(route="bill_payment") == ["d-timeout"]
    assert ids(reason="TIMED OUT") == ["d-timeout"]
    assert ids(since=NOW - timedelta(days=1)) == ["d-web", "d-timeout"]
    assert ids(until=NOW - timedelta(days=1)) == ["d-old"]
    assert ids(status="new", limit=1) == ["d-web"]
    [row] = query_dead_letters(path, ids=["d-timeout"], with_raw=True)
    assert row["raw"] == b"PAY1" and row["error_code"] == "91" and row["status"] == "new"
    assert chain_ok(path)


async def test_raw_is_encrypted_with_a_keyring(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    ring = Keyring("k1", {"k1": bytes(32)})
    await fill(path, ring)
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert PAN not in data
    [row] = query_dead_letters(path, ids=["d-old"], with_raw=True)
    assert row["raw_key"] == "k1" and raw_bytes(row, ring) == b"0200" + PAN
    with pytest.raises(Exception, match="dead letter d-old: its message is encrypted with key 'k1'"):
        raw_bytes(row, None)


async def test_retry_reinjects_the_raw_bytes(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    await fill(path)
    seen: list[tuple[str, bytes]] = []

    async def injector(channel: str, raw: bytes) -> str:
        seen.append((channel, raw))
        return "committed" if raw == b"PAY1" else "failed: no route"

    rows = {r["id"]: r for r in query_dead_letters(path, with_raw=True)}
    ok = await retry(rows["d-timeout"], injector)
    bad = await retry(rows["d-web"], injector)
    assert seen == [("mainframe", b"PAY1"), ("web", b"\xff\xfe")]
    assert ok.ok and ok.outcome == "committed"
    assert not bad.ok and bad.outcome == "failed: no route"

    async def broken(channel: str, raw: bytes) -> str:
        raise ConnectionRefusedError("biller down")

    res = await retry(rows["d-timeout"], broken)
    assert not res.ok and res.outcome == "failed: ConnectionRefusedError: biller down"
    async with open_ledger(path, audit_key=KEY) as ledger:
        assert await ledger.mark_dead_letters(["d-timeout"], status="retried", retried_at=ok.at,
                                              retry_outcome=ok.outcome) == 1
    [row] = query_dead_letters(path, ids=["d-timeout"])
    assert row["status"] == "retried" and row["retry_outcome"] == "committed"
    assert chain_ok(path)             # status and outcome are outside the mac


def cli(*args: str):
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    register(app)
    return CliRunner().invoke(app, ["dead", *args])


def test_cli_list_show_purge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())
    monkeypatch.delenv("BSP_FIELD_KEYS", raising=False)
    monkeypatch.delenv("BSP_FIELD_KEYS_FILE", raising=False)
    path = tmp_path / "l.duckdb"
    trio.run(fill, path)
    res = cli("list", "--ledger", str(path), "--channel", "mainframe", "--since", "7d")
    assert res.exit_code == 0 and "d-timeout" in res.output and "d-old" not in res.output
    # a line naming the ledger, then the column names over aligned columns (--live prints the same)
    title, head, row = res.stdout.splitlines()
    assert title == f"dead letters waiting (new or retrying; --all lists every status) in {path}"
    assert head.split() == ["id", "at", "(UTC)", "status", "channel", "route", "kind", "code", "reason"]
    assert row.split()[3:] == ["new", "mainframe", "bill_payment", "timeout", "91", "biller", "timed", "out", "after",
                               "5s"]
    assert head.index("channel") == row.index("mainframe") and head.index("reason") == row.index("biller")
    res = cli("list", "--ledger", str(path), "--status", "purged")
    assert res.stdout.splitlines() == [f"dead letters in {path}", "no dead letters match these filters"]
    res = cli("list", "--ledger", str(path), "--json", "--reason", "bad frame")
    assert [json.loads(line)["id"] for line in res.stdout.splitlines()] == ["d-web"]
    res = cli("show", "d-timeout", "--ledger", str(path), "--reveal")
    assert res.exit_code == 0 and "biller timed out" in res.output and "PAY1" in res.output
    assert cli("show", "nope", "--ledger", str(path)).exit_code == 1
    res = cli("purge", "--ledger", str(path))
    assert res.exit_code == 2 and "--older-than" in res.output
    res = cli("purge", "d-timeout", "d-typo", "--yes", "--ledger", str(path))     # a mistyped id: nothing purged
    assert res.exit_code == 1 and "no dead letter d-typo; nothing purged" in res.output
    assert query_dead_letters(path, ids=["d-timeout"], with_raw=True)[0]["raw"] is not None
    res = cli("purge", "--ledger", str(path), "--older-than", "last week")
    assert res.exit_code == 2 and "--older-than" in res.output and "--until" not in res.output
    # d-old still waits (new, never retried): by filters it is left, and said so, until named explicitly
    res = cli("purge", "--ledger", str(path), "--older-than", "30d")
    assert res.exit_code == 0 and res.output.splitlines() == [
        f"purged 0 dead letter(s) in {path}; the file is unchanged",
        "left 1 dead letter(s) that still wait (new, not yet retried into a deal, or retrying): `bsp dead list` "
        "shows them; retry them, or add --include-waiting (or --status new) to purge them too"], res.output
    assert query_dead_letters(path, ids=["d-old"], with_raw=True)[0]["raw"] is not None
    res = cli("purge", "--ledger", str(path), "--older-than", "30d", "--include-waiting")
    # the output says which ledger and that its file was rewritten (docs/ledger.md#dead-letters)
    assert res.exit_code == 0 and res.output.strip() == (
        f"purged 1 dead letter(s) in {path}; the file was rewritten without their messages (their rows stay, "
        f"status purged)"), res.output
    res = cli("purge", "--ledger", str(path), "--older-than", "30d", "--status", "new")
    assert res.exit_code == 0 and res.output.strip() == (
        f"purged 0 dead letter(s) in {path}; nothing matched, the file is unchanged"), res.output
    [old] = query_dead_letters(path, ids=["d-old"], with_raw=True)
    assert old["status"] == "purged" and old["raw"] is None and old["raw_sha256"]
    assert chain_ok(path)             # a tombstone, not a gap in the chain
    res = cli("retry", "d-old", "--ledger", str(path))
    said = " ".join(res.output.replace("│", " ").split())         # rich wraps the usage error in a box
    assert res.exit_code == 2 and "--live for the running engine" in said and "--routes PATH" in said


def test_cli_retry_in_process_runs_the_current_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    for var in ("BSP_AUDIT_KEY_FILE", "BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE"):
        monkeypatch.delenv(var, raising=False)
    # the key the ledger's chain was sealed with (fill): a keyed ledger is not written without it
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())
    routes = Path(__file__).resolve().parents[2] / "routes" / "bill_payment"
    path = tmp_path / "l.duckdb"
    trio.run(fill, path)
    res = cli("retry", "d-timeout", "d-web", "--ledger", str(path), "--routes", str(routes))
    # PAY1 is too short for the bill payment layout: the route rejects it; "web" is not a channel any more
    assert res.exit_code == 1, res.output
    [d] = query_deals(path)
    assert d["channel"] == "mainframe" and d["status"] == "rejected" and d["request"] == b"PAY1".hex()
    # the new deal and why it was refused again, as the ledger stores it: no second command to find out
    refused = f"rejected (deal {d['deal_id']}): {d['reason']}"
    assert "the layout is 65 bytes" in d["reason"]
    # the new deal left a dead letter of its own, where the message waits now: the first one names it
    waits = f"the message waits again as dead letter {d['deal_id']}"
    assert res.output.splitlines() == [
        f"d-timeout: NOT retried: {refused}; {waits}",
        "d-web: NOT retried: failed: the current configuration has no inbound channel 'web' (inbound: mainframe); "
        "nothing ran and the letter still waits: load a configuration with channel 'web' (bsp reload), then retry "
        "it, or purge it and have its sender send it again"]
    [row] = query_dead_letters(path, ids=["d-timeout"])
    from engine.operator import os_user          # who retried it, beside the outcome (engine/operator.py)
    assert row["status"] == "retried"
    assert row["retry_outcome"] == f"{refused} (bsp dead retry, by {os_user()!r}); {waits}"
    assert row["retried_at"] is not None
    [new] = query_dead_letters(path, ids=[d["deal_id"]], with_raw=True)
    assert new["status"] == "new" and bytes(new["raw"]) == b"PAY1"
    # nothing ran: d-web still waits, as it was
    [web] = query_dead_letters(path, ids=["d-web"])
    assert web["status"] == "new"


def test_cli_list_takes_the_ledger_from_the_deployment_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `bsp dead list --deployment platform.yaml` as `bsp dead show / retry / purge`: the file's ledger
    # (relative to the file); --ledger still wins
    for var in ("BSP_AUDIT_KEY", "BSP_AUDIT_KEY_FILE", "BSP_ENV"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path.parent)
    trio.run(fill, tmp_path / "l.duckdb")
    (tmp_path / "r.route").write_text("")
    deployment = tmp_path / "platform.yaml"
    deployment.write_text("routes: [r.route]\nledger: l.duckdb\nenvironments:\n  uat:\n    ledger: uat.duckdb\n")
    res = cli("list", "--deployment", str(deployment), "--json")
    assert res.exit_code == 0, res.output
    assert [json.loads(line)["id"] for line in res.stdout.splitlines()] == ["d-web", "d-timeout", "d-old"]
    res = cli("list", "--deployment", str(deployment), "--env", "uat")
    assert res.exit_code == 2 and f"{tmp_path / 'uat.duckdb'}: no ledger file" in res.output, res.output
    res = cli("list", "--deployment", str(deployment), "--env", "uat", "--ledger", str(tmp_path / "l.duckdb"))
    assert res.exit_code == 0 and res.stdout.startswith(f"dead letters waiting (new or retrying; --all lists every "
                                                        f"status) in {tmp_path / 'l.duckdb'}\n"), res.output


def test_cli_an_id_prefix_is_told_to_give_the_whole_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `bsp deals show` takes an 8+ digit prefix; dead letters do not: a prefix copied from the deals habit
    # is told so, not only "no dead letter"
    monkeypatch.delenv("BSP_AUDIT_KEY", raising=False)
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    path = tmp_path / "l.duckdb"
    trio.run(fill, path)
    whole = "(a dead letter is found by its whole 32-digit id, as `bsp dead list` prints it, not by a prefix)"
    res = cli("show", "0192f3a4b5c6", "--ledger", str(path))
    assert res.exit_code == 1 and f"no dead letter '0192f3a4b5c6' {whole}" in res.output, res.output
    res = cli("retry", "0192f3a4b5c6", "--ledger", str(path), "--routes", str(tmp_path))
    assert res.exit_code == 1 and f"no dead letter 0192f3a4b5c6 {whole}" in res.output, res.output
    res = cli("purge", "0192f3a4b5c6", "--yes", "--ledger", str(path))
    assert res.exit_code == 1 and f"no dead letter 0192f3a4b5c6 {whole}; nothing purged" in res.output, res.output
    res = cli("show", "d-typo", "--ledger", str(path))             # not a hex prefix: no such hint
    assert res.exit_code == 1 and "not by a prefix" not in res.output


def test_cli_retry_takes_routes_ledger_and_keys_from_the_deployment_file(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # `bsp dead retry --deployment platform.yaml` runs what bsp run would serve: the file's routes, its
    # ledger and keys; an explicit --routes wins over the file's routes
    for var in ("BSP_AUDIT_KEY", "BSP_AUDIT_KEY_FILE", "BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE", "BSP_ENV"):
        monkeypatch.delenv(var, raising=False)
    routes = Path(__file__).resolve().parents[2] / "routes"
    (tmp_path / "audit.key").write_text(base64.b64encode(KEY).decode())
    (tmp_path / "audit.key").chmod(0o600)
    deployment = tmp_path / "platform.yaml"
    deployment.write_text(f"""version: 1
routes:
  - {routes / "bill_payment" / "bill_payment.route"}
ledger:
  path: l.duckdb
  audit_key: {{file: audit.key}}
environments:
  stray:
    channels:
      nosuch: {{address: "127.0.0.1:1"}}
""")
    path = tmp_path / "l.duckdb"
    trio.run(fill, path)
    res = cli("retry", "d-timeout", "d-web", "--deployment", str(deployment))
    assert res.exit_code == 1, res.output
    [d] = query_deals(path)
    assert res.output.splitlines() == [
        f"d-timeout: NOT retried: rejected (deal {d['deal_id']}): {d['reason']}; the message waits again as dead "
        f"letter {d['deal_id']}",
        "d-web: NOT retried: failed: the current configuration has no inbound channel 'web' (inbound: mainframe); "
        "nothing ran and the letter still waits: load a configuration with channel 'web' (bsp reload), then retry "
        "it, or purge it and have its sender send it again"]
    [row] = query_dead_letters(path, ids=["d-timeout"])
    assert row["retry_outcome"].startswith(f"rejected (deal {d['deal_id']}): ") and row["retried_at"] is not None
    assert row["status"] == "retried"
    assert chain_ok(path)                    # written with the file's ledger.audit_key
    # the retried deal names the configuration version bsp run gives this deployment (the route files and the
    # files they name: bill payment's tables), as bsp check prints it
    from engine.ops.files import with_referenced_files
    from engine.registry import default_registry
    from dsl.load import compile_paths
    served = with_referenced_files(compile_paths([routes / "bill_payment" / "bill_payment.route"],
                                                 default_registry()).program)
    assert d["config_version"] == served.version
    # --routes wins over the file's routes (card payments: its inbound channel is another one)
    res = cli("retry", "d-web", "--deployment", str(deployment), "--routes", str(routes / "card_payments"))
    assert res.exit_code == 1 and "inbound: mainframe)" not in res.output and "no inbound channel 'web'" in res.output
    # the file's channel overrides are checked as bsp run checks them, naming their place
    res = cli("retry", "d-web", "--deployment", str(deployment), "--env", "stray")
    assert res.exit_code == 1 and "platform.yaml:" in res.output and "nosuch" in res.output, res.output


def test_purge_leaves_no_bytes_of_the_message_in_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # DuckDB writes an UPDATE to other blocks and only frees the old ones: without the rewrite, the
    # purged message stays readable in the file (checked: the marker is still there after the UPDATE)
    import os

    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())
    for var in ("BSP_AUDIT_KEY_FILE", "BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "l.duckdb"
    gone, kept = b"PURGE-ME-MARKER-7f3a", b"KEEP-ME-MARKER-9c1d"

    async def more() -> None:
        async with open_ledger(path, audit_key=KEY) as ledger:
            for i in range(40):
                await ledger.dead_letter(DeadLetter(route=None, channel="mainframe", reason="no route took it",
                                                    raw=(gone if i % 2 else kept) + os.urandom(300),
                                                    config_version="v1", id=f"m-{i:02d}",
                                                    at=NOW - timedelta(days=60 if i % 2 else 1)))

    trio.run(fill, path)
    trio.run(more)
    path.chmod(0o640)
    in_file = lambda marker: path.read_bytes().count(marker)  # noqa: E731
    assert in_file(gone) == 20 and in_file(kept) == 20
    res = cli("purge", "--ledger", str(path), "--older-than", "30d", "--status", "new")
    assert res.exit_code == 0 and "purged 21 dead letter(s)" in res.output, res.output
    assert in_file(gone) == 0 and in_file(PAN) == 0            # d-old (40 days) held the PAN
    assert in_file(kept) == 20                                   # the rest is all there
    # no copy of the old file left behind; beside the ledger only the chain's head kept outside it
    # (engine/audit_cut.py: a seq and macs, never a message byte)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.duckdb", "l.duckdb.audit-head"]
    head = (tmp_path / "l.duckdb.audit-head").read_bytes()
    assert head.count(gone) == 0 and head.count(PAN) == 0 and head.count(kept) == 0
    assert path.stat().st_mode & 0o777 == 0o640
    assert chain_ok(path)
    [old] = query_dead_letters(path, ids=["m-01"], with_raw=True)
    assert old["status"] == "purged" and old["raw"] is None and old["raw_sha256"]
    [new] = query_dead_letters(path, ids=["m-00"], with_raw=True)
    assert new["status"] == "new" and bytes(new["raw"]).startswith(kept)
    trio.run(_one_more, path)                 # still a ledger an engine opens and writes to
    assert chain_ok(path)


async def _one_more(path: Path) -> None:
    async with open_ledger(path, audit_key=KEY) as ledger:
        await ledger.dead_letter(DeadLetter(route=None, channel="c", reason="r", raw=b"after", config_version="v1",
                                            id="after-purge"))


def test_cli_purge_records_who_purged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A purge destroys a message for good: who did it is recorded in the letter's chained status event (as a
    retry's outcome names who retried), --by else the OS user, the OS user kept beside a --by naming another;
    the chain stays intact.  (Until 2026-11-28 the event said only {"status": "purged"}: nobody.)"""
    import getpass

    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())
    monkeypatch.delenv("BSP_FIELD_KEYS", raising=False)
    monkeypatch.delenv("BSP_FIELD_KEYS_FILE", raising=False)
    path = tmp_path / "l.duckdb"
    trio.run(fill, path)
    res = cli("purge", "d-web", "--yes", "--ledger", str(path), "--by", "\x07")
    assert res.exit_code == 2 and "--by" in res.output, res.output
    assert query_dead_letters(path, ids=["d-web"], with_raw=True)[0]["raw"] is not None     # nothing purged
    assert cli("purge", "d-web", "--yes", "--ledger", str(path), "--by", "auditor-ann").exit_code == 0
    assert cli("purge", "d-old", "--yes", "--ledger", str(path)).exit_code == 0
    con = duckdb.connect(str(path), read_only=True)
    try:
        got = {lid: json.loads(d) for lid, d in con.execute(
            "SELECT deal_id, detail FROM deal_events WHERE to_state = 'dead_letter' ORDER BY chain_seq").fetchall()}
    finally:
        con.close()
    web, old = got["d-web"], got["d-old"]
    assert web["status"] == "purged" and web["by"] == "auditor-ann" and web["via"] == "bsp dead purge", web
    assert web["host"] and web["os_user"] == getpass.getuser()
    assert old["by"] == getpass.getuser() and "os_user" not in old and old["via"] == "bsp dead purge", old
    assert chain_ok(path)
