"""A flush whose PONG comes late: nats-py (2.16) gives up on it after its timeout, cancelling the PONG's
future but leaving it queued; the late PONG then set a result on the cancelled future (InvalidStateError),
which ended the client's read loop: the connection read nothing more (no message fetched, no reply, no
PONG) until nats-py's ping interval declared it stale, minutes later.  The channel's client now lets a
late PONG pass (engine.channels.nats_pong).  Real nats-server -js on loopback, frozen with SIGSTOP while
the channel waits for the server's word on an ack; a real TCP counterpart; a DuckDB ledger."""
from __future__ import annotations

import logging

import trio

from kit import deals, running
from natskit import book, bound, eventually, nats_client, nats_registry, nats_server, value
from test_channels_nats_faults import held_counterpart
from test_channels_nats_robust import program


async def test_a_flush_answered_after_its_timeout_does_not_stop_the_connection_reading(tmp_path, nursery,
                                                                                      caplog) -> None:
    """L-1's deal commits while the server is frozen: its ack's flush gets no PONG within 1 s (logged),
    the server is thawed and answers it late.  L-2, published then, is consumed at once (before: never
    fetched, the channel's connection read nothing more)."""
    caplog.set_level(logging.WARNING, logger="bsp.channel")
    release, seen = trio.Event(), []
    port = await held_counterpart(nursery, release, seen)

    def flush_timed_out() -> bool:
        return any("(flush: " in r.getMessage() for r in caplog.records)

    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        prog = program(tmp_path, srv.url, extra="connect_timeout = 1s")
        async with running(prog, tmp_path / "l.duckdb", registry=nats_registry(), overrides=book(port)) as sb:
            ch = sb.channel("orders")
            await bound(ch, "consumer set up")
            await nc.publish("orders.new", b'{"ref": "L-1", "amount": 1}')
            await eventually(lambda: value(seen == ["L-1"]), "L-1 at the counterpart")
            srv.freeze()
            try:
                release.set()                  # L-1 commits; its ack and the flush's PING wait in the socket
                await eventually(lambda: value(flush_timed_out()), "the flush timed out", timeout=10)
            finally:
                srv.thaw()                     # the PONG comes now, after the flush gave up
            await nc.publish("orders.new", b'{"ref": "L-2", "amount": 1}')
            await eventually(lambda: value(ch.acked == 2), "L-2 consumed and acknowledged", timeout=8)
    assert seen == ["L-1", "L-2"]
    assert sorted(r["reference"] for r in deals(tmp_path / "l.duckdb")) == ["L-1", "L-2"]
