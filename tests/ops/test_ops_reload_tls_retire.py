"""A reload that changes a TLS listener (its certificate, through the deployment's channel overrides) while
4 mutual-TLS clients keep requests in flight loses nothing: the old listener stops reading at a frame
boundary, sends every reply it owes, then ends the connection cleanly (TLS close_notify, then FIN; never a
reset), so a client knows exactly which of its requests were read (those answered before the close) and
sends the others again to the new listener.  Every request then gets exactly one reply, and the ledger holds
exactly one deal per request.

Real engine (LiveEngine, as `bsp run`), real mTLS clients on 127.0.0.1 (port 0), a real DuckDB ledger."""
from __future__ import annotations

from collections import deque
from pathlib import Path

import orjson
import trio

from engine.certs import new_ca
from engine.tls import client_context
from formats.framing import LengthPrefixFramer
from opskit import ECHO, free_port, live, rows
from conftest_tls import PKI, pki  # noqa: F401,E402  (fixture)

CONNECTIONS = 4
PER_CONNECTION = 400
WINDOW = 16            # requests in flight per connection
CHUNK = 4              # requests per write
PACE = 0.002           # between writes


class Tally:
    def __init__(self) -> None:
        self.replies: dict[str, int] = {}
        self.clean_closes = 0       # connections the engine ended cleanly (EOF after its last reply)
        self.resets: list[str] = []
        self.unread: list[str] = []  # sent, and unanswered when the engine ended the connection
        self.progress = 0


async def careful_client(number: int, port: list[int], ctx, tally: Tally) -> None:
    """A mainframe that keeps a window of requests in flight on one mTLS connection; when the engine ends
    the connection cleanly, the requests it did not answer were not read: they are sent again on a new one.
    A reset (the client cannot tell what was read) is counted as a failure."""
    todo = deque(f"t{number}-{i:04d}" for i in range(PER_CONNECTION))
    while todo:
        try:
            tcp = await trio.open_tcp_stream("127.0.0.1", port[0])
        except OSError:              # between the old listener's close and the new one's start
            await trio.sleep(0.01)
            continue
        stream = trio.SSLStream(tcp, ctx, server_hostname="localhost")
        tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
        inflight: deque[str] = deque()
        window = trio.Semaphore(WINDOW)
        ended = trio.Event()

        async def sender() -> None:
            try:
                while todo:
                    batch = []
                    while todo and len(batch) < CHUNK:
                        await window.acquire()
                        ref = todo.popleft()
                        inflight.append(ref)
                        batch.append(tx.frame(orjson.dumps({"ref": ref})))
                    await stream.send_all(b"".join(batch))
                    await trio.sleep(PACE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await ended.wait()          # the reader says whether the end was clean

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            while True:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError as exc:
                    tally.resets.append(f"connection {number}: {exc.__cause__ or exc!r} with {len(inflight)} "
                                        f"request(s) unanswered")
                    data = None
                if not data:
                    tally.clean_closes += data == b""
                    ended.set()
                    nursery.cancel_scope.cancel()
                    break
                for frame in rx.feed(data):
                    ref = orjson.loads(frame)["ref"]
                    assert ref == inflight[0], (ref, list(inflight)[:3])      # in order
                    inflight.popleft()
                    tally.replies[ref] = tally.replies.get(ref, 0) + 1
                    tally.progress += 1
                    window.release()
                if not todo and not inflight:
                    nursery.cancel_scope.cancel()
                    break
        # Once the sender has stopped (not before: a semaphore's acquire is a cancel-shielded checkpoint, so a
        # sender already woken could still take one more reference from `todo`): what is still in flight was not
        # read by the engine, and is sent again under a new reference so that the ledger tells.
        tally.unread.extend(inflight)
        todo.extendleft(f"{ref}~" for ref in reversed(inflight))
        await trio.aclose_forcefully(stream)


async def test_reload_of_a_tls_listener_under_mtls_load_loses_no_request(tmp_path: Path, pki: PKI) -> None:
    route = tmp_path / "echo.route"
    route.write_text((ECHO % "A").replace('"127.0.0.1:0"', f'"127.0.0.1:{free_port()}"'))   # the new one: here too
    ledger = tmp_path / "l.duckdb"
    ca = new_ca("second CA for the server")
    second_cert, second_key = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"],
                                       server=True).write(tmp_path / "server2")
    tls = {"key": str(pki.server_key), "ca": str(pki.ca), "client_cert": "required"}
    overrides = {"front": {**tls, "cert": str(pki.server_cert)}}
    ctx = client_context(None, pki.client_cert, pki.client_key, "localhost")
    ctx.load_verify_locations(str(pki.ca))
    ctx.load_verify_locations(str(ca.write(tmp_path / "ca2")[0]))      # trusts the old and the new server
    tally = Tally()
    async with live([route], ledger, overrides=overrides) as eng:
        port = [eng.current.channels["front"].port]
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for c in range(CONNECTIONS):
                    nursery.start_soon(careful_client, c, port, ctx, tally)
                while tally.progress < CONNECTIONS * PER_CONNECTION // 3:
                    await trio.sleep(0.002)
                overrides["front"] = {**tls, "cert": str(second_cert), "key": str(second_key)}
                result = await eng.reload(source="test")
                assert result.ok and result.plan["channels"]["changed"] == ["front"], result
        new = eng.current.channels["front"]
        assert new.port == port[0] and new.gate.admitted >= CONNECTIONS      # the clients reconnected
    print({"requests": CONNECTIONS * PER_CONNECTION, "unanswered_at_close": len(tally.unread),
           "clean_closes": tally.clean_closes, "resets": len(tally.resets)})
    assert tally.resets == []                                   # never a reset: the client can tell
    assert tally.clean_closes == CONNECTIONS                    # each old connection ended by the engine
    assert set(tally.replies.values()) == {1}
    answered = {r.rstrip("~") for r in tally.replies}
    assert answered == {f"t{c}-{i:04d}" for c in range(CONNECTIONS) for i in range(PER_CONNECTION)}
    deals = rows(ledger, "SELECT reference FROM deals")
    assert sorted(r for (r,) in deals) == sorted(tally.replies)   # a deal for each reply, and only those
    assert not set(tally.unread) & {r for (r,) in deals}          # unanswered at the close = never read
    assert rows(ledger, "SELECT count(*) FROM dead_letters") == [(0,)]
