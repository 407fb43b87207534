"""A route's advice handed to store and forward (``call ... store and forward``, engine/txn/saf.py): an 0420 the
host leaves unanswered is queued as it was sent and repeated as 0421 until acknowledged, also across a SIGKILL
of `bsp run` (its ``rev`` entry and ``revtry`` marks in the transaction log).  Real TCP host, real `bsp run`,
real DuckDB ledger and transaction log; the host is driven by events."""
from __future__ import annotations

import base64
import signal
from pathlib import Path

import trio

from engine.sim.reversal_host import CODEC
from engine.txn.log import TxnLog, log_path, read
from safkit import Host, story
from txnkit import AUDIT_KEY, Client, audit_clean, deals, engine_serving, start_engine

ADVICE = {"t": "0420", "2": "4111111111111111", "3": "000000", "4": "000000001000", "7": "0501120105",
          "11": "000124", "37": "R00000000124", "41": "TERM0001", "49": "978",
          "90": "0200" + "000123" + "0501120000" + "0" * 22}      # the 0200 it reverses

# the front end's reversal advice, forwarded to the issuer as it came; `store and forward` on the call
ROUTE = """
format Iso = iso8583 iso8583_1987_ascii
channel pos = tcp listen { address = "127.0.0.1:0" framing = length2 }
channel issuer = tcp connect {
    address = "127.0.0.1:%d"  framing = length2  pool = 1  match = iso8583  timeout = %s
}
route advice {
    receive from pos as Iso when msg.t in ["0420", "0421"]
    deal ADVICE { ref = msg["37"]  amount = 0  key = msg["41"] + "/" + msg["90"] }
    call fwd = issuer as Iso reply Iso {
        t = "0420"  "2" = msg["2"]  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]
        "37" = msg["37"]  "41" = msg["41"]  "49" = msg["49"]  "90" = msg["90"]
    } expect fwd["39"] == "00" store and forward
    reply Iso {
        t = "0430"  "2" = msg["2"]  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]
        "39" = "00"  "41" = msg["41"]  "49" = msg["49"]  "90" = msg["90"]
    }
    on error reply Iso {
        t = "0430"  "2" = msg["2"]  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]
        "39" = if error.forwarded then "00" else error.code  "41" = msg["41"]  "49" = msg["49"]  "90" = msg["90"]
    }
}
"""


async def _ask(port: int, values: dict) -> dict:
    c = await Client.open(port)
    await c.send(CODEC.encode(values))
    with trio.fail_after(20):                 # a guard against a hang, not a timing
        (raw,) = await c.recv(1)
    await c.aclose()
    return CODEC.decode(raw)


async def test_a_forwarded_advice_survives_sigkill_and_is_repeated_until_acknowledged(
        nursery, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(AUDIT_KEY).decode())
    restarted = trio.Event()
    second = trio.Event()

    async def ack(n: int, msg: dict) -> bool:
        if n >= 2:
            second.set()                          # the first 0421 of store and forward: kill the engine there
        return restarted.is_set()                 # nothing is acknowledged before the restart

    host = Host(ack)
    port = await host.serve(nursery)
    route = tmp_path / "advice.route"
    route.write_text(ROUTE % (port, "2s"))
    ledger = tmp_path / "ledger.duckdb"

    served = await start_engine(route, ledger)
    try:
        answer = await _ask(served.ports["pos"], ADVICE)
        with trio.fail_after(30):
            await second.wait()
        served.proc.send_signal(signal.SIGKILL)
        await served.proc.wait()
    finally:
        if served.proc.returncode is None:
            served.proc.kill()
            await served.proc.wait()
        await served.proc.stderr.aclose()
    assert (answer["t"], answer["39"]) == ("0430", "00")          # accepted for forwarding
    assert [m["t"] for m in host.seen] == ["0420", "0421"]
    txlog = TxnLog(log_path(ledger))
    (pending,) = txlog.reversals.values()
    txlog.close()
    assert pending["step"] == "fwd" and pending["n"] >= 2 and pending["ack"] is None
    assert pending["values"]["90"] == ADVICE["90"]                # the advice as sent, DE 90 and all

    restarted.set()
    async with engine_serving(route, ledger):
        with trio.fail_after(30):                    # the log says when the acknowledgement is on the deal
            while not any(e.get("t") == "revrec" for e in read(log_path(ledger))[0]):
                await trio.sleep(0.05)
    assert [m["t"] for m in host.seen] == ["0420", "0421", "0421"]    # resumed as a repeat, once
    assert all({k: m.get(k) for k in ADVICE if k != "t"} == {k: v for k, v in ADVICE.items() if k != "t"}
               for m in host.seen)
    assert TxnLog(log_path(ledger)).reversals == {}               # acknowledged: never sent again
    (deal,) = deals(ledger)
    assert (deal["status"], deal["response_code"]) == ("failed", "68")
    assert "flagged" not in deal["reason"]
    steps, events = story(ledger, deal["deal_id"])
    names = [e[2] for e in events]
    assert names[:4] == ["accepted", "calling fwd", "reversal queued", "failed"], names
    assert names[-2:] == ["reversal 0421", "reversed fwd"], names
    assert not [n for n in names if "flagged" in n], names
    assert steps[-1] == ("fwd.reversal.repeat", "reversal", "acknowledged")
    audit_clean(ledger)


async def test_an_advice_in_flight_at_a_sigkill_is_stored_and_forwarded_on_restart_under_on_restart_compensate(
        nursery, tmp_path: Path, monkeypatch) -> None:
    # the engine is killed while the host holds the call's own 0420 (before its time-out): on restart the route's
    # `on restart compensate` hands the advice, sent and unanswered, to store and forward: one 0421, acknowledged,
    # the deal recovered and not flagged
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(AUDIT_KEY).decode())
    restarted = trio.Event()

    async def ack(n: int, msg: dict) -> bool:
        return restarted.is_set()

    host = Host(ack)
    port = await host.serve(nursery)
    route = tmp_path / "advice.route"
    route.write_text((ROUTE % (port, "30s")).replace("    deal ADVICE", "    on restart compensate\n    deal ADVICE"))
    ledger = tmp_path / "ledger.duckdb"

    served = await start_engine(route, ledger)
    try:
        c = await Client.open(served.ports["pos"])
        await c.send(CODEC.encode(ADVICE))
        with trio.fail_after(20):
            await host.saw_reversal.wait()            # the call's 0420 is at the host, unanswered: kill there
        served.proc.send_signal(signal.SIGKILL)
        await served.proc.wait()
        await c.aclose()
    finally:
        if served.proc.returncode is None:
            served.proc.kill()
            await served.proc.wait()
        await served.proc.stderr.aclose()
    assert [m["t"] for m in host.seen] == ["0420"]

    restarted.set()
    async with engine_serving(route, ledger):
        with trio.fail_after(30):
            while not any(e.get("t") == "revrec" for e in read(log_path(ledger))[0]):
                await trio.sleep(0.05)
    assert [m["t"] for m in host.seen] == ["0420", "0421"]
    assert host.seen[1]["90"] == ADVICE["90"] and host.seen[1]["37"] == ADVICE["37"]
    (deal,) = deals(ledger)
    assert deal["status"] == "failed" and "flagged" not in deal["reason"], deal["reason"]
    _, events = story(ledger, deal["deal_id"])
    names = [e[2] for e in events]
    assert "recovered" in names and "reversal queued" in names, names
    assert names[-2:] == ["reversal 0421", "reversed fwd"], names
    assert not [n for n in names if "flagged" in n], names
    audit_clean(ledger)


SHIPPED = Path(__file__).resolve().parents[2] / "routes" / "card_payments"


def shipped_card_route(tmp_path: Path, host_port: int) -> Path:
    """routes/card_payments as shipped, only its two channels moved to loopback ports (the front end's on
    port 0, the card host's on ``host_port``)."""
    text = (SHIPPED / "card_payments.route").read_text()
    for old, new in (('address = "127.0.0.1:7350"', 'address = "127.0.0.1:0"'),
                     ('address = "127.0.0.1:7351"', f'address = "127.0.0.1:{host_port}"')):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    for f in SHIPPED.glob("*.csv"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    route = tmp_path / "card_payments.route"
    route.write_text(text)
    return route


async def test_the_shipped_card_reversal_forwards_a_front_end_0420_in_flight_at_a_sigkill(
        nursery, tmp_path: Path, monkeypatch) -> None:
    # bench/chaos.py found it: a front end's 0420 that card_reversal had forwarded, left without the card host's
    # answer by a SIGKILL, was flagged for an operator on restart (the route had no `on restart`: flag) and
    # never sent again; the front end's repeats got 96.  Now (`on restart compensate`) the advice goes to store
    # and forward: one 0421 after the restart, acknowledged, the deal recovered and not flagged
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(AUDIT_KEY).decode())
    restarted = trio.Event()

    async def ack(n: int, msg: dict) -> bool:
        return restarted.is_set()

    host = Host(ack)
    route = shipped_card_route(tmp_path, await host.serve(nursery))
    ledger = tmp_path / "ledger.duckdb"

    served = await start_engine(route, ledger)
    try:
        c = await Client.open(served.ports["cp_mainframe"])
        await c.send(CODEC.encode(ADVICE))
        with trio.fail_after(20):
            await host.saw_reversal.wait()            # the forwarded 0420 is at the host, unanswered: kill there
        served.proc.send_signal(signal.SIGKILL)
        await served.proc.wait()
        await c.aclose()
    finally:
        if served.proc.returncode is None:
            served.proc.kill()
            await served.proc.wait()
        await served.proc.stderr.aclose()
    assert [m["t"] for m in host.seen] == ["0420"]

    restarted.set()
    async with engine_serving(route, ledger) as again:
        # the front end repeats its advice: answered from the deal key (once the restart has resolved the deal)
        repeat = await _ask(again.ports["cp_mainframe"], {**ADVICE, "t": "0421"})
        assert any(e.get("t") == "rev" for e in read(log_path(ledger))[0]), \
            "the advice left in flight was not queued in store and forward on restart"
        with trio.fail_after(30):
            while not any(e.get("t") == "revrec" for e in read(log_path(ledger))[0]):
                await trio.sleep(0.05)
    assert [m["t"] for m in host.seen] == ["0420", "0421"]     # the front end's 0421 sent nothing more
    assert host.seen[1]["90"] == ADVICE["90"] and host.seen[1]["37"] == ADVICE["37"]
    assert repeat["t"] == "0430" and repeat["90"] == ADVICE["90"]
    first = [d for d in deals(ledger) if d["status"] != "duplicate"]
    assert len(first) == 1 and first[0]["route"] == "card_reversal", first
    assert first[0]["status"] == "failed" and "flagged" not in first[0]["reason"], first[0]["reason"]
    _, events = story(ledger, first[0]["deal_id"])
    names = [e[2] for e in events]
    assert "recovered" in names and "reversal queued" in names, names
    assert names[-2:] == ["reversal 0421", "reversed rev"], names
    assert not [n for n in names if "flagged" in n], names
    audit_clean(ledger)
