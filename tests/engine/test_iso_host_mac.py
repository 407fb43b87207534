"""The ISO 8583 host simulator with message MACs (engine/sim/iso_host.py, ``mac=`` / ``--mac-algorithm``):
it verifies each request's MAC, answers a missing or wrong one with DE 39 "63" (counted in ``bad_macs``)
and MACs its answers.  Real loopback sockets; the command line in a real process."""
from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from engine.sim.iso_host import IsoHost
from formats import mac
from formats.iso8583 import codec_for
from formats.iso8583.macs import MacPolicy, plan_mac
from formats.mac import MacError
from kit import REPO, Client

KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
PLAIN = codec_for("iso8583_1987_ascii")


def policy(algorithm: str = "retail-des", key: bytes = KEY, exempt: frozenset[str] = frozenset()) -> MacPolicy:
    return MacPolicy(algorithm, key, plan_mac(PLAIN.spec, algorithm, None), None, exempt)


NET = PLAIN.with_mac(policy(exempt=frozenset({"0800", "0810"})))


def req(stan: str, amount: str = "000000001050") -> dict[str, str]:
    return {"t": "0200", "2": "4111111111111111", "3": "000000", "4": amount, "7": "1125210000", "11": stan,
            "41": "TERM0001", "49": "840"}


async def test_sim_verifies_request_macs_and_macs_its_answers(nursery) -> None:
    host = IsoHost(mac=policy(exempt=frozenset({"0800", "0810"})))
    await nursery.start(functools.partial(host.serve, "127.0.0.1", 0))
    tampered = bytearray(NET.encode(req("000002")))
    at = tampered.index(b"000000001050") + 7                   # DE 4: 1050 becomes 9050
    tampered[at] = ord("9")
    other_key = PLAIN.with_mac(policy(key=bytes.fromhex("FEDCBA98765432100123456789ABCDEF")))
    c = await Client.open(host.port)
    with trio.fail_after(10):
        await c.send(NET.encode(req("000001")), bytes(tampered), PLAIN.encode(req("000003")),
                     other_key.encode(req("000004")), NET.encode({"t": "0800", "7": "1125210000", "11": "000005",
                                                                  "70": "301"}))
        raw = await c.recv(5)
    await c.stream.aclose()
    answers = [NET.decode(r) for r in raw]                     # NET.decode verifies each answer's MAC
    assert [(a["t"], a["11"], a["39"]) for a in answers] == [
        ("0210", "000001", "00"), ("0210", "000002", "63"), ("0210", "000003", "63"), ("0210", "000004", "63"),
        ("0810", "000005", "00")]
    for r in raw[:4]:                                          # DE 64 last, over every byte before it
        assert r[-16:].decode() == mac.compute("retail-des", KEY, r[:-16], 8).hex().upper()
    assert "64" not in answers[4] and "38" not in answers[1]   # the exempt echo carries no MAC; no approval code
    assert (host.bad_macs, host.bad_requests, host.requests, host.echoes) == (3, 0, 4, 1)
    with pytest.raises(MacError, match="does not verify"):     # an answer MAC'd with another key is caught
        other_key.decode(raw[0])


async def test_sim_without_mac_is_unchanged(nursery) -> None:
    host = IsoHost()
    await nursery.start(functools.partial(host.serve, "127.0.0.1", 0))
    c = await Client.open(host.port)
    with trio.fail_after(10):
        await c.send(PLAIN.encode(req("000001")), NET.encode(req("000002")))
        raw = await c.recv(2)
    await c.stream.aclose()
    answers = [PLAIN.decode(r) for r in raw]
    assert [(a["11"], a["39"], "64" in a) for a in answers] == [("000001", "00", False), ("000002", "00", False)]
    assert host.bad_macs == 0


def test_sim_command_line_macs(tmp_path: Path) -> None:
    hmac_net = PLAIN.with_mac(policy("hmac-sha256", b"sim-secret"))
    port_file = tmp_path / "port"
    env = {**os.environ, "SIM_MAC_KEY": "sim-secret"}
    proc = subprocess.Popen([sys.executable, "-m", "engine.sim.iso_host", "--port", "0", "--port-file",
                             str(port_file), "--mac-algorithm", "hmac-sha256", "--mac-key-env", "SIM_MAC_KEY"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async def talk() -> list[bytes]:
            with trio.fail_after(20):
                while not port_file.exists() or not port_file.read_text():
                    assert proc.poll() is None, f"iso host exited with {proc.returncode}"
                    await trio.sleep(0.05)
                c = await Client.open(int(port_file.read_text()))
                await c.send(hmac_net.encode(req("000001")), PLAIN.encode(req("000002")))
                raw = await c.recv(2)
                await c.stream.aclose()
                return raw
        raw = trio.run(talk)
    finally:
        proc.terminate()
        proc.wait()
    assert [(a["11"], a["39"]) for a in map(hmac_net.decode, raw)] == [("000001", "00"), ("000002", "63")]


def test_sim_command_line_refuses_a_missing_or_bad_key() -> None:
    base = [sys.executable, "-m", "engine.sim.iso_host", "--port", "0", "--mac-algorithm", "retail-des",
            "--mac-key-env", "SIM_MAC_KEY"]
    env = {k: v for k, v in os.environ.items() if k != "SIM_MAC_KEY"}
    r = subprocess.run(base, cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "SIM_MAC_KEY" in r.stderr and "not set" in r.stderr
    r = subprocess.run(base, cwd=REPO, env={**env, "SIM_MAC_KEY": "0123456789ABCDEF0123"}, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "16 bytes" in r.stderr and "0123456789ABCDEF0123" not in r.stderr
    r = subprocess.run(base[:-2], cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "go together" in r.stderr
