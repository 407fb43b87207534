"""The admin API of a live engine probed as an attacker or a careless client would: paths, tokens, bodies."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import trio

from engine.admin.endpoints import ENDPOINTS
from engine.ops.serve import AdminOptions, OpsOptions, run_live
from engine.registry import default_registry
from opskit import ECHO, compile_file

TOKEN = "probe-token-" + "q" * 30


async def _engine(tmp_path: Path, nursery: trio.Nursery) -> int:
    """A live engine serving the echo route with its admin API on a free loopback port; that port."""
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    registry = default_registry()
    ready = trio.Event()
    box: list = []
    ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=TOKEN),
                     hooks=[lambda engine: (box.append(engine), ready.set())])
    nursery.start_soon(partial(run_live, compile_file(route, registry), registry, ledger_path=tmp_path / "l.duckdb",
                               load=lambda: ([route], {}), grace=2.0, ops=ops))
    await ready.wait()
    return box[0].admin_port


async def _raw(port: int, request: bytes) -> tuple[int, bytes]:
    """One request on its own connection, as sent (no client normalises the path); (status, body)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(request)
    data = b""
    with trio.fail_after(10):
        while chunk := await stream.receive_some(65536):
            data += chunk
    await stream.aclose()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _req(method: str, target: str, *, token: str | None = TOKEN) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"{method} {target} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n").encode()


async def test_a_path_spelled_another_way_is_the_same_endpoint_never_a_500(nursery, tmp_path: Path) -> None:
    # "/reload/", "//deals" and "/%72eload" route to their endpoints; reading the endpoint's query parameters
    # looked the endpoint up by the path as sent, failed with a KeyError and answered 500 with a traceback logged
    port = await _engine(tmp_path, nursery)
    for method, target, status, says in [
        ("POST", "/reload/?dry_run=1", 200, b'"dry_run":true'),
        ("POST", "/%72eload?dry_run=1", 200, b'"dry_run":true'),
        ("GET", "//deals?limit=5", 200, b'"count":'),
        ("GET", "/deals/?limit=5", 200, b'"count":'),
        ("GET", "/dead-letters/?limit=5", 200, b'"count":'),
        ("GET", "/deals/?limit=0", 400, b"query parameter 'limit': expected a number from 1 to 1000"),
        ("POST", "/reload/?dry_run=maybe", 400, b"query parameter 'dry_run'"),
    ]:
        got, body = await _raw(port, _req(method, target))
        assert (got, says in body) == (status, True), (method, target, got, body)


async def test_every_endpoint_but_health_wants_the_token_in_the_header(nursery, tmp_path: Path) -> None:
    port = await _engine(tmp_path, nursery)
    for e in ENDPOINTS:
        target = e.path.replace("{id}", "0123456789abcdef")
        for token in (None, "x" * len(TOKEN), TOKEN[:-1], TOKEN + "x"):
            status, body = await _raw(port, _req(e.method, target, token=token))
            assert status == (200 if not e.auth else 401), (e.path, token, status, body)
            assert TOKEN.encode() not in body
        # a token in the query string is never read: it would end up in proxies' and shells' logs
        status, _ = await _raw(port, _req(e.method, f"{target}?token={TOKEN}&access_token={TOKEN}", token=None))
        assert status == (200 if not e.auth else 401), e.path
    status, body = await _raw(port, _req("GET", "/health", token=None))
    assert body == b'{"status":"ok"}'                      # liveness tells nothing else
    for method, target in [("DELETE", "/status"), ("GET", "/reload"), ("GET", "/nope"), ("OPTIONS", "*")]:
        status, body = await _raw(port, _req(method, target, token=None))
        assert status == 401, (method, target, status)     # nothing about the API without the token
    status, body = await _raw(port, _req("DELETE", "/status"))
    assert status == 405 and b"allowed: GET, HEAD" in body


async def test_two_authorization_headers_are_refused_whichever_comes_first(nursery, tmp_path: Path) -> None:
    port = await _engine(tmp_path, nursery)
    wrong = "w" * len(TOKEN)
    for first, second in ((TOKEN, wrong), (wrong, TOKEN), (TOKEN, TOKEN)):
        status, body = await _raw(port, (f"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {first}\r\n"
                                         f"Authorization: Bearer {second}\r\nConnection: close\r\n\r\n").encode())
        assert status == 401 and b"more than one Authorization header" in body, (first, second, body)
        assert TOKEN.encode() not in body
