"""env(): a route reads a setting from the environment, never a secret the engine holds there.

`reply Rsp { v = env(msg.name) }` let a counterparty name the variable and read back BSP_AUDIT_KEY,
BSP_FIELD_KEYS, BSP_ADMIN_TOKEN or a channel's token: the name must be a literal (E077), a name the
engine reads a secret from is refused by `bsp check` (E151) and, when the engine has read a secret from it
(a channel's token_env, a deployment's {env: NAME}), when the route runs."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

from dsl.functions import FunctionError, f_env
from dsl.load import compile_source
from formats import secret_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from kit import Client, running  # noqa: E402

ROUTE = '''format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route r {
    receive from front as Req
    deal ECHO { ref = "x"  amount = 1.00  currency = "CNY" }
    reply Req { v = %s }
}
'''


def diags(tmp_path, registry, expr: str):
    r = compile_source(ROUTE % expr, registry, tmp_path / "r.route")
    return r, [(d.code, d.pos.line, d.message) for d in r.diagnostics if d.severity == "error"]


@pytest.mark.parametrize("expr", ["env(msg.name)", 'env("BSP_" + msg.name)', "env(msg.name, \"x\")"])
def test_a_name_from_a_message_is_E077(tmp_path, registry, expr):
    _, got = diags(tmp_path, registry, expr)
    assert [c for c, *_ in got] == ["E077"], got
    assert "env(): argument 1 (name) must be a string literal" in got[0][2]


@pytest.mark.parametrize("name", ["BSP_AUDIT_KEY", "BSP_FIELD_KEYS", "BSP_ADMIN_TOKEN"])
def test_a_variable_holding_an_engine_secret_is_E151(tmp_path, registry, name):
    _, got = diags(tmp_path, registry, f'env("{name}")')
    assert [(c, line) for c, line, _ in got] == [("E151", 9)], got
    assert f"names {name}, which holds a secret" in got[0][2]
    _, ok = diags(tmp_path, registry, 'env("BRANCH_CODE", "001")')
    assert ok == []


def test_at_run_time_a_variable_the_engine_read_a_secret_from_is_refused(monkeypatch):
    monkeypatch.setenv("BSP_AUDIT_KEY", "k" * 44)
    monkeypatch.setenv("PARTNER_TOKEN", "t" * 30)
    monkeypatch.setenv("BRANCH_CODE", "001")
    assert f_env("BRANCH_CODE") == "001"
    assert f_env("PARTNER_TOKEN") == "t" * 30
    secret_env.mark("PARTNER_TOKEN")          # as a channel's token_env is read (engine.channels.options)
    try:
        for name in ("BSP_AUDIT_KEY", "PARTNER_TOKEN"):
            with pytest.raises(FunctionError) as e:
                f_env(name)
            assert "k" * 10 not in str(e.value) and "t" * 10 not in str(e.value)
            assert f"env: {name} holds a secret" in str(e.value)
    finally:
        secret_env.forget("PARTNER_TOKEN")


async def test_a_counterparty_cannot_read_the_audit_key_back(tmp_path, registry, monkeypatch):
    # before: env(msg.name) compiled, and {"name": "BSP_AUDIT_KEY"} was answered with the key
    monkeypatch.setenv("BSP_AUDIT_KEY", "A" * 44)
    r, got = diags(tmp_path, registry, "env(msg.name)")
    if r.program is None or got:
        return                                   # refused by bsp check: the route cannot run
    async with running(r.program, tmp_path / "l.duckdb") as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(b'{"name": "BSP_AUDIT_KEY"}')
        with trio.fail_after(10):
            reply = (await c.recv_json())[0]
        await c.aclose()
    assert "A" * 44 not in str(reply), reply


def test_a_channel_option_read_from_a_variable_marks_it(monkeypatch):
    from engine.channels.options import read_secret
    monkeypatch.setenv("NATS_PARTNER_TOKEN", "n" * 30)
    try:
        assert read_secret("bus", "token_env", "env", "NATS_PARTNER_TOKEN") == "n" * 30
        with pytest.raises(FunctionError, match="env: NATS_PARTNER_TOKEN holds a secret"):
            f_env("NATS_PARTNER_TOKEN")
    finally:
        secret_env.forget("NATS_PARTNER_TOKEN")


def test_a_variable_a_channel_of_the_program_reads_a_secret_from_is_E151(tmp_path, registry):
    text = (ROUTE % 'env("PARTNER_TOKEN")') + '''
channel partner = tcp connect {
    address = "127.0.0.1:9"
    framing = length2
    password_env = "PARTNER_TOKEN"
}
'''
    r = compile_source(text, registry, tmp_path / "r.route")
    got = [(d.code, d.message) for d in r.diagnostics if d.code == "E151"]
    assert got and "which channel partner reads a secret from (option password_env)" in got[0][1], r.diagnostics
