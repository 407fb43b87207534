"""A `screen` step with ``on_hit = "hold"``: a hit is held for a compliance officer (answered with the step's
code, nothing sent, events `screening hit` and `held`, its request kept as its dead letter); `bsp deals --held`
lists it with the entry, score and field; a release runs the request on through the route once (the released
hit passes, the call goes out once; a second release is refused), across a restart of the engine; a reject
keeps it refused and its request is never run.  Real sockets, a real DuckDB ledger."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.deal_hold import decide, held_deals
from engine.deal_resolve import Refused
from engine.deadletter import switchboard_injector
from engine.ledger_query import get_deal, query_dead_letters
from kit import Client, compile_text, framed_counterpart, running

LIST = "entry_id,source,name,aliases,ids\nSYN-1,UN,Viktor Alexandrovich Kurganov,Viktor Kurganoff,\n"

ROUTE = """
format Req = json classify ["name:personal"]
format Rsp = json
table sanctions = csv "list.csv" key entry_id

channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply Rsp { ref = msg.ref  code = error.code  text = error.text  kind = error.kind }
}

channel back = tcp connect {
    address = "127.0.0.1:1"
    framing = length4
    timeout = 5s
}

route pay {
    receive from front as Req
    deal PAYMENT { ref = msg.ref  amount = 10.00  currency = "USD"  key = msg.ref }
    screen party { name = msg.name  list = sanctions  on_hit = "hold"  code = "09"  text = "held for review" }
    call post = back as Rsp { ref = msg.ref } expect post.status == "OK"
    reply Rsp { ref = msg.ref  code = "00" }
}
"""


def req(ref: str, name: str) -> bytes:
    return orjson.dumps({"ref": ref, "name": name})


async def send(sb: Any, *frames: bytes) -> list[dict]:
    c = await Client.open(sb.channel("front").port)
    await c.send(*frames)
    got = await c.recv_json(len(frames))
    await c.aclose()
    return got


def states(deal: dict) -> list[str]:
    return [e["to_state"] for e in deal["events"]]


async def test_a_hit_is_held_listed_and_released_once_across_a_restart(nursery, tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_text(LIST, encoding="utf-8")
    called: list[str] = []

    def answer(p: bytes) -> bytes:
        called.append(orjson.loads(p)["ref"])
        return b'{"status":"OK"}'

    port = await framed_counterpart(nursery, answer, 4)
    program = compile_text(tmp_path, ROUTE)
    ledger = tmp_path / "ledger.duckdb"
    over = {"back": {"address": f"127.0.0.1:{port}"}}
    async with running(program, ledger, over) as sb:
        replies = await send(sb, req("H1", "KURGANOV, Mr Viktor Alexandrovich"), req("H2", "Viktor Kurganoff"),
                             req("OK1", "Zhang Wei"))
    assert [(r["ref"], r["code"]) for r in replies] == [("H1", "09"), ("H2", "09"), ("OK1", "00")]
    assert replies[0]["text"] == "held for review" and replies[0]["kind"] == "held"
    assert called == ["OK1"]                                    # a held deal sent nothing

    # ---- the engine restarted: both still held, with what the officer needs to decide
    held = held_deals(ledger)
    assert sorted(h["reference"] for h in held) == ["H1", "H2"]      # one batch: received at once
    h1 = next(h for h in held if h["reference"] == "H1")
    assert h1["state"] == "held" and h1["response_code"] == "09"
    assert h1["hits"] == [{"step": "party", "list": "UN", "entry": "SYN-1", "on": "name", "score": "1.000",
                           "threshold": "0.90"}]
    assert next(h for h in held if h["reference"] == "H2")["hits"][0]["on"] == "alias"
    letter = query_dead_letters(ledger, ids=[h1["deal_id"]])[0]
    assert letter["error_kind"] == "held" and letter["status"] == "new"

    async with running(program, ledger, over) as sb:
        inject = switchboard_injector(sb)
        done = await decide(sb.ledger, h1["deal_id"], "release",
                            "same name, other person: date of birth differs (ticket CMP-1)", "officer-ann",
                            via="ledger file", injector=inject, host="ops-box")
        assert done is not None and done["run"]["ok"], done
        assert called == ["OK1", "H1"]                          # the rest of the route ran: the call went out
        with pytest.raises(Refused) as again:                   # never twice
            await decide(sb.ledger, h1["deal_id"], "release", "again", "officer-bob", via="ledger file",
                         injector=inject)
        assert again.value.why == "already_released"
        h2 = next(h for h in held if h["reference"] == "H2")["deal_id"]
        rej = await decide(sb.ledger, h2, "reject", "true match: passport matches UN list entry", "officer-ann",
                           via="ledger file")
        assert rej is not None and rej["outcome"] == "reject"
        with pytest.raises(Refused) as late:
            await decide(sb.ledger, h2, "release", "changed my mind", "officer-bob", via="ledger file",
                         injector=inject)
        assert late.value.why == "already_rejected"
    assert called == ["OK1", "H1"]

    first = get_deal(ledger, h1["deal_id"])
    assert states(first).count("hold released") == 1
    rel = next(e for e in first["events"] if e["to_state"] == "hold released")["detail"]
    assert rel["by"] == "officer-ann" and rel["note"].startswith("same name") and rel["hits"] == [["party", "SYN-1"]]
    run = get_deal(ledger, rel["deal"])
    assert run["status"] == "committed" and run["reference"] == "H1" and run["response_code"] == "00"
    assert "screening released" in states(run)
    assert next(e for e in run["events"] if e["to_state"] == "screening released")["detail"]["held_deal"] == \
        h1["deal_id"]
    assert states(get_deal(ledger, h2)).count("hold rejected") == 1
    assert query_dead_letters(ledger, ids=[h2])[0]["status"] == "retried"
    assert held_deals(ledger) == []
    assert {h["state"] for h in held_deals(ledger, include_decided=True)} == {"released", "rejected"}


async def test_a_release_recorded_whose_run_never_began_runs_when_asked_again(nursery, tmp_path: Path) -> None:
    """The process stopped between the `hold released` event and its run (the dead letter never claimed): asked
    again, the release runs the request under the deal id its event named, once, without a second event."""
    from datetime import datetime, timezone

    from engine.deal import DealEvent

    (tmp_path / "list.csv").write_text(LIST, encoding="utf-8")
    called: list[str] = []

    def answer(p: bytes) -> bytes:
        called.append(orjson.loads(p)["ref"])
        return b'{"status":"OK"}'

    port = await framed_counterpart(nursery, answer, 4)
    program = compile_text(tmp_path, ROUTE)
    ledger = tmp_path / "ledger.duckdb"
    async with running(program, ledger, {"back": {"address": f"127.0.0.1:{port}"}}) as sb:
        assert (await send(sb, req("H1", "Viktor Kurganoff")))[0]["code"] == "09"
        from engine.ops.ledger_reads import read_in_process

        (held,) = await read_in_process(held_deals, ledger)
        named = "ab" * 16
        await sb.ledger.append_story(held["deal_id"], [], [DealEvent(
            datetime.now(timezone.utc), None, "hold released",
            {"outcome": "release", "note": "cut short", "by": "ann", "via": "ledger file", "deal": named,
             "hits": [["party", "SYN-1"]]})])
        assert called == []
        done = await decide(sb.ledger, held["deal_id"], "release", "asked again", "bob", via="ledger file",
                            injector=switchboard_injector(sb))
        assert done is not None and done["run"]["ok"] and done["run"]["deal"] == named, done
        assert done["by"] == "ann"                              # the release recorded first is the one that ran
        assert called == ["H1"]
    assert states(get_deal(ledger, held["deal_id"])).count("hold released") == 1
    assert get_deal(ledger, named)["status"] == "committed"
