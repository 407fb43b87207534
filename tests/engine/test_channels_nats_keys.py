"""Deal keys shared by the engines of one `nats consume` consumer (`keys = "BUCKET"`, a JetStream key-value
bucket): a message redelivered to another engine is a duplicate there, not a second call.  Real
nats-server -js on loopback (restarted, killed), real TCP counterparts, a DuckDB ledger per engine."""
from __future__ import annotations

from collections import Counter

import orjson
import pytest
import trio

from engine.channels.nats_keys import bucket_key
from kit import compile_text, deals, json_counterpart, running
from natskit import (book, bound, collect, consumer_set_up, eventually, nats_client, nats_registry, nats_server,
                     settled, two_engines, value)

ROUTE = """
format Order = json
format Ack   = json

channel orders = nats consume {{
    url        = "{url}"
    subject    = "orders.new"
    stream     = "ORDERS"
    durable    = "bsp-orders"
    batch      = 4
    workers    = 2
    ack_wait   = 1s
    fetch_wait = 100ms
    nak_delay  = 100ms
    keys       = "BSP_KEYS"
    key_lease  = {lease}
}}

channel book = tcp connect {{
    address = "127.0.0.1:9"
    framing = length4
    timeout = 10s
}}

route take_order {{
    receive from orders as Order
    deal ORDER {{ key = msg.ref  ref = msg.ref  amount = msg.amount  currency = "EUR" }}
    call post = book as Order reply Ack {{ ref = msg.ref }} expect post.status == "OK"
    reply Ack {{ ref = msg.ref  by = post.by }}
}}
"""


def program(tmp_path, url, *, lease="3s", name="orders.route"):
    return compile_text(tmp_path, ROUTE.format(url=url, lease=lease), name=name, registry=nats_registry())


def counterpart(engine: str, calls: list[tuple[str, str]]):
    def answer(req: dict) -> dict:
        calls.append((engine, req["ref"]))
        return {"status": "OK", "by": engine}
    return answer


async def test_two_engines_sharing_keys_run_each_message_once_across_a_server_restart(tmp_path, nursery,
                                                                                     caplog) -> None:
    """The measurement of docs/channels-nats.md (two engines on one consumer, 300 keyed messages, the
    server killed in the middle): without the shared key store 9 to 33 messages were committed in both
    ledgers and called twice.  With `keys`, each message is one committed deal in one ledger and one call;
    every copy that came again is a `duplicate` row, in whichever engine it came to."""
    import logging

    caplog.set_level(logging.ERROR, logger="bsp.channel.nats")
    n = 300
    calls: list[tuple[str, str]] = []
    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        prog = program(tmp_path, srv.url)
        answers = (counterpart("one", calls), counterpart("two", calls))
        async with two_engines(tmp_path, nursery, (prog, prog), answers, reg) as (ch1, ch2):
            for i in range(n):
                await nc.publish("orders.new", b'{"ref": "K-%03d", "amount": 1}' % i)
            await eventually(lambda: value(ch1.acked + ch2.acked >= n // 2), "half of them acked", timeout=30)
            srv.kill()                       # acks (and deals in flight) of the moment are lost
            await srv.stop()
            await srv.start()                # same port, same store

            async def settled():
                i = await nc.consumer("ORDERS", "bsp-orders")
                return (i.num_pending == 0 and i.num_ack_pending == 0 and len({r for _, r in calls}) == n
                        and ch1.acked + ch2.acked >= n and i)

            await eventually(settled, "every message settled after the restart", timeout=60)
            await trio.sleep(1.5)            # ack_wait: a lost ack would bring one more copy now
            await eventually(settled, "settled again", timeout=30)
    rows = deals(tmp_path / "one.duckdb") + deals(tmp_path / "two.duckdb")
    statuses = Counter(r["status"] for r in rows)
    assert set(statuses) <= {"committed", "duplicate"}, statuses
    committed = Counter(r["reference"] for r in rows if r["status"] == "committed")
    assert sorted(committed) == [f"K-{i:03d}" for i in range(n)] and set(committed.values()) == {1}, \
        [ref for ref, c in committed.items() if c > 1]
    called = Counter(ref for _, ref in calls)
    assert set(called.values()) == {1}, [ref for ref, c in called.items() if c > 1]     # one call per message
    assert {e for e, _ in calls} == {"one", "two"}
    assert "took its key over" not in caplog.text and "was taken over" not in caplog.text    # no false alarm


async def test_a_repeat_on_another_engine_gets_the_original_answer(tmp_path, nursery) -> None:
    """Engine one runs O-1 and stops; the same order published again reaches engine two, which answers it
    with engine one's reply (from the bucket), records a duplicate and calls nobody."""
    calls: list[tuple[str, str]] = []
    replies: list[bytes] = []
    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        await nc.call(nc.nc.subscribe, "orders.replies", cb=collect(replies))
        prog = program(tmp_path, srv.url)
        for engine in ("one", "two"):
            port = await json_counterpart(nursery, counterpart(engine, calls))
            async with running(prog, tmp_path / f"{engine}.duckdb", registry=reg, overrides=book(port)) as sb:
                ch = sb.channel("orders")
                await bound(ch, "consumer set up")
                await nc.publish("orders.new", b'{"ref": "O-1", "amount": 5}', headers={"Bsp-Reply-To": "orders.replies"})
                await eventually(lambda: value(ch.acked == 1), f"engine {engine}: the order settled")
                await eventually(lambda: value(len(replies) == (1 if engine == "one" else 2)), "the reply")
    assert calls == [("one", "O-1")]
    assert replies == [b'{"ref":"O-1","by":"one"}'] * 2
    (one,), (two,) = deals(tmp_path / "one.duckdb"), deals(tmp_path / "two.duckdb")
    assert (one["status"], two["status"]) == ("committed", "duplicate")
    assert two["reason"] == f"duplicate of deal {one['deal_id']} (key 'take_order|O-1'); original answer repeated"


async def test_a_claim_left_by_a_killed_engine_is_flagged_not_run_again(tmp_path, nursery) -> None:
    """Engine one claims K-1 and dies in the middle of its call (its task tree cancelled: no ack, no final
    state, no renewal).  The message comes to engine two after ack_wait: while the claim could still be
    alive it is handed back (nak), not run; once the claim has not moved for key_lease the deal is failed
    for an operator (code 96, naming engine one) and the counterpart is not called a second time."""
    calls: list[tuple[str, str]] = []

    def stuck(req: dict) -> None:
        calls.append(("one", req["ref"]))
        return None                                     # no answer: the call waits (timeout 10s)

    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        prog = program(tmp_path, srv.url, lease="1500ms")
        p1 = await json_counterpart(nursery, stuck)
        p2 = await json_counterpart(nursery, counterpart("two", calls))
        with trio.CancelScope() as killed:
            async with running(prog, tmp_path / "one.duckdb", registry=reg, overrides=book(p1)) as sb1:
                ch1 = sb1.channel("orders")
                await bound(ch1, "engine one consuming")
                await nc.publish("orders.new", b'{"ref": "K-1", "amount": 1}')
                await eventually(lambda: value(bool(calls)), "engine one calling")
                claim = await nc.call((await nc.call(nc.js.key_value, "BSP_KEYS")).get, bucket_key("take_order|K-1"))
                assert orjson.loads(claim.value)["state"] == "running"
                killed.cancel()
        async with running(prog, tmp_path / "two.duckdb", registry=reg, overrides=book(p2)) as sb2:
            ch2 = sb2.channel("orders")
            await eventually(lambda: value(ch2.acked == 1), "engine two settled K-1", timeout=20)
            assert ch2.deferred >= 1                    # deferred while the claim could still be alive
            await eventually(lambda: settled(nc), "the ack reached the consumer")    # processed apart from the flush
    assert calls == [("one", "K-1")]                    # not called again
    (row,) = deals(tmp_path / "two.duckdb")
    assert (row["status"], row["response_code"]) == ("failed", "96")
    assert "in flight on engine " in row["reason"] and "flagged for an operator" in row["reason"], row["reason"]
    import duckdb
    con = duckdb.connect(str(tmp_path / "two.duckdb"), read_only=True)
    try:                                                # the flagged deal owns the key in engine two's ledger
        assert con.execute("SELECT deal_id FROM deal_keys").fetchall() == [(row["deal_id"],)]
    finally:
        con.close()


async def test_a_key_that_cannot_be_claimed_is_handed_back_never_run_unclaimed(tmp_path, nursery, caplog) -> None:
    """The bucket is gone (deleted by an operator; a server without it): no claim can be made, so the
    message is handed back (nak) again and again with a warning, and the counterpart is not called; once
    the bucket is back, the message runs, once."""
    import logging

    from nats.js.api import KeyValueConfig

    caplog.set_level(logging.WARNING, logger="bsp.channel.nats")
    calls: list[tuple[str, str]] = []
    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        port = await json_counterpart(nursery, counterpart("one", calls))
        async with running(program(tmp_path, srv.url, lease="300ms"), tmp_path / "one.duckdb", registry=reg,
                           overrides=book(port)) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consumer set up")
            await nc.call(nc.js.delete_key_value, "BSP_KEYS")
            await nc.publish("orders.new", b'{"ref": "U-1", "amount": 1}')
            await eventually(lambda: value(ch.deferred >= 3), "deferred three times")
            assert calls == [] and ch.acked == 0
            assert "deal key not claimed, message deferred: kept and tried again (not run): shared key store " \
                "BSP_KEYS" in caplog.text
            await nc.call(nc.js.create_key_value, KeyValueConfig(bucket="BSP_KEYS"))
            await eventually(lambda: value(ch.acked == 1), "run once the bucket is back")
    assert calls == [("one", "U-1")]
    assert [r["status"] for r in deals(tmp_path / "one.duckdb")] == ["committed"]


@pytest.mark.parametrize("option, expected", [
    ('keys = "BSP KEYS"', 'option keys: expected a key-value bucket name such as "BSP_KEYS"'),
    ("key_lease = 0s", "option key_lease: expected a duration above 0"),
])
def test_bsp_check_refuses_a_bad_keys_option(tmp_path, option, expected) -> None:
    from dsl.load import compile_paths

    text = ROUTE.format(url="nats://127.0.0.1:4222", lease="3s").replace('keys       = "BSP_KEYS"\n    key_lease  = 3s',
                                                                        option)
    (tmp_path / "t.route").write_text(text)
    res = compile_paths([tmp_path / "t.route"], nats_registry())
    (d,) = [d for d in res.diagnostics if d.severity == "error"]
    assert d.code == "E055" and d.message.startswith(f"channel orders: {expected}"), d.message


async def _bsp_run(route, ledger, log_path):
    """`bsp run` in a subprocess (a real process, so that it can be SIGKILLed); returns once it serves."""
    import subprocess
    import sys

    from kit import REPO

    before = log_path.stat().st_size if log_path.exists() else 0    # a restart appends to the last run's log
    out = open(log_path, "ab")
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "engine.cli", "run", str(route), "--ledger", str(ledger), "--grace", "5"],
        cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=out)
    out.close()
    with trio.fail_after(30):
        while b"serving" not in log_path.read_bytes()[before:]:
            assert proc.poll() is None, f"bsp run exited early: {log_path.read_text()}"
            await trio.sleep(0.05)
    return proc


async def test_an_engine_killed_holding_a_claim_settles_it_on_restart(tmp_path, nursery) -> None:
    """Engine one (`bsp run`, a real process) claims K-1, sends its call and is SIGKILLed before the answer.
    Restarted on the same ledger it is the same engine (its id is kept next to the ledger): its recovery
    flags the deal (the call may have reached the counterpart) and writes that final state over its own
    claim in the bucket.  Engine two, which gets K-1 redelivered, hands it back while the claim is alive
    and then answers it as a duplicate of engine one's deal: it never flags it (before, the restarted
    engine had a new id, the bucket kept the dead run's claim, and engine two flagged K-1 after key_lease:
    two rows for an operator).  Every message one deal across both ledgers, one call at most."""
    import signal

    calls: list[tuple[str, str]] = []

    def one(req: dict) -> dict | None:
        calls.append(("one", req["ref"]))
        return None if req["ref"] == "K-1" else {"status": "OK", "by": "one"}   # K-1: no answer

    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        p1 = await json_counterpart(nursery, one)
        p2 = await json_counterpart(nursery, counterpart("two", calls))
        route = tmp_path / "one" / "orders.route"
        route.parent.mkdir()
        route.write_text(ROUTE.format(url=srv.url, lease="10s").replace("127.0.0.1:9", f"127.0.0.1:{p1}"))
        ledger1, out1 = tmp_path / "one.duckdb", tmp_path / "one.log"
        proc = await _bsp_run(route, ledger1, out1)
        try:
            await consumer_set_up(nc, "ORDERS", "bsp-orders", "engine one's stream and consumer set up")
            await nc.publish("orders.new", b'{"ref": "K-1", "amount": 1}')
            await eventually(lambda: value(("one", "K-1") in calls), "engine one calling for K-1", timeout=20)
            kv = await nc.call(nc.js.key_value, "BSP_KEYS")
            bk = bucket_key("take_order|K-1")
            dead = orjson.loads((await nc.call(kv.get, bk)).value)
            assert dead["state"] == "running"
            proc.send_signal(signal.SIGKILL)                     # no ack, no final state, no renewal
            await proc.wait()
            async with running(program(tmp_path, srv.url, lease="10s"), tmp_path / "two.duckdb", registry=reg,
                               overrides=book(p2)) as sb2:
                ch2 = sb2.channel("orders")
                await bound(ch2, "engine two consuming")
                for i in range(2, 21):
                    await nc.publish("orders.new", b'{"ref": "K-%d", "amount": 1}' % i)
                # K-1 comes to engine two after ack_wait: engine one's claim is alive for all it knows
                await eventually(lambda: value(ch2.deferred >= 1), "K-1 deferred by engine two", timeout=20)
                proc = await _bsp_run(route, ledger1, out1)      # the same engine, restarted

                async def settled():
                    i = await nc.consumer("ORDERS", "bsp-orders")
                    got = orjson.loads((await nc.call(kv.get, bk)).value)
                    return i.num_pending == 0 and i.num_ack_pending == 0 and got["state"] == "done" and got

                final = await eventually(settled, "K-1 settled, its final state in the bucket", timeout=30)
                assert ch2.keys.flagged == 0
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with trio.fail_after(20):
                    await proc.wait()
    rows = deals(ledger1) + deals(tmp_path / "two.duckdb")
    assert not [r for r in rows if "in flight on engine" in (r["reason"] or "")], "engine two flagged it"
    first = Counter(r["reference"] for r in rows if r["status"] != "duplicate")
    assert sorted(first) == sorted(f"K-{i}" for i in range(1, 21)) and set(first.values()) == {1}, first
    (k1,) = [r for r in rows if r["reference"] == "K-1" and r["status"] != "duplicate"]
    assert k1 in deals(ledger1) and (k1["status"], k1["response_code"]) == ("failed", "96"), k1
    assert (final["engine"], final["deal"], final["status"], final["code"]) == \
        (dead["engine"], k1["deal_id"], "failed", "96")           # the recovered final state, by engine one
    assert final["engine"] == (tmp_path / "one.duckdb.engine").read_text().strip()
    called = Counter(ref for _, ref in calls)
    assert set(called.values()) == {1}, called                  # K-1 not sent again by anyone


async def test_an_engine_takes_back_its_own_claim_left_before_a_restart(tmp_path, nursery) -> None:
    """A claim of this engine's previous run that its log knows nothing of (it died between claiming the
    key and logging the deal: no call was made) is taken back at once and the deal runs here; before,
    the engine took its own claim for another engine's, handed the message back for key_lease and then
    flagged its own deal."""
    calls: list[tuple[str, str]] = []
    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        port = await json_counterpart(nursery, counterpart("one", calls))
        prog = program(tmp_path, srv.url, lease="5s")
        bk = bucket_key("take_order|T-1")
        for run in (1, 2):
            async with running(prog, tmp_path / "one.duckdb", registry=reg, overrides=book(port)) as sb:
                ch = sb.channel("orders")
                await bound(ch, "consumer set up")
                kv = await nc.call(nc.js.key_value, "BSP_KEYS")
                if run == 1:        # the previous run's claim, never logged (what a kill right after it leaves)
                    engine = ch.keys.engine
                    await nc.call(kv.create, bk, orjson.dumps({"engine": engine, "deal": "D-BEFORE", "state": "running",
                                                               "at": "2026-11-26T00:00:00+00:00"}))
                    continue
                assert ch.keys.engine == engine                 # the same engine: its id is kept with the ledger
                await nc.publish("orders.new", b'{"ref": "T-1", "amount": 1}')
                await eventually(lambda: value(ch.acked == 1), "T-1 run and acked")
                assert (ch.naked, ch.deferred, ch.keys.taken_back) == (0, 0, 1)
                final = orjson.loads((await nc.call(kv.get, bk)).value)
    assert calls == [("one", "T-1")]
    (row,) = deals(tmp_path / "one.duckdb")
    assert row["status"] == "committed"
    assert (final["state"], final["engine"], final["deal"], final["status"]) == ("done", engine, row["deal_id"],
                                                                                "committed")
