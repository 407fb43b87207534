"""The ledger writes added on 2026-11-27 stay tamper-evident: each new kind of record, written by the real engine
on a ledger opened with an audit key, verifies clean, and `bsp audit verify` (engine.audit.verify) names it when
the DuckDB file is edited by hand: modified, deleted, or moved (its chain_seq swapped with its neighbour's).
`bsp deals show` tells the new events; no classified value or `match` value is written in clear.

* a deal recorded late after a full disk, with its event `reply_not_sent` (engine/txn/late_record.py);
* a repeat a step refused answered as a duplicate, its event carrying the `refused` note, and a repeat with
  another amount refused `key_conflict` (engine/txn/refused_repeat.py);
* a repeat naming another beneficiary account (`deal { match = ... }`): `key_conflict` with fields ["match"].

Real engine in process, real loopback counterparts, real DuckDB files edited with duckdb as an attacker would."""
from __future__ import annotations

import base64
import os
import shutil
from collections import Counter
from pathlib import Path

import duckdb
import orjson
import pytest
import trio
import typer
from typer.testing import CliRunner

from engine.audit import verify
from engine.commands.deals import register
from test_txn_refused_repeat import AT_1459, AT_1506, CUTOFF, DEAL, _route, ask, clocked, order
from txnkit import AUDIT_KEY, Client, audit_clean, compile_text, json_counterpart, rows, running


@pytest.fixture(autouse=True)
def _audit_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ledger of these tests is opened with the audit key, as `bsp run` with ledger.audit_key."""
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(AUDIT_KEY).decode())


def _edit(ledger: Path, dest: Path, *stmts: str) -> Path:
    shutil.copyfile(ledger, dest)
    con = duckdb.connect(str(dest))
    try:
        for s in stmts:
            con.execute(s).fetchall()
    finally:
        con.close()
    return dest


def _report(path: Path):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return verify(con, path, AUDIT_KEY)
    finally:
        con.close()


def tampering_is_named(ledger: Path, tmp: Path, seq: int, table: str, field: str, new_sql: str) -> None:
    """The record at ``seq`` of ``table``: its ``field`` set to ``new_sql``, the record deleted, and the record
    swapped with the one before it in the chain: verify names each, at that record."""
    last = rows(ledger, "SELECT chain_seq AS m FROM audit_head")[0]["m"]
    modified = _report(_edit(ledger, tmp / "modified.duckdb",
                             f"UPDATE {table} SET {field} = {new_sql} WHERE chain_seq = {seq}"))
    assert not modified.ok
    assert any(b.seq == seq and b.table == table and "modified" in b.what for b in modified.breaks), \
        [str(b) for b in modified.breaks]
    deleted = _report(_edit(ledger, tmp / "deleted.duckdb", f"DELETE FROM {table} WHERE chain_seq = {seq}"))
    assert not deleted.ok
    text = [str(b) for b in deleted.breaks]
    if seq == last:
        assert any(b.table == "audit_head" and "deleted" in b.what for b in deleted.breaks), text
    else:
        assert any(b.seq == seq and "missing" in b.what for b in deleted.breaks), text
    # moved: swapped with the record before it (any table), through a free seq
    before = seq - 1
    holder = [t for t in ("deals", "deal_steps", "deal_events", "dead_letters", "config_versions")
              if rows(ledger, f"SELECT count(*) AS n FROM {t} WHERE chain_seq = {before}")[0]["n"]][0]
    moved = _report(_edit(ledger, tmp / "moved.duckdb",
                          f"UPDATE {table} SET chain_seq = -1 WHERE chain_seq = {seq}",
                          f"UPDATE {holder} SET chain_seq = {seq} WHERE chain_seq = {before}",
                          f"UPDATE {table} SET chain_seq = {before} WHERE chain_seq = -1"))
    assert not moved.ok
    assert any("reordered" in b.what or "modified" in b.what for b in moved.breaks), \
        [str(b) for b in moved.breaks]


def show(ledger: Path, deal_id: str) -> str:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    register(app)
    res = CliRunner().invoke(app, ["deals", "show", deal_id, "--ledger", str(ledger)], terminal_width=250)
    assert res.exit_code == 0, res.output
    return res.output


def _event(ledger: Path, deal_id: str, to_state: str) -> dict:
    (ev,) = rows(ledger, "SELECT chain_seq, detail FROM deal_events WHERE deal_id = ? AND to_state = ?",
                 [deal_id, to_state])
    return {"seq": ev["chain_seq"], "detail": orjson.loads(ev["detail"])}


LATE = """
format Req = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel back = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 5s }
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY"  key = msg.ref }
    call post = back as Req reply Req { ref = msg.ref } expect post.status == "OK"
    reply Req { ref = msg.ref  code = "00" }
}
"""


async def test_a_late_recorded_deal_and_its_reply_not_sent_event_are_chained(tmp_path: Path) -> None:
    ledger = tmp_path / "l.duckdb"
    counts: Counter = Counter()

    def ok(req: dict) -> dict:
        counts[req["ref"]] += 1
        return {"status": "OK", "ref": req["ref"]}

    async with trio.open_nursery() as nursery:
        port = await json_counterpart(nursery, ok)
        program = compile_text(tmp_path, LATE % port)
        async with running(program, ledger, sync="journal") as sb:
            assert sb.ledger.audited
            c = await Client.open(sb.channel("front").port)
            jl = sb.ledger
            while not hasattr(jl, "_fd"):
                jl = jl._ledger
            good, jl._fd = jl._fd, os.open(tmp_path / "read-only", os.O_RDONLY | os.O_CREAT)   # the disk is full
            try:
                await c.send(b'{"ref":"K1"}')
                stats = sb.dispatchers["front"].stats
                with trio.fail_after(10):                   # a guard, not a timing
                    while stats.unrecorded < 1:
                        await trio.sleep(0.01)
            finally:
                os.close(jl._fd)
                jl._fd = good                               # room again
            await c.send(b'{"ref":"K2"}')
            assert [r["ref"] for r in await c.recv_json(1)] == ["K2"]
            await c.stream.aclose()
        nursery.cancel_scope.cancel()
    (k1,) = rows(ledger, "SELECT deal_id FROM deals WHERE reference = 'K1'")
    ev = _event(ledger, k1["deal_id"], "reply_not_sent")
    assert "no reply was sent" in ev["detail"]["reason"]
    audit_clean(ledger)
    tampering_is_named(ledger, tmp_path, ev["seq"], "deal_events", "detail",
                       "'{\"reason\": \"the reply was sent\"}'")
    # the deal's row written late is chained as any (its status changed by hand: named)
    (row,) = rows(ledger, "SELECT chain_seq FROM deals WHERE deal_id = ?", [k1["deal_id"]])
    tampering_is_named(ledger, tmp_path, row["chain_seq"], "deals", "status", "'rejected'")
    story = show(ledger, k1["deal_id"])
    assert "-> reply_not_sent" in story and "no reply was sent" in story, story


async def test_a_refused_repeat_answered_as_duplicate_and_a_key_conflict_are_chained(nursery, tmp_path: Path) -> None:
    program, ta = await _route(nursery, tmp_path, DEAL, CUTOFF)
    ledger = tmp_path / "l.duckdb"
    async with clocked(AT_1459) as now:
        async with running(program, ledger) as sb:
            assert sb.ledger.audited
            await ask(sb, order())
            now.fixed = AT_1506
            await ask(sb, order(msg_id="m2"), order(amount="9000.00", msg_id="m3"))
    audit_clean(ledger)
    (dup,) = rows(ledger, "SELECT deal_id FROM deals WHERE status = 'duplicate'")
    ev = _event(ledger, dup["deal_id"], "duplicate")
    assert ev["detail"]["refused"]["code"] == "57"
    # the refused note rewritten to hide that a step refused the repeat: named
    tampering_is_named(ledger, tmp_path, ev["seq"], "deal_events", "detail",
                       "json_object('original', 'x', 'key', 'order|O1')")
    (conflict,) = rows(ledger, "SELECT deal_id FROM deals WHERE response_code = '12'")
    kc = _event(ledger, conflict["deal_id"], "key_conflict")
    assert kc["detail"]["fields"] == ["amount"]
    # the key index names the original only: neither the duplicate nor the conflicting request took the key
    (original,) = rows(ledger, "SELECT deal_id FROM deals WHERE status = 'committed'")
    assert rows(ledger, "SELECT key, deal_id FROM deal_keys") == [{"key": "order|O1", "deal_id": original["deal_id"]}]
    tampering_is_named(ledger, tmp_path, kc["seq"], "deal_events", "detail", "'{}'")
    story = show(ledger, dup["deal_id"])
    assert "-> duplicate" in story and '"refused"' in story and "cut-off passed" in story, story
    assert "-> key_conflict" in show(ledger, conflict["deal_id"])


MATCH = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel credit = tcp connect { address = "127.0.0.1:%d" framing = length4 timeout = 2s }
route payout {
    receive from front as J
    deal CLAIM {
        ref = msg.claim  amount = msg.amount  currency = "EUR"  party = msg.product  key = msg.claim
        match = msg.iban
    }
    call c = credit as J reply J { op = "post"  ref = msg.claim  amount = msg.amount } expect c.status == "OK"
    reply J { ref = msg.claim  code = "00"  conf = c.conf }
    on error reply J { ref = msg.claim  code = error.code  kind = error.kind }
}
"""
IBAN = "DE89370400440532013000"
OTHER = "DE44500105175407324931"


async def test_a_key_conflict_on_the_match_is_chained(nursery, tmp_path: Path) -> None:
    from test_txn_key_conflict import ask as ask_port
    from txnkit import Counterpart

    credit = Counterpart()
    program = compile_text(tmp_path, MATCH % await json_counterpart(nursery, credit.answer))
    ledger = tmp_path / "l.duckdb"

    def claim(iban: str) -> dict:
        return {"claim": "C1", "amount": orjson.Fragment(b"100.00"), "product": "HEALTH01", "iban": iban}

    async with running(program, ledger) as sb:
        assert sb.ledger.audited
        await ask_port(sb.channel("front").port, claim(IBAN), claim(OTHER))
    audit_clean(ledger)
    (conflict,) = rows(ledger, "SELECT deal_id, reason FROM deals WHERE response_code = '12'")
    kc = _event(ledger, conflict["deal_id"], "key_conflict")
    assert kc["detail"]["fields"] == ["match"]
    assert [r["deal_id"] for r in rows(ledger, "SELECT deal_id FROM deal_keys")] == \
        [r["deal_id"] for r in rows(ledger, "SELECT deal_id FROM deals WHERE status = 'committed'")]
    tampering_is_named(ledger, tmp_path, kc["seq"], "deal_events", "detail",
                       "replace(detail, 'match', 'amount')")
    story = show(ledger, conflict["deal_id"])
    assert "-> key_conflict" in story and "match (a different value; not shown)" in story, story


async def test_a_settled_dead_letter_set_back_to_new_by_hand_is_named(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from engine.deal import DeadLetter, new_deal_id
    from engine.ledger import open_ledger

    ledger = tmp_path / "l.duckdb"
    at = datetime.now(timezone.utc)
    async with open_ledger(ledger, keyring=None) as led:
        assert led.audited
        await led.dead_letter(DeadLetter(route="pay", channel="front", reason="channel back: unreachable",
                                         raw=b'{"ref":"R1"}', config_version="v1", error_kind="unreachable", id="d1"))
        deal = new_deal_id()
        claimed, _ = await led.claim_dead_letter("d1", at=at, note="in progress", deal_id=deal)
        assert claimed
        # what retry_settle writes on the next start when the retry's deal committed
        await led.mark_dead_letters(["d1"], status="retried", retried_at=at,
                                    retry_outcome=f"committed (deal {deal}) (settled on restart)")
    audit_clean(ledger)
    edited = _report(_edit(ledger, tmp_path / "edited.duckdb",
                           "UPDATE dead_letters SET status = 'new', retried_at = NULL, retry_outcome = NULL"))
    assert not edited.ok
    (b,) = edited.breaks
    assert b.table == "dead_letters" and b.record == "d1" and "status 'new'" in b.what and "'retried'" in b.what \
        and "would run it again" in b.what, str(b)
    # the outcome changed (a failed retry made to read as committed, or the reverse)
    changed = _report(_edit(ledger, tmp_path / "changed.duckdb",
                            "UPDATE dead_letters SET retry_outcome = 'failed: counterpart down'"))
    assert [(b.table, b.record) for b in changed.breaks] == [("dead_letters", "d1")], [str(b) for b in changed.breaks]
    # the last status event deleted: a gap in the chain, and the letter no longer matches its last event
    gone = _report(_edit(ledger, tmp_path / "gone.duckdb",
                         "DELETE FROM deal_events WHERE deal_id = 'd1' AND seq = (SELECT max(seq) FROM deal_events "
                         "WHERE deal_id = 'd1')"))
    assert any(b.table == "dead_letters" and b.record == "d1" and "'retrying'" in b.what for b in gone.breaks), \
        [str(b) for b in gone.breaks]
    # every status event deleted (and the head moved back): the letter is named all the same
    events = rows(ledger, "SELECT chain_seq FROM deal_events WHERE deal_id = 'd1' ORDER BY chain_seq")
    assert len(events) == 2          # the claim, then what retry_settle wrote
    none = _report(_edit(ledger, tmp_path / "none.duckdb", "DELETE FROM deal_events WHERE deal_id = 'd1'",
                         f"UPDATE audit_head SET chain_seq = {events[0]['chain_seq'] - 1}"))
    assert any(b.table == "dead_letters" and b.record == "d1" and "no chained event" in b.what for b in none.breaks), \
        [str(b) for b in none.breaks]


UNFRAMEABLE = """
format J = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2  max_frame = 64 }
route pay {
    receive from front as J
    deal PAY { ref = msg.ref  amount = 1.00 }
    reply J { ref = msg.ref  note = msg.note  again = msg.note }
}
"""


async def test_a_reply_not_sent_event_appended_after_its_deal_is_chained(tmp_path: Path) -> None:
    """tcp listen: a reply the framing cannot carry; the event is appended after the deal's row (append_story)."""
    from formats.framing import LengthPrefixFramer

    program = compile_text(tmp_path, UNFRAMEABLE)
    ledger = tmp_path / "l.duckdb"
    f = LengthPrefixFramer(2)
    async with running(program, ledger) as sb:
        assert sb.ledger.audited
        c = await Client.open(sb.channel("front").port)
        await c.send(b'{"ref":"A1","note":"ok"}')          # a deal before it, answered
        assert [r["ref"] for r in await c.recv_json(1)] == ["A1"]
        await c.aclose()
        conn = await trio.open_tcp_stream("127.0.0.1", sb.channel("front").port)
        await conn.send_all(f.frame(b'{"ref":"B2","note":"%s"}' % (b"x" * 40)))
        with trio.fail_after(10):            # a guard, not a timing: the engine closes the connection
            while await conn.receive_some(4096):
                pass
        await conn.aclose()
    (b2,) = rows(ledger, "SELECT deal_id FROM deals WHERE reference = 'B2'")
    ev = _event(ledger, b2["deal_id"], "reply_not_sent")
    assert "cannot be framed" in ev["detail"]["reason"]
    audit_clean(ledger)
    tampering_is_named(ledger, tmp_path, ev["seq"], "deal_events", "to_state", "'committed'")
    story = show(ledger, b2["deal_id"])
    assert "-> reply_not_sent" in story and "cannot be framed" in story, story


async def test_a_deal_left_to_the_next_start_after_a_full_disk_says_no_reply_was_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_KEPT (or when the engine stops while the disk is still full) a deal whose calls went out and whose
    row could not be written is left to the next start, which writes it from the transaction log: its story must
    say, as the late write's does, that no reply was sent (it said only "answer logged before a crash")."""
    from engine.txn import late_record

    monkeypatch.setattr(late_record, "MAX_KEPT", 0)      # none kept in memory: the next start writes them
    ledger = tmp_path / "l.duckdb"

    def ok(req: dict) -> dict:
        return {"status": "OK", "ref": req["ref"]}

    async with trio.open_nursery() as nursery:
        port = await json_counterpart(nursery, ok)
        program = compile_text(tmp_path, LATE % port)
        async with running(program, ledger, sync="journal") as sb:
            c = await Client.open(sb.channel("front").port)
            jl = sb.ledger
            while not hasattr(jl, "_fd"):
                jl = jl._ledger
            good, jl._fd = jl._fd, os.open(tmp_path / "read-only", os.O_RDONLY | os.O_CREAT)   # the disk is full
            try:
                await c.send(b'{"ref":"K1"}')
                stats = sb.dispatchers["front"].stats
                with trio.fail_after(10):                   # a guard, not a timing
                    while stats.unrecorded < 1:
                        await trio.sleep(0.01)
            finally:
                os.close(jl._fd)
                jl._fd = good                               # room again
            await c.stream.aclose()
        assert rows(ledger, "SELECT deal_id FROM deals WHERE reference = 'K1'") == []     # left to the next start
        async with running(program, ledger, sync="journal"):
            pass
        nursery.cancel_scope.cancel()
    (k1,) = rows(ledger, "SELECT deal_id FROM deals WHERE reference = 'K1'")
    ev = _event(ledger, k1["deal_id"], "reply_not_sent")
    assert "no reply was sent" in ev["detail"]["reason"], ev
    audit_clean(ledger)
    story = show(ledger, k1["deal_id"])
    assert "-> reply_not_sent" in story, story


REFUSED = """
format Req = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel back = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 5s }
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY" }
    call post = back as Req reply Req { ref = msg.ref } expect post.status == "OK"
    reply Req { ref = msg.ref  code = "00" }
}
"""


async def test_a_dead_letter_retried_on_a_journaled_engine_is_chained(tmp_path: Path) -> None:
    """--ledger-sync journal: the deal and its dead letter reach DuckDB through the journal, the retry's claim
    and outcome go to DuckDB directly (their dead_letter events, chained); a hand edit of the status is named."""
    from engine.deadletter import retry_once, switchboard_injector
    from engine.ledger_query import query_dead_letters

    ledger = tmp_path / "l.duckdb"
    up = {"ok": False}

    def answer(req: dict) -> dict:
        return {"status": "OK" if up["ok"] else "NO", "ref": req["ref"]}

    async with trio.open_nursery() as nursery:
        port = await json_counterpart(nursery, answer)
        program = compile_text(tmp_path, REFUSED % port)
        async with running(program, ledger, sync="journal") as sb:
            c = await Client.open(sb.channel("front").port)
            await c.send(b'{"ref":"N1"}')
            led = sb.ledger
            while not hasattr(led, "_store"):
                led = led.ledger if hasattr(led, "ledger") else led._ledger
            letters: list = []
            with trio.fail_after(10):             # a guard, not a timing: the deal fails, its letter is stored
                while not letters:
                    await trio.sleep(0.02)
                    await sb.ledger.wait_loaded()
                    letters = await led._run(lambda: query_dead_letters(ledger, with_raw=True,
                                                                        con=led._store.connection))
            (letter,) = letters
            await c.stream.aclose()
            up["ok"] = True
            with trio.fail_after(10):
                res = await retry_once(sb.ledger, letter, switchboard_injector(sb))
            assert res.ok, res
            with trio.fail_after(10):
                await sb.ledger.wait_loaded()
        nursery.cancel_scope.cancel()
    (row,) = rows(ledger, "SELECT id, status FROM dead_letters")
    assert row["status"] == "retried"
    assert [r["s"] for r in rows(ledger, "SELECT json_extract_string(detail, '$.status') AS s FROM deal_events "
                                         "WHERE deal_id = ? AND to_state = 'dead_letter' ORDER BY seq",
                                 [row["id"]])] == ["retrying", "retried"]
    audit_clean(ledger)
    edited = _report(_edit(ledger, tmp_path / "edited.duckdb",
                           "UPDATE dead_letters SET status = 'new', retried_at = NULL, retry_outcome = NULL"))
    assert [(b.table, b.record) for b in edited.breaks] == [("dead_letters", row["id"])], \
        [str(b) for b in edited.breaks]


@pytest.mark.parametrize("sync", ["duckdb", "journal"])
async def test_a_failed_retry_leaves_one_waiting_letter_per_message(tmp_path: Path, sync: str) -> None:
    """A retry refused again: its deal's own dead letter is where the message waits now (status new); the first
    letter becomes retried, its outcome naming that one, chained (verify clean).  A retry of the first letter,
    even with --again, is refused while the message waits in the other (it would run twice); on a journaled
    engine too (the retry's deal and its letter reach DuckDB through the journal)."""
    from engine.deadletter import WAITS_AGAIN, retry_once, switchboard_injector
    from engine.ledger_query import count_new_dead_letters, query_dead_letters

    ledger = tmp_path / "l.duckdb"
    async with trio.open_nursery() as nursery:
        port = await json_counterpart(nursery, lambda req: {"status": "NO", "ref": req["ref"]})
        program = compile_text(tmp_path, REFUSED % port)
        async with running(program, ledger, **({"sync": sync} if sync != "duckdb" else {})) as sb:
            c = await Client.open(sb.channel("front").port)
            await c.send(b'{"ref":"N1"}')
            led = sb.ledger
            while not hasattr(led, "_store"):
                led = led.ledger if hasattr(led, "ledger") else led._ledger

            async def letters() -> list:
                if hasattr(sb.ledger, "wait_loaded"):
                    await sb.ledger.wait_loaded()
                return await led._run(lambda: query_dead_letters(ledger, with_raw=True, con=led._store.connection))
            found: list = []
            with trio.fail_after(10):             # a guard, not a timing: the deal fails, its letter is stored
                while not found:
                    await trio.sleep(0.02)
                    found = await letters()
            with trio.fail_after(10):
                res = await retry_once(sb.ledger, found[0], switchboard_injector(sb))
            assert not res.ok, res
            after = await letters()
            with trio.fail_after(10):
                again = await retry_once(sb.ledger, found[0], switchboard_injector(sb), again=True)
            waiting_now = await led._run(lambda: count_new_dead_letters(ledger, con=led._store.connection))
            final = await letters()
            await c.stream.aclose()
        nursery.cancel_scope.cancel()
    waiting = [r for r in after if r["status"] == "new"]
    assert len(after) == 2, after                  # the first letter, and the retry's deal's own
    assert len(waiting) == 1, [(r["id"], r["status"], r["retry_outcome"]) for r in after]
    first = next(r for r in after if r["id"] == found[0]["id"])
    (second,) = waiting
    assert first["status"] == "retried"
    assert first["retry_outcome"].startswith(f"failed (deal {second['id']}): refused: call post"), first
    assert first["retry_outcome"].endswith(WAITS_AGAIN + second["id"])
    assert res.outcome.endswith(WAITS_AGAIN + second["id"]), res   # what `bsp dead retry` prints
    assert bytes(second["raw"]) == bytes(first["raw"]) == b'{"ref":"N1"}'
    # --again on the first letter: refused, naming the letter to retry, nothing run (still two letters)
    assert again.skipped and not again.ok, again
    assert f"retry that one (`bsp dead retry {second['id']}`)" in again.outcome, again.outcome
    assert sorted((r["id"], r["status"]) for r in final) == sorted((r["id"], r["status"]) for r in after)
    assert waiting_now == {second["error_kind"]: 1}
    assert [r["s"] for r in rows(ledger, "SELECT json_extract_string(detail, '$.status') AS s FROM deal_events "
                                         "WHERE deal_id = ? AND to_state = 'dead_letter' ORDER BY seq",
                                 [first["id"]])] == ["retrying", "retried"]
    audit_clean(ledger)
