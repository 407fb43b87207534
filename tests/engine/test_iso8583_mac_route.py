"""Message MACs (DE 64 / 128) end to end: a MAC'd ISO 8583 format on a tcp listen channel and on
calls (plain tcp connect and MUX), real loopback sockets, a real DuckDB ledger, the key from the
environment.  A bad MAC is error kind ``unauthenticated`` (code 63), a rejected deal and a dead
letter; the engine keeps serving.  The key never reaches the ledger."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
import trio

from engine.ops.files import with_referenced_files
from formats import mac
from formats.iso8583 import codec_for
from formats.iso8583.macs import MacPolicy, plan_mac
from kit import REPO, Client, compile_text, deals, framed_counterpart, running

KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
PLAIN = codec_for("iso8583_1987_ascii")
NET = PLAIN.with_mac(MacPolicy("retail-des", KEY, plan_mac(PLAIN.spec, "retail-des", None), None,
                               frozenset({"0800", "0810"})))

FORMAT = ('format Net = iso8583 iso8583_1987_ascii mac_algorithm "retail-des" mac_key_env "BSP_TEST_MAC_KEY" '
          'mac_exempt ["0800", "0810"]\n')
ERROR_REPLY = """
    on error reply Net {
        t    = "0210"
        "3"  = msg["3"]
        "4"  = msg["4"]
        "7"  = msg["7"]
        "11" = msg["11"]
        "39" = error.code
        "41" = msg["41"]
        "49" = msg["49"]
    }
"""
LISTEN = FORMAT + """
channel pos = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}

route purchase {
    receive from pos as Net when msg.t == "0200"
    deal PURCHASE { ref = msg["11"]  amount = 0 }
    reply Net {
        t    = "0210"
        "3"  = msg["3"]
        "4"  = msg["4"]
        "7"  = msg["7"]
        "11" = msg["11"]
        "39" = "00"
        "41" = msg["41"]
        "49" = msg["49"]
        "64" = "FFFFFFFFFFFFFFFF"
    }""" + ERROR_REPLY + """}
"""


def req(stan: str, amount: str = "000000001050") -> dict[str, str]:
    return {"t": "0200", "2": "4111111111111111", "3": "000000", "4": amount, "7": "1125210000", "11": stan,
            "41": "TERM0001", "49": "840"}


def table(ledger: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def no_key_in(ledger: Path) -> None:
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        for t in ("deals", "deal_steps", "deal_events", "dead_letters", "config_versions"):
            text = str(con.execute(f"SELECT * FROM {t}").fetchall()).upper()
            assert KEY.hex().upper() not in text, t
    finally:
        con.close()


@pytest.fixture
def mac_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BSP_TEST_MAC_KEY", KEY.hex().upper())


async def test_macd_request_gets_a_macd_reply_and_a_tampered_one_code_63(tmp_path: Path, mac_key: None) -> None:
    ledger = tmp_path / "l.duckdb"
    good = NET.encode(req("000001"))
    tampered = bytearray(NET.encode(req("000002")))
    at = tampered.index(b"000000001050") + 7                    # DE 4: 1050 becomes 9050
    tampered[at] = ord("9")
    async with running(compile_text(tmp_path, LISTEN), ledger) as sb:
        c = await Client.open(sb.channel("pos").port)
        with trio.fail_after(10):
            await c.send(good)
            (r1,) = await c.recv()
            await c.send(bytes(tampered))
            (r2,) = await c.recv()
            await c.send(NET.encode(req("000003")))            # the engine keeps serving
            (r3,) = await c.recv()
        await c.aclose()
    reply = NET.decode(r1)                                     # verifies the reply's MAC
    assert (reply["t"], reply["11"], reply["39"]) == ("0210", "000001", "00")
    assert reply["64"] == mac.compute("retail-des", KEY, r1[:-16], 8).hex().upper() != "FFFFFFFFFFFFFFFF"
    refused = NET.decode(r2)
    assert (refused["11"], refused["39"]) == ("000002", "63")  # security violation, the STAN echoed
    assert NET.decode(r3)["39"] == "00"
    d = deals(ledger)
    assert [(x["reference"], x["status"], x["response_code"]) for x in d] == [
        ("000001", "committed", "00"), (None, "rejected", "63"), ("000003", "committed", "00")]   # DE 39 answered
    reason = d[1]["reason"]
    assert reason.startswith("unauthenticated: request of ") and "byte 83, field 64: MTI 0200: the MAC in field " \
        "64 does not verify" in reason, reason
    assert bytes(tampered[-16:]).decode() not in reason and NET.encode(req("000002"))[-16:].decode() not in reason
    ((kind, code, raw, dreason),) = table(ledger, "SELECT error_kind, error_code, raw, reason FROM dead_letters")
    assert (kind, code, bytes(raw), dreason) == ("unauthenticated", "63", bytes(tampered), reason)
    no_key_in(ledger)


async def test_missing_mac_is_unauthenticated_too(tmp_path: Path, mac_key: None) -> None:
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, LISTEN), ledger) as sb:
        c = await Client.open(sb.channel("pos").port)
        with trio.fail_after(10):
            await c.send(PLAIN.encode(req("000007")))
            (r,) = await c.recv()
        await c.aclose()
    assert NET.decode(r)["39"] == "63"
    (d,) = deals(ledger)
    assert d["status"] == "rejected" and "byte 4, field 64: MTI 0200: the MAC (field 64) is missing" in d["reason"]


# ------------------------------------------------------------------ answers to a call

CALL = FORMAT + """
channel pos = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}

channel issuer = tcp connect {
    address = "127.0.0.1:1"
    framing = length2
    timeout = 3s
%s}

route purchase {
    receive from pos as Net when msg.t == "0200"
    deal PURCHASE { ref = msg["11"]  amount = 0 }
    call auth = issuer as Net reply Net {
        t    = "0200"
        "2"  = msg["2"]
        "3"  = msg["3"]
        "4"  = msg["4"]
        "7"  = msg["7"]
        "11" = msg["11"]
        "41" = msg["41"]
        "49" = msg["49"]
    } expect auth["39"] == "00"
    reply Net {
        t    = "0210"
        "3"  = msg["3"]
        "4"  = msg["4"]
        "7"  = msg["7"]
        "11" = msg["11"]
        "39" = auth["39"]
        "41" = msg["41"]
        "49" = msg["49"]
    }""" + ERROR_REPLY + """}
"""


async def issuer(nursery: Any, seen: list[Any]) -> int:
    """An issuer host on a real socket: verifies each request's MAC, answers a MAC'd 0210 (a reversal:
    0410 / 0430); for STAN 000666 the 0210's MAC is forged (last hex digit changed)."""

    def answer(p: bytes) -> bytes:
        r = NET.decode(p)                       # raises (and the test fails) on a bad request MAC
        seen.append(r)
        mti = r["t"][:2] + str(int(r["t"][2]) + 1) + "0"      # 0200 -> 0210, 0420/0421 -> 0430
        echo = ("3", "4", "7", "11", "41", "49") if mti == "0210" else \
            [k for k in r if k not in ("t", "64", "128")]          # a reversal's answer echoes it
        out = bytearray(NET.encode({**{k: r[k] for k in echo}, "t": mti, "39": "00"}))
        if r["11"] == "000666" and mti == "0210":
            out[-1] = ord("0") if out[-1] != ord("0") else ord("1")
        return bytes(out)

    return await framed_counterpart(nursery, answer, width=2)


@pytest.mark.parametrize("mux", ["", "    pool = 1\n    match = iso8583\n"], ids=["fifo", "mux"])
async def test_forged_answer_fails_the_deal_unauthenticated(tmp_path: Path, nursery: Any, mac_key: None,
                                                            mux: str) -> None:
    seen: list[Any] = []
    port = await issuer(nursery, seen)
    ledger = tmp_path / "l.duckdb"
    prog = compile_text(tmp_path, CALL % mux)
    async with running(prog, ledger, overrides={"issuer": {"address": f"127.0.0.1:{port}"}}) as sb:
        c = await Client.open(sb.channel("pos").port)
        with trio.fail_after(15):
            for stan in ("000001", "000666", "000002"):
                await c.send(NET.encode(req(stan)))
                (r,) = await c.recv()
                seen.append(("reply", NET.decode(r)["11"], NET.decode(r)["39"]))
        await c.aclose()
        if mux:
            assert sb.channel("issuer").unauthentic == 1
    assert [s for s in seen if isinstance(s, tuple)] == [
        ("reply", "000001", "00"), ("reply", "000666", "63"), ("reply", "000002", "00")]
    assert [s["11"] for s in seen if isinstance(s, dict) and s["t"] == "0200"] == ["000001", "000666", "000002"]
    # an answer that cannot be trusted leaves the authorization in doubt: it is reversed, as after a timeout
    assert [(s["t"], s["11"]) for s in seen if isinstance(s, dict) and s["t"] != "0200"] == [("0420", "000666")]
    by_ref = {d["reference"]: d for d in deals(ledger)}
    assert by_ref["000001"]["status"] == by_ref["000002"]["status"] == "committed"
    forged = by_ref["000666"]
    assert (forged["status"], forged["response_code"]) == ("failed", "63")
    assert forged["reason"].startswith("unauthenticated: call auth: ") and "does not verify" in forged["reason"]
    steps = table(ledger, "SELECT s.step, s.kind, s.outcome FROM deal_steps s JOIN deals d USING (deal_id) "
                          "WHERE d.reference = '000666' AND s.kind = 'reversal'")
    assert steps == [("auth.reversal", "reversal", "acknowledged")]
    ((kind,),) = table(ledger, "SELECT error_kind FROM dead_letters")
    assert kind == "unauthenticated"
    no_key_in(ledger)


# ------------------------------------------------------------------ start-up and configuration

def test_missing_key_variable_is_one_start_error(tmp_path: Path) -> None:
    route = tmp_path / "net.route"
    route.write_text(LISTEN)
    env = {k: v for k, v in __import__("os").environ.items() if k != "BSP_TEST_MAC_KEY"}
    check = subprocess.run([sys.executable, "-m", "engine.cli", "check", str(route)], cwd=str(REPO), env=env,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr          # bsp check needs no key
    run = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(route), "--ledger",
                          str(tmp_path / "l.duckdb")], cwd=str(REPO), env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    lines = [x for x in run.stderr.splitlines() if not x.startswith("warning: no audit key")]
    assert lines == [f"error: {route}:1:1: format Net: option mac_key_env: environment variable BSP_TEST_MAC_KEY "
                     f"is not set (export it before `bsp run`)"], run.stderr


def test_key_file_is_not_versioned_into_the_ledger(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "net.mac"
    key.parent.mkdir()
    key.write_text(KEY.hex() + "\n")
    text = LISTEN.replace('mac_key_env "BSP_TEST_MAC_KEY"', 'mac_key_file "keys/net.mac"')
    prog = compile_text(tmp_path, text)
    assert prog.formats["Net"].options["mac_key_file"] == str(key)      # the IR names the file, not the key
    assert KEY.hex() not in str(prog.to_json())
    versioned = with_referenced_files(prog)
    assert str(key) not in versioned.sources
    assert not any(KEY.hex() in s for s in versioned.sources.values())


def test_key_file_need_not_exist_for_check(tmp_path: Path) -> None:
    text = LISTEN.replace('mac_key_env "BSP_TEST_MAC_KEY"', 'mac_key_file "/run/secrets/net.mac"')
    assert compile_text(tmp_path, text).formats["Net"].options["mac_key_file"] == "/run/secrets/net.mac"


# ------------------------------------------------------------------ bsp encode / bsp decode

def test_bsp_encode_and_decode_with_a_macd_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import typer
    from typer.testing import CliRunner

    from engine.commands.codec import register
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    route = tmp_path / "net.route"
    route.write_text(LISTEN)
    line = json.dumps(req("000042")) + "\n"

    def bsp(*args: str, input: bytes) -> Any:
        return CliRunner().invoke(app, list(args), input=input)

    monkeypatch.delenv("BSP_TEST_MAC_KEY", raising=False)
    r = bsp("encode", "--route", str(route), "--name", "Net", "--framing", "length2", "-", input=line.encode())
    assert r.exit_code != 0 and "option mac_key_env: environment variable BSP_TEST_MAC_KEY is not set" in r.stderr
    monkeypatch.setenv("BSP_TEST_MAC_KEY", KEY.hex())
    r = bsp("encode", "--route", str(route), "--name", "Net", "--framing", "length2", "-", input=line.encode())
    assert r.exit_code == 0, r.stderr
    frame = r.stdout_bytes[2:]
    assert NET.decode(frame)["11"] == "000042"                  # MAC'd with the key: verifies
    r = bsp("decode", "--route", str(route), "--name", "Net", "--framing", "length2", "-", input=r.stdout_bytes)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["64"] == frame[-16:].decode()
    bad = bytearray(len(frame).to_bytes(2, "big") + frame)
    bad[10] ^= 1
    r = bsp("decode", "--route", str(route), "--name", "Net", "--framing", "length2", "-", input=bytes(bad))
    assert r.exit_code != 0 and "field 64: MTI 0200: the MAC in field 64 does not verify" in r.stderr, r.stderr


def test_formats_iso8583_md_route_examples_compile(tmp_path: Path) -> None:
    import re

    text = (REPO / "docs" / "formats-iso8583.md").read_text()
    blocks = re.findall(r"```route\n(.*?)```", text, re.S)
    assert any("mac_algorithm" in b for b in blocks)
    for i, block in enumerate(blocks):
        compile_text(tmp_path, block, name=f"iso{i}.route")
