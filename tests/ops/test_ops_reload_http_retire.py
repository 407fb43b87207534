"""A reload that changes an `http listen` channel, then a drain, while keep-alive clients pipeline requests
(some written in two pieces, so that one is often half read when the retirement comes): nothing is lost and
nothing is reset.  The old listener stops accepting at once (the new one binds the same port); each of its
connections finishes the request it was reading, answers it and every request it had read with
`Connection: close`, then ends cleanly (FIN after the last answer; what the client sent after it is read
and discarded, never answered with a reset).  So a client knows exactly which requests were read: those
answered; it sends the others again on a new connection.  Every request gets at most one answer, a deal for
each 200 and none for a request never answered.

Before, the old listener kept accepting until its in-flight requests were done, answered requests read
meanwhile 503 on a connection kept alive, then cancelled every connection at once: a request half read, or
read and not yet answered, got no answer, and a connection with unread bytes was reset.

Real engine (LiveEngine, as `bsp run`), real HTTP/1.1 clients on 127.0.0.1 (raw sockets: pipelining), a real
DuckDB ledger."""
from __future__ import annotations

from collections import deque
from pathlib import Path

import orjson
import trio

from opskit import free_port, live, rows

CONNECTIONS = 4
PER_CONNECTION = 300
WINDOW = 6             # requests in flight per connection (pipelined)
PACE = 0.002

ROUTE = """
format Req = json
channel api = http listen {
    address = "127.0.0.1:%d"
    path    = "/pay"
}
route echo {
    receive from api as Req
    deal ECHO { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Req { ref = msg.ref }
}
"""


def request(ref: str) -> bytes:
    body = orjson.dumps({"ref": ref})
    return (b"POST /pay HTTP/1.1\r\nhost: bsp\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % len(body)) + body


class Responses:
    """HTTP/1.1 responses parsed off a byte stream, in order: (status, headers, body)."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
        self.buf += data
        out = []
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return out
            head = self.buf[:end].decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:])}
            length = int(headers.get("content-length", "0"))
            if len(self.buf) < end + 4 + length:
                return out
            body = self.buf[end + 4:end + 4 + length]
            self.buf = self.buf[end + 4 + length:]
            status = int(head[0].split()[1])
            if status == 100:
                continue
            out.append((status, headers, body))


class Tally:
    def __init__(self) -> None:
        self.ok: dict[str, int] = {}
        self.refused: list[str] = []        # answered 503: not run, sent again
        self.unread: list[str] = []         # sent, and unanswered when the engine ended the connection
        self.clean_closes = 0
        self.closed_with_answer = 0         # connections whose last answer said Connection: close
        self.resets: list[str] = []
        self.other: list[str] = []
        self.progress = 0
        self.stopped = False


async def client(number: int, port: int, tally: Tally) -> None:
    todo = deque(f"h{number}-{i:04d}" for i in range(PER_CONNECTION))
    while todo and not tally.stopped:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:                     # between the old listener's close and the new one's start
            await trio.sleep(0.01)
            continue
        inflight: deque[str] = deque()
        window = trio.Semaphore(WINDOW)
        ended = trio.Event()
        parser = Responses()

        async def sender() -> None:
            try:
                n = 0
                while todo:
                    await window.acquire()
                    ref = todo.popleft()
                    inflight.append(ref)
                    data = request(ref)
                    n += 1
                    if n % 3 == 0:          # in two writes: the engine often holds half of it
                        cut = len(data) // 2
                        await stream.send_all(data[:cut])
                        await trio.sleep(PACE)
                        await stream.send_all(data[cut:])
                    else:
                        await stream.send_all(data)
                    await trio.sleep(PACE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await ended.wait()

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
                for status, headers, body in parser.feed(data):
                    ref = inflight.popleft()
                    if status == 200:
                        assert orjson.loads(body)["ref"] == ref, (body, ref)          # in order
                        tally.ok[ref] = tally.ok.get(ref, 0) + 1
                    elif status == 503:
                        tally.refused.append(ref)
                        todo.appendleft(f"{ref}~")
                    else:
                        tally.other.append(f"{ref}: {status} {body[:200]!r}")
                    tally.progress += 1
                    window.release()
                    if headers.get("connection") == "close":
                        tally.closed_with_answer += 1
                if not todo and not inflight:
                    nursery.cancel_scope.cancel()
                    break
        # once the sender has stopped (a semaphore's acquire is a cancel-shielded checkpoint: a sender already
        # woken could still take one more reference from `todo`): what is in flight was not answered
        tally.unread.extend(inflight)
        todo.extendleft(f"{ref}~" for ref in reversed(inflight))
        await trio.aclose_forcefully(stream)


async def test_http_listen_retired_by_a_reload_and_a_drain_loses_and_resets_nothing(tmp_path: Path) -> None:
    port = free_port()
    route = tmp_path / "api.route"
    route.write_text(ROUTE % port)
    ledger = tmp_path / "l.duckdb"
    overrides: dict = {}
    tally = Tally()
    total = CONNECTIONS * PER_CONNECTION
    async with live([route], ledger, overrides=overrides) as eng:
        with trio.fail_after(40):
            async with trio.open_nursery() as nursery:
                for c in range(CONNECTIONS):
                    nursery.start_soon(client, c, port, tally)
                while tally.progress < total // 3:
                    await trio.sleep(0.002)
                overrides["api"] = {"max_body": 100_000}
                result = await eng.reload(source="test")
                assert result.ok and result.plan["channels"]["changed"] == ["api"], result
                reloaded = tally.progress
                while tally.progress < reloaded + total // 3:
                    await trio.sleep(0.002)
                eng.drain()                 # SIGTERM: the connections are retired again, for good
                await trio.sleep(1.5)
                tally.stopped = True
                nursery.cancel_scope.cancel()
    print({"requests": total, "answered": len(tally.ok), "unanswered_at_close": len(tally.unread),
           "refused_503": len(tally.refused), "clean_closes": tally.clean_closes,
           "closed_with_answer": tally.closed_with_answer, "resets": len(tally.resets)})
    assert tally.resets == []                                   # never a reset: the client can tell
    assert tally.other == []
    assert tally.clean_closes >= 2 * CONNECTIONS                # the reload's and the drain's
    assert set(tally.ok.values()) == {1}
    deals = {r for (r,) in rows(ledger, "SELECT reference FROM deals")}
    assert deals == set(tally.ok)                               # a deal for each 200, and only those
    assert not set(tally.unread) & deals and not set(tally.refused) & deals
    assert len(tally.ok) > total // 2
