"""`nats consume` when the ledger's disk is full after a deal's call went out: the message is settled, not
redelivered, so the counterpart is called once per message (a bank sees one payment), and the deal's row
is written once the disk frees (engine/txn/late_record.py), or by the next start from the transaction log.

The full disk is the ledger journal's descriptor swapped for a read-only one (EBADF, as a full disk gives
ENOSPC); the transaction log's too where it fails as well.  Before 2026-11-27 the message was nak'ed and
delivered again up to `max_deliver`, each delivery of a route without a deal key calling the counterpart
again (three payments for one message); a keyed route called once but was nak'ed up to `max_deliver` all
the same (a duplicate each time)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import duckdb
import trio

from kit import compile_text, deals, json_counterpart, running
from natskit import book, bound, eventually, nats_client, nats_registry, nats_server, settled, value
from test_channels_nats import CONSUME_ROUTE


def program(tmp_path: Path, url: str, *, keyed: bool = False) -> Any:
    text = CONSUME_ROUTE.format(url=url, ack_wait="30s", on_failed="ack", max_deliver=3)
    if keyed:
        text = text.replace("ref      = msg.ref\n", "key      = msg.ref\n        ref      = msg.ref\n", 1)
    return compile_text(tmp_path, text, registry=nats_registry())


def journal_of(sb: Any) -> Any:
    jl = sb.ledger
    while not hasattr(jl, "_fd"):                    # the journaled ledger under any view
        jl = jl._ledger
    return jl


def txn_log_of(sb: Any) -> Any:
    return sb.dispatchers["orders"].txn.log


def late_of(sb: Any) -> Any:
    """The deals kept for a late write (engine/txn/late_record.py)."""
    return sb.dispatchers["orders"].txn.late


@contextmanager
def unwritable(obj: Any, tmp_path: Path, name: str) -> Iterator[None]:
    """``obj``'s file descriptor swapped for a read-only one for the block: its writes fail (EBADF)."""
    good, obj._fd = obj._fd, os.open(tmp_path / name, os.O_RDONLY | os.O_CREAT)
    try:
        yield
    finally:
        os.close(obj._fd)
        obj._fd = good


def events(ledger: Path, state: str) -> set[str]:
    with duckdb.connect(str(ledger), read_only=True) as con:
        return {d for (d,) in con.execute("SELECT deal_id FROM deal_events WHERE to_state = ?", [state]).fetchall()}


def counting(calls: list[str]) -> Any:
    def answer(req: dict) -> dict:
        calls.append(req["ref"])
        return {"status": "OK"}
    return answer


async def test_a_deal_without_key_acted_on_under_a_full_disk_is_acked_once_and_written_when_the_disk_frees(
        tmp_path, nursery) -> None:
    calls: list[str] = []
    ledger = tmp_path / "ledger.duckdb"
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        port = await json_counterpart(nursery, counting(calls))
        prog = program(tmp_path, srv.url)
        async with running(prog, ledger, registry=nats_registry(), overrides=book(port), sync="journal") as sb:
            ch = sb.channel("orders")
            await bound(ch)
            with unwritable(journal_of(sb), tmp_path, "read-only"):
                for ref in ("N-1", "N-2", "N-3"):
                    await nc.publish("orders.new", b'{"ref": "%s", "amount": 1.50}' % ref.encode())
                await eventually(lambda: value(ch.acked == 3), "N-1..N-3 acked")
                await trio.sleep(0.5)            # nak_delay is 100ms: a nak'ed message would be back meanwhile
                info = await nc.consumer("ORDERS", "bsp-orders")
                assert (info.delivered.consumer_seq, info.num_ack_pending) == (3, 0)
                assert (sorted(calls), ch.naked, ch.termed) == (["N-1", "N-2", "N-3"], 0, 0)
                assert len(late_of(sb).kept) == 3     # their rows wait for the disk
            await nc.publish("orders.new", b'{"ref": "N-4", "amount": 2.50}')
            await eventually(lambda: value(ch.acked == 4), "N-4 acked")
            await eventually(lambda: value(late_of(sb).written == 3), "N-1..N-3 written once the disk frees")
            assert sorted(calls) == ["N-1", "N-2", "N-3", "N-4"]
    got = deals(ledger)
    assert sorted((r["reference"], r["status"]) for r in got) == [
        ("N-1", "committed"), ("N-2", "committed"), ("N-3", "committed"), ("N-4", "committed")]
    assert events(ledger, "reply_not_sent") == {r["deal_id"] for r in got if r["reference"] != "N-4"}


async def test_a_keyed_deal_under_a_full_disk_is_acked_once_not_nakd_into_duplicates(tmp_path, nursery) -> None:
    """The keyed route called once before too, but its message was nak'ed up to max_deliver, each delivery
    a duplicate whose row the full disk refused as well; now it is acked like the deal without a key."""
    calls: list[str] = []
    ledger = tmp_path / "ledger.duckdb"
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        port = await json_counterpart(nursery, counting(calls))
        prog = program(tmp_path, srv.url, keyed=True)
        async with running(prog, ledger, registry=nats_registry(), overrides=book(port), sync="journal") as sb:
            ch = sb.channel("orders")
            await bound(ch)
            with unwritable(journal_of(sb), tmp_path, "read-only"):
                await nc.publish("orders.new", b'{"ref": "K-1", "amount": 1.50}')
                await eventually(lambda: value(ch.acked == 1), "K-1 acked")
                await trio.sleep(0.5)            # nak_delay is 100ms: a nak'ed K-1 would be back meanwhile
                assert (calls, ch.received, ch.naked, ch.termed) == (["K-1"], 1, 0, 0)
            await eventually(lambda: value(late_of(sb).written == 1), "K-1 written once the disk frees")
    got = deals(ledger)
    assert [(r["reference"], r["status"]) for r in got] == [("K-1", "committed")]
    assert events(ledger, "reply_not_sent") == {got[0]["deal_id"]}


async def test_stopped_before_the_disk_frees_the_next_start_writes_the_deal_and_calls_nobody_again(
        tmp_path, nursery) -> None:
    """The deal without a key is acked and the engine stops while the disk is still full: its outcome is in
    the transaction log (an `end`, written when its row was refused), so the next start writes its row as
    the route ended it (committed, reply_not_sent), not flagged as left in flight, and the message is not
    delivered again (before: redelivered and the counterpart called again, the first deal flagged)."""
    calls: list[str] = []
    ledger = tmp_path / "ledger.duckdb"
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        port = await json_counterpart(nursery, counting(calls))
        prog = program(tmp_path, srv.url)
        async with running(prog, ledger, registry=nats_registry(), overrides=book(port), sync="journal") as sb:
            ch = sb.channel("orders")
            await bound(ch)
            jl = journal_of(sb)
            good, jl._fd = jl._fd, os.open(tmp_path / "read-only", os.O_RDONLY | os.O_CREAT)
            await nc.publish("orders.new", b'{"ref": "R-1", "amount": 1.50}')
            await eventually(lambda: value(ch.acked + ch.naked + ch.termed >= 1), "R-1 settled")
            # the engine stops with the disk still full: its last try to write R-1 fails too
        os.close(good)
        assert deals(ledger) == [] and calls == ["R-1"]
        async with running(prog, ledger, registry=nats_registry(), overrides=book(port), sync="journal") as sb:
            ch = sb.channel("orders")
            await bound(ch)
            await trio.sleep(0.5)                # nak_delay is 100ms: an R-1 not acked would be back meanwhile
            assert await settled(nc)
            assert (calls, ch.received) == (["R-1"], 0)
    got = deals(ledger)
    assert [(r["reference"], r["status"]) for r in got] == [("R-1", "committed")]
    assert events(ledger, "reply_not_sent") == {got[0]["deal_id"]}
    assert events(ledger, "flagged") == set()


async def test_the_transaction_log_full_too_the_message_is_terminated_and_the_deal_written_later(
        tmp_path, nursery) -> None:
    """The disk fills while the call is out: the deal's outcome cannot reach the transaction log either, only
    memory holds it.  The message is terminated (never delivered again: the counterpart is not called again;
    `termed` in bsp status); once the disk frees the deal's row is written all the same."""
    calls: list[str] = []
    ledger = tmp_path / "ledger.duckdb"
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        full = trio.Event()
        box: dict[str, Any] = {}

        def answer(req: dict) -> dict:
            calls.append(req["ref"])
            box["stack"] = [unwritable(journal_of(box["sb"]), tmp_path, "ro-journal"),
                            unwritable(txn_log_of(box["sb"]), tmp_path, "ro-txn")]
            for c in box["stack"]:
                c.__enter__()
            full.set()
            return {"status": "OK"}

        port = await json_counterpart(nursery, answer)
        prog = program(tmp_path, srv.url)
        async with running(prog, ledger, registry=nats_registry(), overrides=book(port), sync="journal") as sb:
            box["sb"] = sb
            ch = sb.channel("orders")
            await bound(ch)
            await nc.publish("orders.new", b'{"ref": "M-1", "amount": 1.50}')
            await full.wait()
            try:
                await eventually(lambda: value(ch.termed == 1), "M-1 terminated")
                await trio.sleep(0.5)            # nak_delay is 100ms: a nak'ed M-1 would be back meanwhile
                assert (calls, ch.received, ch.naked, ch.acked) == (["M-1"], 1, 0, 0)
                assert len(late_of(sb).kept) == 1
            finally:
                for c in reversed(box["stack"]):
                    c.__exit__(None, None, None)
            await eventually(lambda: value(late_of(sb).written == 1), "M-1 written once the disk frees")
    got = deals(ledger)
    assert [(r["reference"], r["status"]) for r in got] == [("M-1", "committed")]
    assert events(ledger, "reply_not_sent") == {got[0]["deal_id"]}
