"""An auditor's view of a deal's dead letter (docs/tour-auditor.md):

- `bsp deals show ID` (text and --json) names the deal's dead letter with its id, status, reason and retries also
  when it was never retried: such a letter has no status event, so the story said nothing of it (until
  2026-11-28); a retry refused again names the letter where the message waits now, with the retry's outcome.
- `bsp audit verify` names a rejected or failed deal whose dead-letter row was deleted (deal id, seq): a letter
  whose status never changed has no status event, so its deletion showed only as a gap in the chain.  A purged
  letter stays as a tombstone (not named); a duplicate keeps no letter (not named).

Real engine (a switchboard on loopback) writing a real DuckDB ledger with an audit key; the tampering is done with
duckdb on a copy, as someone with the file would."""
from __future__ import annotations

import base64
from pathlib import Path

import duckdb
import orjson
import pytest
import trio
from typer.testing import CliRunner

from engine.audit import verify
from engine.cli import app
from engine.deadletter import WAITS_AGAIN, purge, retry_once, switchboard_injector
from engine.ledger import open_ledger
from engine.ledger_query import query_dead_letters
from kit import Client, compile_text, deals, switchboard

KEY = bytes(range(32))

ROUTE = """
format Req = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2  on error reply Req { code = error.code } }
route pay {
    receive from front as Req
    deal PAY { key = msg.ref  ref = msg.ref  amount = msg.amount  currency = "CNY" }
    validate { msg.amount < 100 else reject "13" "amount over the limit" }
    reply Req { ref = msg.ref  code = "00" }
    on error reply Req { ref = msg.ref  code = error.code }
}
"""


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BSP_AUDIT_KEY", "BSP_AUDIT_KEY_FILE", "BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())


async def _serve(tmp_path: Path, retry: str | None = None) -> tuple[Path, dict[str, dict]]:
    """A ledger written by the engine: C1 committed, C1 again (duplicate), R1 and R2 rejected (validate), one
    malformed request; ``retry``: the reference whose letter is retried (refused again: a letter of its own)."""
    led = tmp_path / "l.duckdb"
    prog = compile_text(tmp_path, ROUTE)
    async with open_ledger(led, audit_key=KEY, keyring=None) as ledger:
        async with switchboard(prog, ledger) as sb:
            c = await Client.open(sb.channel("front").port)
            with trio.fail_after(60):           # a guard against a hang, not a timing
                await _ask(c)
            await c.aclose()
            if retry is not None:
                con = ledger._store.connection           # the file is the engine's while it runs
                [(lid,)] = con.execute("SELECT deal_id FROM deals WHERE reference = ?", [retry]).fetchall()
                [letter] = query_dead_letters(led, ids=[lid], limit=None, with_raw=True, con=con)
                with trio.fail_after(60):
                    await retry_once(ledger, letter, switchboard_injector(sb))
    rows = deals(led)
    return led, {d["reference"] or d["status"]: d for d in rows}


async def _ask(c: Client) -> None:
    for body in (b'{"ref": "C1", "amount": 5}', b'{"ref": "C1", "amount": 5}', b'{"ref": "R1", "amount": 500}',
                 b'{"ref": "R2", "amount": 600}', b'{"ref": "M1", "amount": '):
        await c.send(body)
        await c.recv(1)


def _show(led: Path, deal_id: str, *extra: str) -> str:
    r = CliRunner().invoke(app, ["deals", "show", deal_id, "--ledger", str(led), *extra])
    assert r.exit_code == 0, r.output
    return r.stdout


def _breaks(path: Path) -> list:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return verify(con, path, KEY).breaks
    finally:
        con.close()


def _copy(led: Path, name: str, *stmts: str) -> Path:
    f = led.parent / name
    f.write_bytes(led.read_bytes())
    con = duckdb.connect(str(f))
    try:
        for s in stmts:
            con.execute(s).fetchall()
    finally:
        con.close()
    return f


async def test_deals_show_names_a_letter_never_retried(tmp_path: Path) -> None:
    led, by = await _serve(tmp_path)
    r1 = by["R1"]["deal_id"]
    assert by["R1"]["status"] == "rejected"
    text = _show(led, r1)
    assert f"its message waits as dead letter {r1} (new)" in text, text
    assert f"  {r1}  new  kind rejected" in text or f"  {r1}  new  kind " in text, text
    assert "reason: " in text.split("dead letter:")[1] and "amount over the limit" in text.split("dead letter:")[1]
    assert "retries: none" in text, text
    story = orjson.loads(_show(led, r1, "--json"))
    [letter] = story["dead_letters"]
    assert letter["id"] == r1 and letter["status"] == "new" and letter["retries"] == [], letter
    assert "amount over the limit" in letter["reason"] and letter["message_kept"] is True, letter
    assert isinstance(letter["chain_seq"], int), letter
    # a committed deal and a duplicate have none
    for ref in ("C1",):
        assert orjson.loads(_show(led, by[ref]["deal_id"], "--json"))["dead_letters"] == []
        assert "dead letter" not in _show(led, by[ref]["deal_id"])


async def test_deals_show_follows_a_retry_refused_again_to_the_letter_where_the_message_waits(tmp_path: Path) -> None:
    led, by = await _serve(tmp_path, retry="R2")
    first = [d for d in by.values() if d["reference"] == "R2"]
    rows = [d for d in deals(led) if d["reference"] == "R2"]
    assert len(rows) == 2 and first, rows        # the original and its retry's deal, both rejected
    orig, again = sorted(rows, key=lambda d: d["received_at"])
    story = orjson.loads(_show(led, orig["deal_id"], "--json"))
    own, nxt = story["dead_letters"]
    assert own["id"] == orig["deal_id"] and own["status"] == "retried", own
    assert own["retry_outcome"].endswith(WAITS_AGAIN + again["deal_id"]), own
    assert [r["status"] for r in own["retries"]] == ["retrying", "retried"], own["retries"]
    assert own["retries"][-1]["outcome"].startswith(f"rejected (deal {again['deal_id']})"), own["retries"]
    assert nxt["id"] == again["deal_id"] and nxt["status"] == "new" and nxt["retries"] == [], nxt
    text = _show(led, orig["deal_id"])
    assert "dead letters:" in text and f"{again['deal_id']}  new  kind rejected" in text and "a retry's deal, refused again" in text, text
    assert "-> retried: rejected (deal " in text, text
    assert f"its message waits as dead letter {again['deal_id']} (new)" in text, text


async def test_audit_verify_names_a_rejected_deal_whose_letter_was_deleted(tmp_path: Path) -> None:
    led, by = await _serve(tmp_path)
    assert _breaks(led) == []
    r1, r2 = by["R1"], by["R2"]
    # purged: the row stays as a tombstone, nothing to name
    assert purge(_copy(led, "p.duckdb"), [r1["deal_id"]], audit_key=KEY) == 1
    assert _breaks(led.parent / "p.duckdb") == []
    f = _copy(led, "gone.duckdb", f"DELETE FROM dead_letters WHERE id = '{r1['deal_id']}'")
    named = [b for b in _breaks(f) if b.record == r1["deal_id"]]
    assert len(named) == 1, [str(b) for b in _breaks(f)]
    assert named[0].seq == r1["chain_seq"] and "has no dead letter" in named[0].what, str(named[0])
    assert "rejected deal" in named[0].what, str(named[0])
    # the rest are not named: R2 keeps its letter, C1 committed, its repeat a duplicate (no letter)
    assert not [b for b in _breaks(f) if b.record in (r2["deal_id"], by["C1"]["deal_id"])]
    # the verdict of `bsp audit verify` names it (exit 1)
    r = CliRunner().invoke(app, ["audit", "verify", "--ledger", str(f)])
    assert r.exit_code == 1, r.output
    assert r1["deal_id"] in r.output and f"seq {r1['chain_seq']}" in r.output, r.output
    # both gone, the purged one (a tombstone) too: both named, in seq order
    g = _copy(led, "both.duckdb", "DELETE FROM dead_letters")
    assert [b.record for b in _breaks(g) if "has no dead letter" in b.what] == sorted(
        (d["deal_id"] for d in by.values() if d["status"] in ("rejected", "failed")),
        key=lambda i: next(d["chain_seq"] for d in by.values() if d["deal_id"] == i))
