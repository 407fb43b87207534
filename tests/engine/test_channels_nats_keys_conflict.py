"""A deal key shared through a `nats consume` key store (`keys = "BUCKET"`) keeps the deal's fingerprint
(engine/txn/fingerprint.py) with its final state: the same order id published again with another amount and
taken by another engine is refused there (kind `key_conflict`, code 12), not answered with the first engine's
reply as a duplicate.  Real nats-server -js on loopback, real TCP counterparts, a DuckDB ledger per engine."""
from __future__ import annotations

from kit import deals, json_counterpart, running
from natskit import bound, collect, eventually, nats_client, nats_registry, nats_server, value
from natskit import book
from test_channels_nats_keys import counterpart, program


async def test_a_repeat_with_another_amount_on_another_engine_is_a_key_conflict(tmp_path, nursery) -> None:
    calls: list[tuple[str, str]] = []
    replies: list[bytes] = []
    reg = nats_registry()
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        await nc.call(nc.nc.subscribe, "orders.replies", cb=collect(replies))
        prog = program(tmp_path, srv.url)
        for engine, body in (("one", b'{"ref": "O-1", "amount": 5}'), ("two", b'{"ref": "O-1", "amount": 7}')):
            port = await json_counterpart(nursery, counterpart(engine, calls))
            async with running(prog, tmp_path / f"{engine}.duckdb", registry=reg, overrides=book(port)) as sb:
                ch = sb.channel("orders")
                await bound(ch, "consumer set up")
                await nc.publish("orders.new", body, headers={"Bsp-Reply-To": "orders.replies"})
                await eventually(lambda: value(ch.acked == 1), f"engine {engine}: the order settled")
    assert calls == [("one", "O-1")]                     # engine two called nobody
    assert replies[0] == b'{"ref":"O-1","by":"one"}' and b'"by":"one"' not in b"".join(replies[1:])
    (one,), (two,) = deals(tmp_path / "one.duckdb"), deals(tmp_path / "two.duckdb")
    assert (one["status"], two["status"], two["response_code"]) == ("committed", "rejected", "12")
    assert f"deal key 'take_order|O-1' was used by deal {one['deal_id']} for another deal: amount 7 (the " \
           f"original: 5)" in two["reason"], two["reason"]
