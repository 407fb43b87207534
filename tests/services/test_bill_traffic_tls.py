"""``python -m engine.sim.bill_traffic --ca/--cert/--key``: traffic for an engine whose mainframe channel speaks
TLS (the admin tour's TLS step), mutual TLS included.  The simulator could only speak plain TCP, so once the
channel had its certificate there was no way to drive it.  Certificates from `bsp certs dev`; a real engine
(its own thread) with the shipped bill payment route, real sockets on 127.0.0.1, a real DuckDB ledger."""
from __future__ import annotations

import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest
import trio

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.registry import default_registry
from engine.runtime import Switchboard
from engine.sim import bill_traffic

BSP = str(Path(sys.executable).parent / "bsp")


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    d = tmp_path / "certs"
    r = subprocess.run([BSP, "certs", "dev", str(d)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return d


@pytest.fixture
def engine(tmp_path: Path, certs: Path, held_port) -> Iterator[tuple[int, object, list]]:
    """The bill payment route served with its mainframe channel on mutual TLS (client_cert required);
    yields (mainframe port, the biller's port (conftest.HeldPort: release() it as the biller is served there),
    the switchboard's stats once stopped)."""
    registry = default_registry()
    program = compile_paths([bill_traffic.ROUTE], registry).program
    biller_port = held_port.port
    ports: queue.Queue = queue.Queue()
    stop = threading.Event()
    stats: list = []

    async def serve() -> None:
        async with open_ledger(tmp_path / "ledger.duckdb", audit_key=None, keyring=None) as ledger:
            sb = Switchboard(program, registry, ledger=ledger, overrides={
                "mainframe": {"address": "127.0.0.1:0", "cert": str(certs / "server.pem"),
                              "key": str(certs / "server.key"), "ca": str(certs / "ca.pem"),
                              "client_cert": "required"},
                "biller": {"address": f"127.0.0.1:{biller_port}"}})
            async with trio.open_nursery() as nursery:
                await nursery.start(sb.run)
                ports.put(sb.channel("mainframe").port)
                while not stop.is_set():
                    await trio.sleep(0.02)
                stats.append(sb.channel("mainframe"))
                sb.drain()

    t = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    t.start()
    port = ports.get(timeout=60)                # a hang guard: a loaded CI machine starts an engine slowly
    try:
        yield port, held_port, stats
    finally:
        stop.set()
        t.join(20)
        assert not t.is_alive()


def test_it_drives_an_engine_whose_mainframe_channel_is_mutual_tls(engine, certs, capsys) -> None:
    port, biller, _stats = engine
    rc = bill_traffic.main(["--count", "60", "--mainframe", f"127.0.0.1:{port}", "--biller",
                            f"127.0.0.1:{biller.release()}", "--ca", str(certs / "ca.pem"),
                            "--cert", str(certs / "client.pem"), "--key", str(certs / "client.key")])
    out, err = capsys.readouterr()
    assert rc == 0, (out, err)
    assert out.startswith("sent 60 bill payment request(s)") and "60 replies" in out, out
    # with the channel's name for itself: localhost is on the dev certificate too
    rc = bill_traffic.main(["--count", "5", "--mainframe", f"127.0.0.1:{port}", "--no-biller", "--ca",
                            str(certs / "ca.pem"), "--cert", str(certs / "client.pem"), "--key",
                            str(certs / "client.key"), "--server-name", "localhost", "--reply-timeout", "5"])
    out, err = capsys.readouterr()
    assert "5 replies" in out, (out, err)       # (the biller is gone: replies 91/05 say so, still replies)


def test_tls_problems_say_which_option_to_fix(engine, certs, capsys, tmp_path: Path) -> None:
    port, _biller, _stats = engine
    base = ["--count", "3", "--mainframe", f"127.0.0.1:{port}", "--no-biller", "--reply-timeout", "5"]
    # no client certificate, but the channel requires one: the engine ends the handshake
    rc = bill_traffic.main([*base, "--ca", str(certs / "ca.pem")])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith(f"error: --mainframe 127.0.0.1:{port}: TLS handshake failed: "), err
    assert "give --cert and --key (the mainframe's client certificate)" in err, err
    # the engine's certificate from a CA we were not given
    other = tmp_path / "other"
    assert subprocess.run([BSP, "certs", "dev", str(other)], capture_output=True).returncode == 0
    rc = bill_traffic.main([*base, "--ca", str(other / "ca.pem"), "--cert", str(certs / "client.pem"),
                            "--key", str(certs / "client.key")])
    err = capsys.readouterr().err
    assert rc == 1 and "CERTIFICATE_VERIFY_FAILED" in err and "--ca must hold the CA" in err, err
    # a usage error: a key without its certificate, a CA file that is not one
    assert bill_traffic.main([*base, "--key", str(certs / "client.key")]) == 2
    assert "--key given without --cert" in capsys.readouterr().err
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    assert bill_traffic.main([*base, "--ca", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err
    assert bill_traffic.main([*base, "--server-name", "localhost"]) == 2
    assert "--server-name applies to TLS" in capsys.readouterr().err
    assert bill_traffic.main([*base, "--cert", str(certs / "client.pem")]) == 2
    assert "holds no private key, and no --key was given" in capsys.readouterr().err
    # plain TCP against the TLS channel: the engine ends the connection; the hint names the options
    rc = bill_traffic.main(base)
    err = capsys.readouterr().err
    assert rc == 1 and "hint: a mainframe channel with TLS" in err and "give --ca" in err, err
    assert "its mainframe channel speaks TLS, and this run spoke plain TCP" in err and "drained" not in err, err
