"""A retired HTTP server (an ``http listen`` channel a reload changed or removed, or a drain): a connection
waiting for a request when the retirement comes first answers a request that had already arrived (in its
receive buffer, not yet read), with ``Connection: close``, then ends cleanly; with nothing there it ends
within ``ARRIVED_WINDOW``.  Before, such a connection was closed with the request unanswered.  Real
loopback sockets (the client's writes need no trio checkpoint: the server has not run since)."""
from __future__ import annotations

import socket

import trio
import trio.testing

from engine.channels.retire import ARRIVED_WINDOW, GentleClose
from engine.http import Request, Response, Router, serve_connection, serve_http


def router(seen: list[str]) -> Router:
    r = Router()

    @r.route("GET", "/pay/{ref}")
    async def pay(request: Request) -> Response:
        seen.append(request.path_params["ref"])
        return Response.json({"ref": request.path_params["ref"]})

    return r


def get(ref: str) -> bytes:
    return b"GET /pay/%s HTTP/1.1\r\nhost: bsp\r\n\r\n" % ref.encode()


def connect_sync(port: int) -> tuple[socket.socket, trio.SocketStream]:
    raw = socket.create_connection(("127.0.0.1", port))
    return raw, trio.SocketStream(trio.socket.from_stdlib_socket(raw))


async def read_to_eof(stream: trio.SocketStream) -> bytes:
    got = b""
    with trio.fail_after(5):
        while data := await stream.receive_some(65536):   # a reset would raise BrokenResourceError
            got += data
    return got


def answers(raw: bytes) -> list[tuple[bytes, bytes]]:
    """(status line, body) of each answer, checking that each says ``connection: close`` when it ends."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
        n = int(headers[b"content-length"])
        out.append((lines[0].split()[1], rest[:n], headers.get(b"connection")))
        raw = rest[n:]
    return out


async def test_a_request_arrived_before_its_first_read_is_answered_when_already_retired(nursery) -> None:
    # a connection accepted just before accepting stopped, its first request in the receive buffer
    seen: list[str] = []
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    raw, client = connect_sync(port)
    raw.send(get("A1"))
    server = await listeners[0].accept()
    retire = trio.Event()
    retire.set()
    nursery.start_soon(lambda: serve_connection(GentleClose(server), router(seen), retire=retire))
    got = answers(await read_to_eof(client))
    assert [(status, conn) for status, _, conn in got] == [(b"200", b"close")]
    assert seen == ["A1"]
    await client.aclose()
    await listeners[0].aclose()


async def test_a_keep_alive_connection_answers_the_request_that_arrived_as_the_server_retired(nursery) -> None:
    # end to end through serve_http (which of the retirement and the read the server sees first varies:
    # the test above is the one that pins the case down)
    seen: list[str] = []
    retire = trio.Event()
    port = await nursery.start(lambda task_status: serve_http(router(seen), "127.0.0.1", 0, retire=retire,
                                                              task_status=task_status))
    raw, client = connect_sync(port)
    await client.send_all(get("K1"))
    with trio.fail_after(5):
        got = b""
        while not got.endswith(b'{"ref":"K1"}'):
            got += await client.receive_some(65536)
    await trio.testing.wait_all_tasks_blocked()   # the connection waits for its next request
    raw.send(get("K2"))                           # arrived, not read ...
    retire.set()                                  # ... as the server retires
    rest = answers(await read_to_eof(client))
    assert [(status, body, conn) for status, body, conn in rest] == [(b"200", b'{"ref":"K2"}', b"close")]
    assert seen == ["K1", "K2"]
    await client.aclose()


async def test_an_idle_keep_alive_connection_ends_within_the_arrived_window(nursery) -> None:
    retire = trio.Event()
    port = await nursery.start(lambda task_status: serve_http(router([]), "127.0.0.1", 0, retire=retire,
                                                              task_status=task_status))
    client = await trio.open_tcp_stream("127.0.0.1", port)
    await client.send_all(get("I1"))
    with trio.fail_after(5):
        got = b""
        while not got.endswith(b'{"ref":"I1"}'):
            got += await client.receive_some(65536)
    await trio.testing.wait_all_tasks_blocked()
    start = trio.current_time()
    retire.set()
    assert await read_to_eof(client) == b""
    assert trio.current_time() - start < ARRIVED_WINDOW + 0.5
    await client.aclose()
