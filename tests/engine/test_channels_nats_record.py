"""`bsp run --record` over a route that publishes to NATS: the recording tap hands the call step's deal
references (``keys=``, the JetStream message ids) on to the `nats publish` channel.  A real nats-server:
every deal commits, a repeat is stored once (its id reached the server), and the capture holds each
exchange's request, publish, acknowledgement and reply, and replays without a difference."""
from __future__ import annotations

import duckdb
import trio

from dsl.load import compile_paths
from engine.replay.session import replay_file
from engine.replay.tap import recording
from kit import Client, deals, running
from natskit import nats_client, nats_registry, nats_server
from test_channels_nats import PUBLISH_ROUTE


async def test_record_a_route_that_publishes_keys_reach_the_channel_and_the_capture_holds_the_frames(
        tmp_path, nursery) -> None:
    cap = tmp_path / "cap.duckdb"
    route = tmp_path / "pub.route"
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        route.write_text(PUBLISH_ROUTE.format(url=srv.url))
        reg = nats_registry()
        program = compile_paths([route], reg).program
        with recording(program, reg, cap) as (rreg, rec):
            assert rec is not None
            async with running(program, tmp_path / "ledger.duckdb", registry=rreg) as sb:
                client = await Client.open(sb.channel("teller").port)
                await client.send(b'{"ref": "P-1", "amount": 10.50}', b'{"ref": "P-2", "amount": 3.00}')
                first = await client.recv_json(2)
                await client.send(b'{"ref": "P-1", "amount": 10.50}')        # the same deal again
                (again,) = await client.recv_json(1)
                await client.aclose()
        assert [(r["ref"], r["duplicate"]) for r in first] == [("P-1", False), ("P-2", False)], first
        assert again == {"ref": "P-1", "seq": first[0]["seq"], "duplicate": True}
        assert await nc.stream_messages("PAY") == 2                     # the message ids reached the server
    assert [r["status"] for r in deals(tmp_path / "ledger.duckdb")] == ["committed"] * 3
    con = duckdb.connect(str(cap), read_only=True)
    try:
        rows = con.execute("SELECT exchange, channel, role, direction, raw, error, deal_status FROM frames "
                           "ORDER BY exchange, seq").fetchall()
    finally:
        con.close()
    by_ex: dict = {}
    for ex, channel, role, direction, raw, error, status in rows:
        by_ex.setdefault(ex, []).append((channel, role, direction, bytes(raw) if raw is not None else None,
                                         error, status))
    assert len(by_ex) == 3, rows
    for frames in by_ex.values():
        assert sorted(f[:3] for f in frames) == [("bus", "outbound", "in"), ("bus", "outbound", "out"),
                                                 ("teller", "inbound", "in"), ("teller", "inbound", "out")], frames
        assert all(f[4] is None for f in frames), frames                 # no call failed
        assert {f[5] for f in frames if f[1] == "inbound" and f[2] == "in"} == {"committed"}, frames
        ack = next(f[3] for f in frames if f[:3] == ("bus", "outbound", "in"))
        assert b'"stream":"PAY"' in ack.replace(b" ", b""), ack
    report = await trio.to_thread.run_sync(replay_file, cap, [route], nats_registry())   # its own trio.run
    same = report.summary()
    assert same["exchanges"] == 3 and same["unexpected_differences"] == 0, same
