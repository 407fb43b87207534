"""`bsp status` counts the requests an `http listen` refused before they were whole (a smuggling probe, a
folded header, a slowloris cut at read_timeout): they make no deal, so without this only the log said so.
Real sockets (port 0)."""
from __future__ import annotations

from pathlib import Path

import trio

from engine.ops.backend import EngineBackend
from opskit import live

ROUTE = '''
format Pay = json
channel api = http listen {
    address = "127.0.0.1:0"
    path    = "/payments"
}
route pay {
    receive from api as Pay
    reply Pay { ok = true }
}
'''


async def test_status_counts_bad_http_requests(tmp_path: Path) -> None:
    route = tmp_path / "r.route"
    route.write_text(ROUTE)
    async with live([route], tmp_path / "l.duckdb") as eng:
        backend = EngineBackend(eng, eng.observer)
        assert (await backend.status())["channels"]["api"]["bad_requests"] == 0
        stream = await trio.open_tcp_stream("127.0.0.1", eng.current.channels["api"].port)
        async with stream:
            await stream.send_all(b"POST /payments HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n")
            out = b""
            with trio.fail_after(5):
                while chunk := await stream.receive_some(4096):
                    out += chunk
        assert out.startswith(b"HTTP/1.1 400 ")
        assert (await backend.status())["channels"]["api"]["bad_requests"] == 1
