"""An operator's resolution of a flagged deal and the `limit` totals it counted (engine/deal_resolve.py,
engine/totals.py): `not-applied` and `undone` give its amount back (event `released` per total), `applied`
and `written-off` keep it counted; on the ledger file (read back at the engine's next start) and live
(the running engine's totals at once).  Real sockets, real DuckDB ledgers, the real `bsp` CLI."""
from __future__ import annotations

import base64
import os
import subprocess
import sys

import httpx
import orjson
import trio

from engine.ops.serve import AdminOptions, OpsOptions, run_live
from engine.registry import default_registry
from formats.framing import LengthPrefixFramer
from opskit import compile_file, json_counterpart, live, rows

TOKEN = "resolve-limit-token-" + "r" * 20
KEY = base64.b64encode(bytes(range(32))).decode()

# a post the counterpart never answers (refs D...) is left in doubt with nothing to undo it: flagged, and
# its amount counts (its credit may stand) until an operator says what became of it
ROUTE = """
format Req = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel back = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 300ms }
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = msg.amount  currency = "EUR"  key = msg.ref }
    limit cap { key = "A"  max = 100.00  code = "61"  text = "over the limit" }
    call post = back as Req reply Req { ref = msg.ref } expect post.status == "OK"
    reply Req { ref = msg.ref  code = "00" }
    on error reply Req { ref = msg.ref  code = error.code }
}
"""


def _answer(req: dict) -> dict | None:
    if req["ref"].startswith("D"):
        return None                                  # read, never answered: the call is left in doubt
    return {"ref": req["ref"], "status": "OK"}


async def _ask(port: int, sends: list[tuple[str, str]]) -> list[str]:
    """The codes of ``(ref, amount)`` requests sent one after the other on one connection."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    out: list[bytes] = []
    async with stream:
        with trio.fail_after(10):                    # a guard against a hang, not a timing
            for i, (ref, amount) in enumerate(sends):
                await stream.send_all(tx.frame(b'{"ref": "%s", "amount": %s}' % (ref.encode(), amount.encode())))
                while len(out) < i + 1:
                    data = await stream.receive_some(65536)
                    assert data
                    out.extend(rx.feed(data))
    return [orjson.loads(f)["code"] for f in out]


def _bsp(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def _ids(ledger) -> dict[str, str]:
    return {ref: did for did, ref in rows(ledger, "SELECT deal_id, reference FROM deals WHERE status <> 'duplicate'")}


async def test_resolved_not_applied_on_the_ledger_file_gives_the_amount_back_at_the_next_start(
        nursery, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BSP_AUDIT_KEY", KEY)
    back = await json_counterpart(nursery, _answer)
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % back)
    ledger = tmp_path / "l.duckdb"
    async with live([route], ledger) as eng:
        # D1 and D2 flagged (40.00 each, counted); K1 does not fit beside them
        assert await _ask(eng.channels["front"].port, [("D1", "40.00"), ("D2", "40.00"), ("K1", "30.00")]) == \
            ["68", "68", "61"]
    ids = _ids(ledger)
    env = {**os.environ, "BSP_AUDIT_KEY": KEY, "COLUMNS": "250"}
    r = _bsp(env, "deals", "resolve", ids["D1"], "--outcome", "not-applied", "--note", "the bank confirms no credit",
             "--by", "alice", "--ledger", str(ledger))
    assert r.returncode == 0, r.stderr
    assert "gives back 40.00 EUR to total cap (key A): the engine counts it no more from its next start" in r.stdout
    r = _bsp(env, "deals", "resolve", ids["D2"], "--outcome", "applied", "--note", "the bank credited it, ref 7",
             "--by", "alice", "--ledger", str(ledger))
    assert r.returncode == 0 and "gives back" not in r.stdout, (r.stdout, r.stderr)
    events = rows(ledger, "SELECT d.reference, e.to_state, e.detail FROM deal_events e JOIN deals d USING (deal_id) "
                          "WHERE e.to_state IN ('released', 'resolved') ORDER BY d.reference, e.seq")
    assert [(ref, state) for ref, state, _ in events] == [("D1", "released"), ("D1", "resolved"), ("D2", "resolved")]
    assert orjson.loads(events[0][2]) == {"total": "cap", "key": "A", "currency": "EUR", "day": "",
                                                 "amount": "40.00", "outcome": "not-applied"}
    async with live([route], ledger) as eng:        # the next start: D2's 40.00 counts, D1's no more
        assert await _ask(eng.channels["front"].port, [("K2", "60.00"), ("K3", "0.01")]) == ["00", "61"]


async def test_resolved_live_gives_the_amount_back_in_the_running_engine_at_once(nursery, tmp_path,
                                                                                 monkeypatch) -> None:
    monkeypatch.setenv("BSP_AUDIT_KEY", KEY)
    back = await json_counterpart(nursery, _answer)
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % back)
    ledger = tmp_path / "l.duckdb"
    registry = default_registry()
    box: list = []
    ready = trio.Event()

    def hook(engine) -> None:
        box.append(engine)
        ready.set()

    async def serve() -> None:
        ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=TOKEN), hooks=[hook])
        await run_live(compile_file(route, registry), registry, ledger_path=ledger, load=lambda: ([route], {}),
                       grace=2.0, ops=ops)

    nursery.start_soon(serve)
    await ready.wait()
    eng = box[0]
    port = eng.current.channels["front"].port
    url = f"http://127.0.0.1:{eng.admin_port}"
    assert await _ask(port, [("D1", "50.00"), ("D2", "30.00"), ("K1", "30.00")]) == ["68", "68", "61"]
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {TOKEN}"}) as client:
        flagged = (await client.get("/deals", params={"flagged": "1"})).json()["deals"]
        ids = {d["reference"]: d["deal_id"] for d in flagged}
        r = await client.post(f"/deals/{ids['D1']}/resolve", json={"outcome": "undone", "note": "refunded, OPS-1"})
        assert r.status_code == 200, r.text
        assert [g["amount"] for g in r.json()["released"]] == ["50.00"]
        r = await client.post(f"/deals/{ids['D2']}/resolve", json={"outcome": "written-off", "note": "lost, OPS-2"})
        assert r.status_code == 200 and r.json()["released"] == [], r.text
    # D1's 50.00 is free again at once: 30.00 (D2) + 70.00 fits, a cent more does not. K2's call goes on a
    # new connection (the calls that timed out closed theirs: engine/channels/tcp_connect.py _out_of_step)
    got = await _ask(port, [("K2", "70.00"), ("K3", "0.01")])
    assert got == ["00", "61"], got
    eng.drain()


async def test_applied_counts_again_a_failed_deal_whose_reversal_was_flagged_later(nursery, tmp_path,
                                                                                  monkeypatch) -> None:
    """A deal that failed undone gives its reservation back (event `not counted` per total); when its reversal is
    flagged later (the store-and-forward task gives up: event `reversal flagged`) and the operator resolves it
    `applied`, the money went: it counts again, at the engine's next start."""
    from datetime import datetime, timezone

    from engine.ledger_store import LedgerStore

    monkeypatch.setenv("BSP_AUDIT_KEY", KEY)

    def answer(req: dict) -> dict | None:
        return {"ref": req["ref"], "status": "NO" if req["ref"].startswith("F") else "OK"}

    back = await json_counterpart(nursery, answer)
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % back)
    ledger = tmp_path / "l.duckdb"
    async with live([route], ledger) as eng:
        assert await _ask(eng.channels["front"].port, [("F1", "60.00")]) != ["00"]
    ids = _ids(ledger)
    states = rows(ledger, f"SELECT to_state, detail FROM deal_events WHERE deal_id = '{ids['F1']}' "
                          f"AND to_state LIKE '%counted'")
    assert [(s, orjson.loads(d)) for s, d in states] == [
        ("not counted", {"total": "cap", "key": "A", "currency": "EUR", "day": "", "amount": "60.00"})]
    store = LedgerStore.open(ledger, base64.b64decode(KEY))       # as the store-and-forward task appends it
    try:
        (done,) = store.append_stories([(ids["F1"], [], [{
            "at": datetime.now(timezone.utc), "to_state": "reversal flagged",
            "detail": orjson.dumps({"not_undone": ["post"], "why": "the reversal of call post was not taken"}).decode()}],
            None)])
        assert not isinstance(done, BaseException), done
    finally:
        store.close()
    env = {**os.environ, "BSP_AUDIT_KEY": KEY, "COLUMNS": "250"}
    r = _bsp(env, "deals", "resolve", ids["F1"], "--outcome", "applied", "--note", "the bank credited it, ref 9",
             "--by", "alice", "--ledger", str(ledger))
    assert r.returncode == 0, r.stderr
    assert "counts 60.00 EUR in total cap again (key A): the engine counts it from its next start" in r.stdout
    async with live([route], ledger) as eng:        # the next start: F1's 60.00 counts
        assert await _ask(eng.channels["front"].port, [("K1", "50.00"), ("K2", "40.00")]) == ["61", "00"]
    assert _bsp(env, "audit", "verify", "--ledger", str(ledger)).returncode == 0
