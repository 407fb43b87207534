"""`bsp status` shows whether a listening channel speaks TLS and how many clients failed its handshake or
were refused by its access list: the channel counted them (docs/channels.md), but only the log said so,
so an admin who turned mTLS on could not see a mainframe failing to connect.  Real sockets (port 0)."""
from __future__ import annotations

from pathlib import Path

import trio

from engine.ops.backend import EngineBackend
from engine.ops.banner import channel_line
from engine.ops.gauges import EngineMetrics
from engine.tls import client_context
from opskit import ECHO, live  # (puts tests/engine on the path: conftest_tls)
from conftest_tls import PKI, pki  # noqa: F401,E402  (fixture)

TLS_ECHO = ECHO.replace('    framing = length2\n', '    framing = length2\n    cert = "%(cert)s"\n    key = "%(key)s"\n'
                        '    ca = "%(ca)s"\n    client_cert = "required"\n    allow = ["cn:MAINFRAME01"]\n', 1)


async def test_status_shows_tls_and_counts_failed_handshakes_and_refused_clients(tmp_path: Path, pki: PKI) -> None:
    route = tmp_path / "r.route"
    route.write_text(TLS_ECHO.replace('"%s"', '"x"') % {"cert": pki.server_cert, "key": pki.server_key,
                                                           "ca": pki.ca})
    async with live([route], tmp_path / "l.duckdb") as eng:
        backend = EngineBackend(eng, eng.observer)
        row = (await backend.status())["channels"]["front"]
        assert (row["tls"], row["tls_failures"], row["refused"]) == (True, 0, 0), row
        metrics = EngineMetrics()             # what /metrics samples: the same counts, at 0 from the start
        metrics.watch(eng)
        text = metrics.render().decode()
        assert 'bsp_channel_tls_failures_total{channel="front"} 0.0' in text, text
        assert 'bsp_channel_access_refused_total{channel="front"} 0.0' in text, text
        ch = eng.current.channels["front"]                  # the line `bsp run` prints for it
        assert channel_line("front", ch) == f"channel front: listen 127.0.0.1:{ch.port} (mutual TLS)"
        port = eng.current.channels["front"].port
        plain = await trio.open_tcp_stream("127.0.0.1", port)          # no TLS: the handshake fails
        await plain.send_all(b"\x00\x10plain tcp frame!")
        intruder = await trio.open_ssl_over_tcp_stream(                # TLS, but not on the access list
            "127.0.0.1", port, ssl_context=client_context(pki.ca, pki.intruder_cert, pki.intruder_key, "localhost"))
        await intruder.do_handshake()
        with trio.fail_after(5):
            while True:
                row = (await backend.status())["channels"]["front"]
                if row["tls_failures"] and row["refused"]:
                    break
                await trio.sleep(0.02)
        assert (row["tls"], row["tls_failures"], row["refused"]) == (True, 1, 1), row
        # ... and on /metrics, for an alert (a mainframe whose certificate the channel refuses): before, only
        # `bsp status` and the log had them
        text = metrics.render().decode()
        assert 'bsp_channel_tls_failures_total{channel="front"} 1.0' in text, text
        assert 'bsp_channel_access_refused_total{channel="front"} 1.0' in text, text
        await trio.aclose_forcefully(plain)
        await trio.aclose_forcefully(intruder)
