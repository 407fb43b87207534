"""Four eyes (maker-checker) over the real admin API: with `operators.four_eyes` listing dead.retry, a retry asked
through the admin API is recorded as a request (202) and runs only once another operator's token approves it; the
requester cannot approve their own; a second approval, an approval after expiry, and an approval of a request
whose dead letter was retried meanwhile are refused (409) and never run the letter twice.  The outcome names
both operators, on the dead letter and in its story (`bsp dead show`), sealed in the audit chain.

A real engine (run_live), its admin API on 127.0.0.1 (port 0) with named tokens, a real counterpart socket and a
real DuckDB ledger."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import orjson
import trio
from typer.testing import CliRunner

from engine.admin.auth import NamedToken
from engine.cli import app
from engine.four_eyes import Policy, requests_in_file
from engine.ledger_query import query_dead_letters
from engine.ops.backend import EngineBackend
from engine.ops.ledger_reads import read_in_process
from engine.ops.runsettings import RunKeys
from engine.ops.serve import AdminOptions, OpsOptions, run_live
from engine.registry import default_registry
from formats.framing import LengthPrefixFramer
from opskit import CLOSE, compile_file, json_counterpart

ROUTE = """
format Req = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2
    on error reply Req { ref = msg.ref  code = error.code } }
channel back = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 5s }
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY" }
    call post = back as Req reply Req { ref = msg.ref } expect post.status == "OK"
    reply Req { ref = msg.ref  code = "00" }
}
"""
SECRETS = {n: f"{n}-secret-" + "s" * 24 for n in ("alice", "bob", "carol")}
TOKENS = tuple(NamedToken(n, s, frozenset({"operate", "read"})) for n, s in SECRETS.items())
AUDIT_KEY = bytes(range(32))


class Back:
    """The counterpart: drops the connection (the call fails: a dead letter) until ``up``; notes each ref."""

    def __init__(self) -> None:
        self.up = False
        self.refs: list[str] = []

    def __call__(self, req: dict):
        self.refs.append(req["ref"])
        return {"ref": req["ref"], "status": "OK"} if self.up else CLOSE


async def _ask(port: int, ref: str) -> dict:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    async with stream:
        await stream.send_all(tx.frame(orjson.dumps({"ref": ref})))
        got: list[bytes] = []
        while not got:
            data = await stream.receive_some(65536)
            if not data:
                break
            got.extend(rx.feed(data))
    return orjson.loads(got[0]) if got else {}


async def _engine(nursery, tmp_path: Path, back: Back, policy: Policy, port: int | None = None):
    """The engine in ``nursery`` (and the counterpart, unless ``port`` names one already serving)."""
    port = port if port is not None else await json_counterpart(nursery, back)
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % port)
    registry = default_registry()
    ready = trio.Event()
    box: list = []

    def hook(engine) -> None:
        box.append(engine)
        ready.set()

    ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token="", tokens=TOKENS), hooks=[hook],
                     four_eyes=policy)
    keys = RunKeys(audit_key=AUDIT_KEY, keyring=None)
    nursery.start_soon(lambda: run_live(compile_file(route, registry), registry, ledger_path=tmp_path / "l.duckdb",
                                        load=lambda: ([route], {}), grace=2.0, ops=ops, keys=keys))
    with trio.fail_after(10):
        await ready.wait()
    return box[0], f"http://127.0.0.1:{box[0].admin_port}"


def _events(path: Path, con, target: str) -> list:
    return con.execute("SELECT to_state, detail FROM deal_events WHERE deal_id = ? AND to_state LIKE 'approval%' "
                       "ORDER BY seq", [target]).fetchall()


def _client(url: str, who: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {SECRETS[who]}"}, timeout=30)


async def _letter(eng, ref: str) -> str:
    """Send ``ref`` (the counterpart drops it: failed) and wait for its dead letter."""
    assert (await _ask(eng.channels["front"].port, ref))["code"] != "00"
    with trio.fail_after(20):
        while True:
            found = [x for x in await read_in_process(query_dead_letters, Path(eng.ledger.path))
                     if x["status"] == "new"]
            found = [x for x in found if x["id"] not in _letter.seen]
            if found:
                _letter.seen.add(found[0]["id"])
                return found[0]["id"]
            await trio.sleep(0.02)


_letter.seen = set()  # type: ignore[attr-defined]


async def test_a_retry_runs_only_once_another_operator_approves_it(nursery, tmp_path: Path) -> None:
    back = Back()
    eng, url = await _engine(nursery, tmp_path, back, Policy(("dead.retry",), 3600))
    lid = await _letter(eng, "X1")
    back.up = True
    async with _client(url, "alice") as alice, _client(url, "bob") as bob, _client(url, "carol") as carol:
        r = await alice.post(f"/dead-letters/{lid}/retry")
        assert r.status_code == 202, r.text
        req = r.json()
        assert req["pending"] is True and req["action"] == "dead.retry" and req["by"] == "alice", req
        assert req["token"] == "alice" and req["target"] == lid, req
        await trio.sleep(0.2)
        assert back.refs == ["X1"], back.refs                   # nothing re-injected yet
        # a second request of the same retry while one waits: refused, named
        again = await bob.post(f"/dead-letters/{lid}/retry")
        assert again.status_code == 409 and again.json()["why"] == "already_requested", again.text
        assert req["id"] in again.json()["detail"]
        # the requester cannot approve their own
        own = await alice.post(f"/approvals/{req['id']}/approve", json={"reason": "mine"})
        assert own.status_code == 409 and own.json()["why"] == "own_request", own.text
        listed = (await carol.get("/approvals")).json()
        assert [a["id"] for a in listed["approvals"]] == [req["id"]], listed
        assert listed["approvals"][0]["state"] == "pending"
        # two approvals at once (bob and carol): one is recorded and runs, the other is refused
        answers: list = []

        async def approve(client, who) -> None:
            answers.append((who, await client.post(f"/approvals/{req['id'][:8]}/approve",
                                                   json={"reason": f"checked by {who}"})))

        async with trio.open_nursery() as both:
            both.start_soon(approve, bob, "bob")
            both.start_soon(approve, carol, "carol")
        codes = sorted(a.status_code for _, a in answers)
        assert codes == [200, 409], [(w, a.text) for w, a in answers]
        (winner, ok), = [(w, a) for w, a in answers if a.status_code == 200]
        (_, lost), = [(w, a) for w, a in answers if a.status_code == 409]
        # refused as decided (the winner's run had finished) or as running (it was being carried out)
        assert (lost.json()["why"], "already approved" in lost.json()["detail"]) == ("decided", True) or \
            (lost.json()["why"], "is being carried out now" in lost.json()["detail"]) == ("running", True), lost.text
        done = ok.json()
        assert done["state"] == "approved" and done["decision"]["by"] == winner, done
        assert done["run"]["ok"] is True, done
        outcome = done["run"]["outcome"]
        assert outcome.startswith("committed (deal "), outcome
        # approving again later: refused, nothing runs twice
        late = await bob.post(f"/approvals/{req['id']}/approve", json={"reason": "again"})
        assert late.status_code == 409 and late.json()["why"] == "decided", late.text
        assert (await bob.get("/approvals")).json()["approvals"] == []
        everything = (await bob.get("/approvals?all=1")).json()["approvals"]
        assert [a["state"] for a in everything] == ["approved"], everything
    assert back.refs == ["X1", "X1"], back.refs                 # the original and one retry
    (letter,) = [x for x in await read_in_process(query_dead_letters, Path(eng.ledger.path)) if x["id"] == lid]
    assert letter["status"] == "retried", letter
    # who asked and who approved, on the letter's outcome
    assert letter["retry_outcome"] == f"{outcome} (admin API, four eyes: requested by 'alice', approved by token " \
                                      f"'{winner}')", letter
    events = await read_in_process(_events, Path(eng.ledger.path), target=lid)
    assert [e[0] for e in events] == ["approval requested", "approval granted", "approval done"], events
    granted = orjson.loads(events[1][1])
    assert granted["by"] == winner and granted["requested_by"] == "alice" and granted["token"] == winner, granted
    assert orjson.loads(events[2][1])["outcome"] == outcome, events
    eng.drain()


async def test_approvals_after_expiry_or_after_the_letter_was_retried_are_refused(nursery, tmp_path: Path) -> None:
    back = Back()
    eng, url = await _engine(nursery, tmp_path, back, Policy(("dead.retry",), 3600))
    stale_id = await _letter(eng, "S1")
    late_id = await _letter(eng, "E1")
    back.up = True
    async with _client(url, "alice") as alice, _client(url, "bob") as bob:
        stale = (await alice.post(f"/dead-letters/{stale_id}/retry")).json()
        # meanwhile the letter is retried by another way (the engine's own backend, as an older client would)
        res = await EngineBackend(eng).retry_dead_letter(stale_id)
        assert res is not None and res["ok"] is True, res
        r = await bob.post(f"/approvals/{stale['id']}/approve", json={"reason": "looks right"})
        assert r.status_code == 409 and r.json()["why"] == "stale", r.text
        assert "was retried meanwhile" in r.json()["detail"], r.text
        # the request is closed (void): approving it again says so
        r = await bob.post(f"/approvals/{stale['id']}/approve", json={"reason": "again"})
        assert r.status_code == 409 and "already void" in r.json()["detail"], r.text
        # a request that expires before its approval: the policy's clock (injected) moved past its expiry, no
        # wall time waited; a second before it, it is still pending
        clock = [datetime.now(timezone.utc)]
        eng.four_eyes = Policy(("dead.retry",), 600, now=lambda: clock[0])
        late = (await alice.post(f"/dead-letters/{late_id}/retry")).json()
        assert late["expires_at"] == (clock[0] + timedelta(seconds=600)).strftime("%Y-%m-%dT%H:%M:%SZ"), late
        clock[0] += timedelta(seconds=599)
        assert [a["state"] for a in (await bob.get("/approvals")).json()["approvals"]] == ["pending"]
        clock[0] += timedelta(seconds=1)
        assert (await bob.get("/approvals")).json()["approvals"] == []
        r = await bob.post(f"/approvals/{late['id']}/approve", json={"reason": "too late"})
        assert r.status_code == 409 and r.json()["why"] == "expired", r.text
        states = {a["id"]: a["state"] for a in (await bob.get("/approvals?all=1")).json()["approvals"]}
        assert states == {stale["id"]: "void", late["id"]: "expired"}, states
        # a rejection by the requester (withdrawn): recorded, nothing runs
    assert back.refs.count("S1") == 2 and back.refs.count("E1") == 1, back.refs
    (letter,) = [x for x in await read_in_process(query_dead_letters, Path(eng.ledger.path)) if x["id"] == late_id]
    assert letter["status"] == "new", letter
    eng.drain()


async def test_a_reject_closes_the_request_and_bsp_dead_show_tells_both_operators(nursery, tmp_path: Path,
                                                                                  monkeypatch) -> None:
    back = Back()
    eng, url = await _engine(nursery, tmp_path, back, Policy(("dead.retry",), 3600))
    lid = await _letter(eng, "R1")
    ok_id = await _letter(eng, "R2")
    back.up = True
    async with _client(url, "alice") as alice, _client(url, "bob") as bob:
        req = (await alice.post(f"/dead-letters/{lid}/retry")).json()
        r = await bob.post(f"/approvals/{req['id']}/reject", json={"reason": "the customer paid another way"})
        assert r.status_code == 200 and r.json()["state"] == "rejected", r.text
        r = await bob.post(f"/approvals/{req['id']}/approve", json={"reason": "changed my mind"})
        assert r.status_code == 409 and r.json()["why"] == "decided", r.text
        req2 = (await alice.post(f"/dead-letters/{ok_id}/retry")).json()
        assert (await bob.post(f"/approvals/{req2['id']}/approve", json={"reason": "ok"})).status_code == 200
        # bsp dead show --live tells the requests and who decided them
        monkeypatch.setenv("BSP_ADMIN_TOKEN", SECRETS["bob"])
        result = await trio.to_thread.run_sync(lambda: CliRunner().invoke(
            app, ["dead", "show", ok_id, "--live", "--url", url]))
        assert result.exit_code == 0, result.output
        assert "dead.retry requested by alice" in result.output and "approved by bob" in result.output, result.output
    assert back.refs == ["R1", "R2", "R2"], back.refs
    eng.drain()


async def test_a_purge_is_requested_on_the_file_approved_live_and_carried_out_once(nursery, tmp_path: Path,
                                                                                   monkeypatch) -> None:
    """dead.purge under four eyes: `bsp dead purge ID` on the ledger file (no deployment file: the policy the
    engine recorded in the ledger) records a request and deletes nothing; another operator approves it through the
    admin API; the next `bsp dead purge ID` (engine stopped) purges it; `bsp dead show` tells both operators."""
    import base64

    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(AUDIT_KEY).decode())
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    back = Back()
    ledger = str(tmp_path / "l.duckdb")
    policy = Policy(("dead.purge",), 3600)
    port = await json_counterpart(nursery, back)
    async with trio.open_nursery() as first:
        eng, url = await _engine(first, tmp_path, back, policy, port)
        lid = await _letter(eng, "P1")
        eng.drain()
        first.cancel_scope.deadline = trio.current_time() + 30      # a hang guard
    run = CliRunner()
    r = await trio.to_thread.run_sync(lambda: run.invoke(app, ["dead", "purge", lid, "--ledger", ledger, "--yes"]))
    assert r.exit_code == 0 and "NOT done yet: four eyes: dead.purge of " in r.output, r.output
    assert query_dead_letters(Path(ledger))[0]["status"] == "new"           # nothing deleted
    (req,) = requests_in_file(ledger)
    async with trio.open_nursery() as second:
        eng, url = await _engine(second, tmp_path, back, policy, port)
        async with _client(url, "bob") as bob:
            r2 = await bob.post(f"/approvals/{req['id']}/approve", json={"reason": "older than 90 days"})
            assert r2.status_code == 200, r2.text
            assert "bsp dead purge ID" in r2.json()["run"]["outcome"] and r2.json()["run"]["ok"] is True, r2.text
        eng.drain()
        second.cancel_scope.deadline = trio.current_time() + 30
    r = await trio.to_thread.run_sync(lambda: run.invoke(app, ["dead", "purge", lid, "--ledger", ledger, "--yes",
                                                               "--by", "carol"]))
    assert r.exit_code == 0 and "purged 1 dead letter(s)" in r.output, r.output
    assert f"approved by bob (request {req['id']})" in r.output, r.output
    (letter,) = query_dead_letters(Path(ledger))
    assert letter["status"] == "purged", letter
    # under four eyes who purged is the OS user, what bsp can tell, --by beside it, as the request recorded who
    # asked (until 2026-11-28 the purge named the --by, a name anyone can type, as who)
    import getpass

    from engine.ledger_query import letter_purge
    purge = letter_purge(Path(ledger), lid)
    assert purge is not None and (purge["by"], purge["stated_by"], purge["via"]) == (
        getpass.getuser(), "carol", "bsp dead purge"), purge
    r = await trio.to_thread.run_sync(lambda: run.invoke(app, ["dead", "show", lid, "--ledger", ledger]))
    assert "dead.purge requested by " in r.output and "approved by bob" in r.output, r.output
    assert f" by {getpass.getuser()} (via bsp dead purge, stated by carol, os user " in r.output, r.output
    r = await trio.to_thread.run_sync(lambda: run.invoke(app, ["audit", "verify", "--ledger", ledger]))
    assert r.exit_code == 0, r.output


async def test_a_resolution_waits_for_a_second_operator_and_records_both(nursery, tmp_path: Path) -> None:
    """deal.resolve: a deal flagged for real (its call left in doubt) is resolved only once another token
    approves; the `resolved` event keeps who asked (`by`) and who approved (`approved_by`)."""
    from test_ops_deal_resolve import ROUTE as FLAG_ROUTE, _answer, _ask as _ask_refs

    port = await json_counterpart(nursery, _answer)
    route = tmp_path / "pay.route"
    route.write_text(FLAG_ROUTE % port)
    registry = default_registry()
    box: list = []
    ready = trio.Event()
    ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token="", tokens=TOKENS),
                     hooks=[lambda e: (box.append(e), ready.set())], four_eyes=Policy(("deal.resolve",), 3600))
    nursery.start_soon(lambda: run_live(compile_file(route, registry), registry, ledger_path=tmp_path / "l.duckdb",
                                        load=lambda: ([route], {}), grace=2.0, ops=ops,
                                        keys=RunKeys(audit_key=AUDIT_KEY)))
    with trio.fail_after(10):
        await ready.wait()
    eng = box[0]
    url = f"http://127.0.0.1:{eng.admin_port}"
    await _ask_refs(eng.channels["front"].port, ["D1"])
    async with _client(url, "alice") as alice, _client(url, "bob") as bob:
        with trio.fail_after(20):
            while not (flagged := (await alice.get("/deals", params={"flagged": "1"})).json()["deals"]):
                await trio.sleep(0.05)
        did = flagged[0]["deal_id"]
        r = await alice.post(f"/deals/{did[:8]}/resolve", json={"outcome": "undone", "note": "reversed by hand, OPS-9"})
        assert r.status_code == 202 and r.json()["action"] == "deal.resolve", r.text
        req = r.json()
        assert req["target"] == did and req["params"] == {"outcome": "undone", "note": "reversed by hand, OPS-9"}
        assert len((await alice.get("/deals", params={"flagged": "1"})).json()["deals"]) == 1     # still open
        own = await alice.post(f"/approvals/{req['id']}/approve", json={"reason": "mine"})
        assert own.status_code == 409 and own.json()["why"] == "own_request", own.text
        r = await bob.post(f"/approvals/{req['id']}/approve", json={"reason": "saw the reversal in the core"})
        assert r.status_code == 200 and r.json()["run"]["ok"] is True, r.text
        assert (await alice.get("/deals", params={"flagged": "1"})).json()["deals"] == []
        story = (await bob.get(f"/deals/{did}")).json()
        (resolved,) = [e["detail"] for e in story["events"] if e["to_state"] == "resolved"]
        assert resolved["outcome"] == "undone" and resolved["by"] == "alice", resolved
        assert resolved["approved_by"] == "bob" and resolved["four_eyes"] == req["id"], resolved
        again = await bob.post(f"/approvals/{req['id']}/approve", json={"reason": "again"})
        assert again.status_code == 409 and again.json()["why"] == "decided", again.text
    assert [e["to_state"] for e in story["events"]].count("resolved") == 1
    eng.drain()
