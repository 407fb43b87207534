"""A released held deal's reply: the sender was answered `held` when the screening held it, and its connection
is not kept for the officer's decision, so the reply of the released run goes to no one.  The release says so
and keeps it: ``decide`` returns ``run.reply`` (``delivered`` false, ``kept_on`` the new deal, the reply's
values, ``why``), the held deal gets the event ``hold release ran`` (the run's deal, outcome and where the reply
went), `bsp deals resolve` prints where it went, and `bsp deals show` of both deals says it.  Before
2026-11-28 nothing told the officer the reply was dropped.  Real sockets (127.0.0.1 port 0), a real DuckDB ledger
in tmp_path.  docs/screening.md#holding-a-hit"""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.commands.deals_held import report
from engine.deal_hold import decide, held_deals
from engine.deadletter import switchboard_injector
from engine.ledger_query import get_deal
from kit import Client, compile_text, framed_counterpart, running
from test_screen_hold import LIST, ROUTE, req


@pytest.mark.parametrize("sync", ["duckdb", "journal"])
async def test_a_released_deals_reply_is_kept_and_said_to_go_to_no_one(nursery, tmp_path: Path, capsys,
                                                                      sync) -> None:
    # (journal: bsp run's default ledger, whose rows reach DuckDB after the journal; the release reads its run's
    # deal once loaded)
    (tmp_path / "list.csv").write_text(LIST, encoding="utf-8")
    port = await framed_counterpart(nursery, lambda p: b'{"status":"OK"}', 4)
    program = compile_text(tmp_path, ROUTE)
    ledger = tmp_path / "ledger.duckdb"
    over = {"back": {"address": f"127.0.0.1:{port}"}}
    async with running(program, ledger, over) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(req("H1", "Viktor Kurganoff"))
        (first,) = await c.recv_json(1)
        await c.aclose()                                  # the sender goes away with its `held` answer
        assert first["code"] == "09"
    (held,) = held_deals(ledger)
    async with running(program, ledger, over, sync=sync) as sb:
        done = await decide(sb.ledger, held["deal_id"], "release", "other person (ticket CMP-2)", "officer-ann",
                            via="ledger file", injector=switchboard_injector(sb), host="ops-box")
    assert done is not None and done["run"]["ok"], done
    new = done["run"]["deal"]
    reply = done["run"]["reply"]
    assert reply["delivered"] is False and reply["kept_on"] == new, reply
    assert reply["values"] == {"ref": "H1", "code": "00"}, reply
    assert "no one" in reply["why"] and "held" in reply["why"], reply
    events = get_deal(ledger, held["deal_id"])["events"]
    ran = [e["detail"] for e in events if e["to_state"] == "hold release ran"]
    assert len(ran) == 1 and ran[0]["deal"] == new and ran[0]["ok"] is True, events
    assert ran[0]["reply"]["delivered"] is False and ran[0]["reply"]["kept_on"] == new, ran
    assert "values" not in ran[0]["reply"]            # the reply itself stays on its own deal (its fields' rules)
    report(done, str(ledger))
    said = capsys.readouterr().out
    assert "its reply went to no one" in said and f"kept on deal {new}" in said, said
    assert f"bsp deals show {new}" in said and orjson.dumps(reply["values"]).decode() in said, said
    out = CliRunner().invoke(app, ["deals", "--ledger", str(ledger), "show", new])
    assert out.exit_code == 0, out.output
    assert f"reply not sent on the sender's connection: this deal is the release of held deal {held['deal_id']}" in out.output, out.output
    out = CliRunner().invoke(app, ["deals", "--ledger", str(ledger), "show", held["deal_id"]])
    assert out.exit_code == 0, out.output
    assert f"released: ran as deal {new} (committed); its reply went to no one, kept on deal {new}" in out.output, \
        out.output


NATS_ROUTE = """
format Req = json classify ["name:personal"]
format Rsp = json
table sanctions = csv "list.csv" key entry_id

channel orders = nats consume {{
    url           = "{url}"
    subject       = "pay.new"
    stream        = "PAY"
    durable       = "bsp-pay"
    fetch_wait    = 200ms
    reply_subject = "pay.replies"
    on error reply Rsp {{ ref = msg.ref  code = error.code  kind = error.kind }}
}}

channel back = tcp connect {{
    address = "127.0.0.1:1"
    framing = length4
    timeout = 5s
}}

route pay {{
    receive from orders as Req
    deal PAYMENT {{ ref = msg.ref  amount = 10.00  currency = "USD"  key = msg.ref }}
    screen party {{ name = msg.name  list = sanctions  on_hit = "hold"  code = "09"  text = "held for review" }}
    call post = back as Rsp {{ ref = msg.ref }} expect post.status == "OK"
    reply Rsp {{ ref = msg.ref  code = "00" }}
}}
"""


async def test_a_released_deals_reply_is_delivered_to_a_nats_channels_reply_subject(nursery, tmp_path: Path,
                                                                                   capsys) -> None:
    # a nats consume channel has an address of its own for replies (reply_subject): the released run's reply is
    # published there, and the release says so; the reply is also kept on the run's deal
    from natskit import bound, collect, eventually, nats_client, nats_registry, nats_server, value

    (tmp_path / "list.csv").write_text(LIST, encoding="utf-8")
    port = await framed_counterpart(nursery, lambda p: b'{"status":"OK"}', 4)
    ledger = tmp_path / "ledger.duckdb"
    async with nats_server(tmp_path / "nats") as srv, nats_client(srv.url) as nc:
        program = compile_text(tmp_path, NATS_ROUTE.format(url=srv.url), registry=nats_registry())
        over = {"back": {"address": f"127.0.0.1:{port}"}}
        await nc.call(nc.nc.subscribe, "pay.replies", cb=collect(replies := []))
        async with running(program, ledger, over, registry=nats_registry()) as sb:
            await bound(sb.channel("orders"))
            await nc.publish("pay.new", req("N1", "Viktor Kurganoff"))
            await eventually(lambda: value(len(replies) == 1), "the held answer published")
        assert orjson.loads(replies[0])["code"] == "09"
        (held,) = held_deals(ledger)
        async with running(program, ledger, over, registry=nats_registry()) as sb:
            await bound(sb.channel("orders"))
            done = await decide(sb.ledger, held["deal_id"], "release", "other person", "officer-ann",
                                via="ledger file", injector=switchboard_injector(sb))
            await eventually(lambda: value(len(replies) == 2), "the released reply published")
    assert orjson.loads(replies[1]) == {"ref": "N1", "code": "00"}
    reply = done["run"]["reply"]
    new = done["run"]["deal"]
    assert reply["delivered"] is True and "pay.replies" in reply["to"] and reply["kept_on"] == new, reply
    (ran,) = [e["detail"] for e in get_deal(ledger, held["deal_id"])["events"] if e["to_state"] == "hold release ran"]
    assert ran["reply"]["delivered"] is True, ran
    report(done, str(ledger))
    said = capsys.readouterr().out
    assert "its reply was delivered to NATS subject pay.replies" in said, said
