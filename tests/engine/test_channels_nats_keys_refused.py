"""A repeat of a deal another engine finished, taken from a `nats consume` channel with a shared key store
(`keys = "BUCKET"`), that a `validate` now refuses (a cut-off passed since the original) is answered from
the bucket as a duplicate (engine/txn/refused_repeat.py, read only: nothing claimed), or refused as
`key_conflict` when its amount differs; not refused with the rule's reason.  Real nats-server -js on
loopback, real TCP counterparts, a DuckDB ledger per engine."""
from __future__ import annotations

from kit import compile_text, deals, json_counterpart, running
from natskit import book, bound, collect, eventually, nats_client, nats_registry, nats_server, value
from test_channels_nats_keys import ROUTE, counterpart

# `late` stands for a cut-off read from the clock: the original passes, its repeat comes after it
LATE = ROUTE.replace('    call post', '    validate {{ msg.late != true else reject "57" "cut-off passed" }}\n'
                                     '    call post')


async def test_a_repeat_refused_on_another_engine_is_answered_from_the_shared_key_store(tmp_path, nursery) -> None:
    calls: list[tuple[str, str]] = []
    replies: list[bytes] = []
    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        await nc.call(nc.nc.subscribe, "orders.replies", cb=collect(replies))
        prog = compile_text(tmp_path, LATE.format(url=srv.url, lease="3s"), name="orders.route", registry=reg)
        for engine, bodies in (("one", [b'{"ref": "O-1", "amount": 5}']),
                               ("two", [b'{"ref": "O-1", "amount": 5, "late": true}',
                                        b'{"ref": "O-1", "amount": 7, "late": true}',
                                        b'{"ref": "O-2", "amount": 5, "late": true}'])):
            port = await json_counterpart(nursery, counterpart(engine, calls))
            async with running(prog, tmp_path / f"{engine}.duckdb", registry=reg, overrides=book(port)) as sb:
                ch = sb.channel("orders")
                await bound(ch, "consumer set up")
                for n, body in enumerate(bodies, 1):      # one at a time
                    await nc.publish("orders.new", body, headers={"Bsp-Reply-To": "orders.replies"})
                    await eventually(lambda: value(ch.acked == n), f"engine {engine}: message {n} settled")
    assert calls == [("one", "O-1")]                     # engine two called nobody
    assert replies[0] == replies[1] == b'{"ref":"O-1","by":"one"}'
    (one,), two = deals(tmp_path / "one.duckdb"), deals(tmp_path / "two.duckdb")
    assert one["status"] == "committed"
    assert [(d["reference"], d["status"], d["response_code"]) for d in two] == [
        ("O-1", "duplicate", None), ("O-1", "rejected", "12"), ("O-2", "rejected", "57")]
    assert f"duplicate of deal {one['deal_id']}" in two[0]["reason"] and "cut-off passed" in two[0]["reason"]
    assert "amount 7 (the original: 5)" in two[1]["reason"]
