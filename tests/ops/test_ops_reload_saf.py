"""A hot reload and the ISO 8583 reversals stored and forwarded (docs/transactions.md, store and forward;
docs/operations.md, reload).  A reversal is owed to the counterpart its original went to (the outbound
channel, by name): a reload that keeps a call on that channel moves the reversal to it; one that removes the
channel strands it (kept queued in the log, not sent, said so on the deal, in `bsp status` and `/metrics`,
warned about by `bsp reload --dry-run`) until a reload brings the channel back.  It used to be repeated
on the old, stopped channel for ever ("lost: engine stopping" on the deal each time).

Real loopback sockets: an ISO 8583 issuer (engine.sim.reversal_host) that never answers the 0200 and
acknowledges reversals only once told to, a JSON counterpart; a real ledger and transaction log; the live
engine with its admin API, as `bsp run` serves it."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import httpx
import trio

from engine.ops.serve import AdminOptions, OpsOptions, run_live
from engine.registry import default_registry
from engine.sim.reversal_host import CODEC, ReversalHost
from formats.framing import LengthPrefixFramer
from opskit import CALL, compile_file, json_counterpart

TOKEN = "ops-reload-saf-token-" + "s" * 24

ISSUER = """
format Iso = iso8583 iso8583_1987_ascii
channel pos = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel issuer = tcp connect {
    address = "127.0.0.1:%(port)d"  framing = length2  pool = 1  match = iso8583  timeout = %(timeout)s
}
route %(route)s {
    receive from pos as Iso when msg.t == "0200"
    deal PURCHASE { ref = msg["11"]  amount = 0 }
    call auth = issuer as Iso reply Iso {
        t = "0200"  "2" = msg["2"]  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]
        "11" = msg["11"]  "41" = msg["41"]  "49" = msg["49"]
    } expect auth["39"] == "00"
    reply Iso {
        t = "0210"  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "39" = auth["39"]
        "41" = msg["41"]  "49" = msg["49"]
    }
    on error reply Iso {
        t = "0210"  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "39" = error.code
        "41" = msg["41"]  "49" = msg["49"]
    }
}
"""


class Issuer:
    """The reversal host, acknowledging once ``acking`` is set."""

    def __init__(self) -> None:
        self.acking = trio.Event()
        self.host = ReversalHost(self._ack)

    async def _ack(self, n: int, msg: dict) -> bool:
        if not self.acking.is_set():
            return False                           # never answered: the attempt times out
        return True


async def _start(nursery, tmp_path: Path, text: str) -> tuple[object, Path]:
    route = tmp_path / "pay.route"
    route.write_text(text)
    registry = default_registry()
    box: list = []
    ready = trio.Event()
    ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=TOKEN),
                     hooks=[lambda e: (box.append(e), ready.set())])
    nursery.start_soon(partial(run_live, compile_file(route, registry), registry, ledger_path=tmp_path / "l.duckdb",
                               load=lambda: ([route], {}), grace=2.0, ops=ops))
    with trio.fail_after(10):
        await ready.wait()
    engine = box[0]
    for q in engine.saf:
        q.backoff_cap = 0.3                        # repeat every 0.15-0.3 s: a loop shows within a second
    return engine, route


async def _purchase(engine, stan: str) -> None:
    f = LengthPrefixFramer(2)
    s = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["pos"].port)
    async with s:
        await s.send_all(f.frame(CODEC.encode({
            "t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000001000", "7": "0501120000",
            "11": stan, "41": "TERM0001", "49": "978"})))
        with trio.fail_after(10):
            while not f.feed(await s.receive_some(65536)):
                pass


async def _drained(engine) -> None:
    with trio.fail_after(10):
        while engine.generations_in_flight() > 1 or engine._retiring:
            await trio.sleep(0.02)


async def _events(client: httpx.AsyncClient, deal_id: str, last: str) -> list[dict]:
    """The deal's events once ``last`` is among them (the reversal's lines are appended after the row)."""
    with trio.fail_after(10):
        while True:
            r = await client.get(f"/deals/{deal_id}")
            if r.status_code == 200 and any(e["to_state"] == last for e in r.json()["events"]):
                return r.json()["events"]
            await trio.sleep(0.05)


def _samples(text: str, metric: str) -> dict[str, float]:
    return {ln.split(" ")[0]: float(ln.split(" ")[1]) for ln in text.splitlines() if ln.startswith(metric + "{")}


async def test_a_reload_removing_the_channel_strands_the_reversal_and_bringing_it_back_resumes_it(
        nursery, tmp_path: Path) -> None:
    issuer = Issuer()
    port = await issuer.host.serve(nursery)
    back = await json_counterpart(nursery, lambda req: {"status": "OK", "ref": req["ref"]})
    base = CALL % {"back": back, "timeout": "5s", "reply": ""}
    both = base + ISSUER % {"port": port, "timeout": "300ms", "route": "purchase"}
    engine, route = await _start(nursery, tmp_path, both)
    (q,) = engine.saf
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.admin_port}",
                                 headers={"authorization": f"Bearer {TOKEN}"}) as client:
        await _purchase(engine, "000123")
        with trio.fail_after(10):
            while issuer.host.reversals < 2:       # a 0420 and a 0421, never acknowledged
                await trio.sleep(0.02)
        (item,) = q.items.values()
        assert item.target == "issuer"

        route.write_text(base)                     # route purchase and channel issuer removed
        dry = await client.post("/reload", params={"dry_run": "1"})
        assert dry.status_code == 200, dry.text
        [warning] = [w for w in dry.json()["warnings"] if "issuer" in w]
        assert warning.startswith("channel issuer: 1 ISO 8583 reversal owed to it not acknowledged") \
            and "would be kept queued" in warning, warning
        assert item.stranded is None and engine.current.channels.get("issuer") is not None   # nothing changed

        r = await client.post("/reload")
        assert r.status_code == 200, r.text
        assert any("channel issuer: 1 ISO 8583 reversal" in w and "is kept queued" in w
                   for w in r.json()["warnings"]), r.json()["warnings"]
        await _drained(engine)
        with trio.fail_after(5):                   # one attempt in flight at the reload may end first
            while item.stranded is None:
                await trio.sleep(0.02)
        attempts, sent = q.attempts, issuer.host.reversals
        await trio.sleep(1.5)                      # not repeated on the stopped channel (it was, every 0.3 s)
        assert (q.attempts, issuer.host.reversals) == (attempts, sent)

        status = (await client.get("/status")).json()
        rev = status["reversals"]
        assert rev["pending"] == 1 and rev["stranded"] == 1 and rev["stranded_channels"] == {"issuer": 1}
        (row,) = rev["queue"]
        assert row["state"] == "stranded" and row["channel"] == "issuer"
        assert row["stranded"].startswith("no call for channel issuer in the running configuration; "
                                          "reversal kept queued")
        assert status["state"] == "degraded"
        assert any(r.startswith("1 ISO 8583 reversal owed to channel issuer stranded") for r in status["reasons"])
        pending = _samples((await client.get("/metrics")).text, "bsp_reversals_pending")
        assert pending == {'bsp_reversals_pending{channel="issuer",state="stranded"}': 1.0}, pending

        events = await _events(client, item.deal_id, "reversal stranded")
        [stranded] = [e for e in events if e["to_state"] == "reversal stranded"]
        assert "no call for channel issuer in the running configuration; reversal kept queued" in \
            str(stranded["detail"])
        lost = [e for e in events if "engine stopping" in str(e["detail"])]
        assert len(lost) <= 1, lost                # at most the attempt in flight when the channel closed,
        assert all("no longer in the running configuration" in str(e["detail"]) for e in lost), lost   # said so

        issuer.acking.set()
        route.write_text(both)                     # the channel is back: the reversal resumes on it
        r = await client.post("/reload")
        assert r.status_code == 200, r.text
        assert not [w for w in r.json().get("warnings", []) if "issuer" in w]
        with trio.fail_after(10):
            await q.wait_empty()
        assert issuer.host.acked == 1 and not q.stranded
        events = await _events(client, item.deal_id, "reversed auth")
        states = [e["to_state"] for e in events]
        assert states.index("reversal stranded") < states.index("reversal resumed") < states.index("reversed auth")
        status = (await client.get("/status")).json()
        assert status["reversals"]["pending"] == 0 and status["reversals"]["stranded"] == 0
        assert status["state"] == "ready", status["reasons"]
        assert _samples((await client.get("/metrics")).text, "bsp_reversals_pending") == {}
    engine.drain()


async def test_a_reload_that_keeps_a_call_on_the_channel_moves_the_reversal_to_it(nursery, tmp_path: Path) -> None:
    """The route renamed and the channel's timeout changed (a new channel object, the old one closed once
    drained): the reversal goes on the new configuration's call on channel issuer and is acknowledged."""
    issuer = Issuer()
    port = await issuer.host.serve(nursery)
    back = await json_counterpart(nursery, lambda req: {"status": "OK", "ref": req["ref"]})
    base = CALL % {"back": back, "timeout": "5s", "reply": ""}
    engine, route = await _start(nursery, tmp_path,
                                 base + ISSUER % {"port": port, "timeout": "300ms", "route": "purchase"})
    (q,) = engine.saf
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.admin_port}",
                                 headers={"authorization": f"Bearer {TOKEN}"}) as client:
        await _purchase(engine, "000124")
        with trio.fail_after(10):
            await issuer.host.saw_reversal.wait()
        old = engine.current.channels["issuer"]
        route.write_text(base + ISSUER % {"port": port, "timeout": "400ms", "route": "purchase2"})
        dry = await client.post("/reload", params={"dry_run": "1"})
        assert dry.status_code == 200 and not [w for w in dry.json().get("warnings", []) if "issuer" in w], dry.text
        r = await client.post("/reload")
        assert r.status_code == 200, r.text
        assert engine.current.channels["issuer"] is not old
        await _drained(engine)
        issuer.acking.set()
        with trio.fail_after(10):
            await q.wait_empty()
        assert issuer.host.acked == 1 and q.acknowledged == 1
        assert (await client.get("/status")).json()["reversals"]["stranded"] == 0
    engine.drain()


async def test_a_stranded_reversal_stays_in_the_log_across_restarts_until_its_channel_is_back(
        nursery, tmp_path: Path) -> None:
    """The reversal's channel is in its log entry: a restart on a configuration without channel issuer
    strands it at once (not sent, said so on the deal); the next restart with the channel sends it."""
    issuer = Issuer()
    port = await issuer.host.serve(nursery)
    back = await json_counterpart(nursery, lambda req: {"status": "OK", "ref": req["ref"]})
    base = CALL % {"back": back, "timeout": "5s", "reply": ""}
    both = base + ISSUER % {"port": port, "timeout": "300ms", "route": "purchase"}

    async def run(text: str, then) -> None:
        async with trio.open_nursery() as own:
            engine, _ = await _start(own, tmp_path, text)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.admin_port}",
                                         headers={"authorization": f"Bearer {TOKEN}"}) as client:
                await then(engine, client)
            engine.drain()

    async def queue_one(engine, client) -> None:
        await _purchase(engine, "000125")
        with trio.fail_after(10):
            await issuer.host.saw_reversal.wait()

    deal: list[str] = []

    async def without_issuer(engine, client) -> None:
        (q,) = engine.saf
        (item,) = q.items.values()
        assert item.target == "issuer" and item.stranded is not None      # from the log's entry
        deal.append(item.deal_id)
        sent = issuer.host.reversals
        await trio.sleep(1.0)
        assert q.attempts == 0 and issuer.host.reversals == sent
        rev = (await client.get("/status")).json()["reversals"]
        assert rev["stranded_channels"] == {"issuer": 1}
        await _events(client, item.deal_id, "reversal stranded")

    async def with_issuer(engine, client) -> None:
        (q,) = engine.saf
        with trio.fail_after(10):
            await q.wait_empty()
        events = await _events(client, deal[0], "reversed auth")
        assert [e["to_state"] for e in events].count("reversal stranded") == 1

    await run(both, queue_one)
    await run(base, without_issuer)
    issuer.acking.set()
    await run(both, with_issuer)
    assert issuer.host.acked == 1


async def test_a_reversal_in_flight_when_a_reload_changes_its_channel_is_answered_there_not_sent_again(
        nursery, tmp_path: Path) -> None:
    """A reversal attempt waits for the host's answer on channel issuer when a reload changes that channel
    (its timeout: a new channel object).  The old object stays open until that attempt has its answer: the
    host answers it there and the reversal is acknowledged, sent that once.  (The old object was closed as
    soon as no batch ran on the old configuration, which cut the attempt: `lost: engine stopping` on the deal,
    one attempt more counted towards the flag, and the reversal sent again on the new object.)"""
    answer = trio.Event()

    async def ack(n: int, msg: dict) -> bool:
        if n == 1:
            return False                           # the first attempt is never answered: it times out
        await answer.wait()
        return True

    host = ReversalHost(ack)
    port = await host.serve(nursery)
    back = await json_counterpart(nursery, lambda req: {"status": "OK", "ref": req["ref"]})
    base = CALL % {"back": back, "timeout": "5s", "reply": ""}
    engine, route = await _start(nursery, tmp_path,
                                 base + ISSUER % {"port": port, "timeout": "1s", "route": "purchase"})
    (q,) = engine.saf
    await _purchase(engine, "000126")               # the 0200 times out: a reversal is queued
    with trio.fail_after(10):
        await host.saw_reversal.wait()              # its first attempt, in flight on the 1 s channel
    route.write_text(base + ISSUER % {"port": port, "timeout": "20s", "route": "purchase"})
    assert (await engine.reload()).ok
    with trio.fail_after(10):
        while host.reversals < 2 or host.held < 1:  # the next attempt, on the 20 s channel, held by the host
            await trio.sleep(0.01)
    held_on = engine.current.channels["issuer"]
    route.write_text(base + ISSUER % {"port": port, "timeout": "19s", "route": "purchase"})
    result = await engine.reload()
    assert result.ok and result.plan["channels"]["changed"] == ["issuer"], result
    assert engine.current.channels["issuer"] is not held_on
    answer.set()
    with trio.fail_after(10):
        await q.wait_empty()
    assert q.acknowledged == 1
    assert host.reversals == 2, host.at             # the second attempt answered; none sent again
    engine.drain()
