"""An operator records that a flagged deal was settled: ``bsp deals resolve`` (offline, on the ledger file) and
``--live`` / ``POST /deals/{id}/resolve`` (the running engine writes it): docs/transactions.md "Resolving a
flagged deal", engine/deal_resolve.py.

The deals are flagged for real: a call with no compensation whose counterpart never answers (timeout) is
left in doubt and flagged (engine.txn.pivot).  Real engine, real loopback counterpart, a real keyed DuckDB
ledger; the ``bsp`` command line runs in a subprocess."""
from __future__ import annotations

import base64
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import httpx
import orjson
import trio

from engine.operator import os_user
from engine.ops.serve import AdminOptions, OpsOptions, run_live
from engine.registry import default_registry
from formats.framing import LengthPrefixFramer
from opskit import compile_file, json_counterpart, live, rows

TOKEN = "resolve-test-token-" + "r" * 20
KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.b64encode(bytes(range(1, 33))).decode()


ROUTE = """
format Req = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel back = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 300ms }
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY" }
    call post = back as Req reply Req { ref = msg.ref } expect post.status == "OK"
    reply Req { ref = msg.ref  code = "00" }
    on error reply Req { ref = msg.ref  code = error.code }
}
"""


def _route(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "pay.route"
    path.write_text(ROUTE % port)
    return path


def _answer(req: dict) -> dict | None:
    if req["ref"].startswith("D"):
        return None                                  # read, never answered: the call is left in doubt
    return {"ref": req["ref"], "status": "OK"}


async def _ask(port: int, refs: list[str]) -> list[dict]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    out: list[bytes] = []
    async with stream:
        with trio.fail_after(10):                    # a guard against a hang, not a timing
            for r in refs:                           # one after the other: each answered before the next
                await stream.send_all(tx.frame(orjson.dumps({"ref": r})))
                while len(out) < refs.index(r) + 1:
                    data = await stream.receive_some(65536)
                    assert data
                    out.extend(rx.feed(data))
    return [orjson.loads(f) for f in out]


def _bsp(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def _ids(ledger: Path) -> dict[str, str]:
    return {ref: did for did, ref in rows(ledger, "SELECT deal_id, reference FROM deals WHERE status <> 'duplicate'")}


def _refs(out: str) -> list[str]:
    return sorted(orjson.loads(line)["reference"] for line in out.splitlines())


async def test_resolve_offline_records_it_in_the_chain_and_the_deal_leaves_the_flagged_list(
        nursery, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BSP_AUDIT_KEY", KEY)
    back = await json_counterpart(nursery, _answer)
    ledger = tmp_path / "l.duckdb"
    async with live([_route(tmp_path, back)], ledger) as eng:
        got = await _ask(eng.channels["front"].port, ["K1", "D1", "D2"])
    assert [g["code"] for g in got] == ["00", "68", "68"], got
    ids = _ids(ledger)
    env = {**os.environ, "BSP_AUDIT_KEY": KEY, "COLUMNS": "250"}
    bsp = partial(_bsp, env)
    L = ("--ledger", str(ledger))

    r = bsp("deals", "--flagged", "--json", *L)
    assert r.returncode == 0 and _refs(r.stdout) == ["D1", "D2"], r.stderr
    assert all(orjson.loads(line)["resolution"] is None for line in r.stdout.splitlines())
    r = bsp("deals", "show", ids["D1"], *L)
    assert "flagged for an operator, not resolved: settle it with the counterpart, then `bsp deals resolve" in r.stdout

    r = bsp("deals", "resolve", ids["D1"][:24], "--outcome", "undone", "--note", "credit reversed by hand, OPS-7",
            "--by", "alice", *L)
    assert r.returncode == 0, r.stderr
    assert f"deal {ids['D1']} resolved (undone) by alice (os user {os_user()}) at " in r.stdout, r.stdout
    assert str(ledger) in r.stdout

    r = bsp("deals", "--flagged", "--json", *L)                    # the open flags only
    assert r.returncode == 0 and _refs(r.stdout) == ["D2"], (r.stdout, r.stderr)
    r = bsp("deals", "--flagged", "--all", "--json", *L)           # and the resolved ones
    got = {orjson.loads(line)["reference"]: orjson.loads(line) for line in r.stdout.splitlines()}
    assert sorted(got) == ["D1", "D2"] and got["D2"]["resolution"] is None
    res = got["D1"]["resolution"]
    assert res["outcome"] == "undone" and res["by"] == "alice" and res["via"] == "ledger file", res
    assert res["note"] == "credit reversed by hand, OPS-7" and res["at"].endswith("Z") and res["host"]
    # --by names someone other than the OS user who ran it: that user is recorded beside it (engine/operator.py)
    assert res["os_user"] == os_user() != "alice", res
    r = bsp("deals", "--flagged", "--all", *L)
    assert "flagged deals (open and resolved) in" in r.stdout and "undone by alice" in r.stdout, r.stdout
    r = bsp("deals", "show", ids["D1"], *L)
    assert r.returncode == 0 and f" by alice (via ledger file, os user {os_user()}, host " in r.stdout, r.stdout
    assert "): undone: credit reversed by hand, OPS-7" in r.stdout and "failed -> resolved" in r.stdout
    r = bsp("deals", "show", ids["D1"], "--json", *L)
    assert orjson.loads(r.stdout)["flag"] == "resolved"
    # the event is appended (the row and earlier events untouched), chained; the chain verifies
    [(detail, from_state)] = rows(ledger, f"SELECT detail, from_state FROM deal_events WHERE deal_id = '{ids['D1']}' "
                                          f"AND to_state = 'resolved'")
    assert orjson.loads(detail)["outcome"] == "undone" and from_state == "failed"
    r = bsp("audit", "verify", *L)
    assert r.returncode == 0, r.stdout + r.stderr

    # refusals: exit 1 with what to do, nothing written
    r = bsp("deals", "resolve", ids["D1"], "--outcome", "applied", "--note", "again", *L)
    assert r.returncode == 1 and f"deal {ids['D1']} is already resolved: undone by alice at " in r.stderr, r.stderr
    r = bsp("deals", "resolve", ids["K1"], "--outcome", "applied", "--note", "n", *L)
    assert r.returncode == 1 and "is not flagged for an operator" in r.stderr, r.stderr
    assert f"bsp deals --flagged --ledger {ledger}" in r.stderr
    r = bsp("deals", "resolve", "0123456789abcdef", "--outcome", "applied", "--note", "n", *L)
    assert r.returncode == 1 and f"{ledger}: no deal '0123456789abcdef'" in r.stderr, r.stderr
    r = bsp("deals", "resolve", ids["D2"], "--outcome", "settled", "--note", "n", *L)
    assert r.returncode == 2 and "expected one of applied, not-applied, undone, written-off" in r.stderr, r.stderr
    r = bsp("deals", "resolve", ids["D2"], "--outcome", "applied", "--note", "  ", *L)
    assert r.returncode == 2 and "--note" in r.stderr, r.stderr
    # a keyed chain is not written without its key, nor with another one
    r = _bsp({**env, "BSP_AUDIT_KEY": ""}, "deals", "resolve", ids["D2"], "--outcome", "applied", "--note", "n", *L)
    assert r.returncode == 2 and "already holds is keyed (sealed up to seq" in r.stderr, r.stderr
    assert "and no audit key is given" in r.stderr
    r = _bsp({**env, "BSP_AUDIT_KEY": OTHER_KEY}, "deals", "resolve", ids["D2"], "--outcome", "applied",
             "--note", "n", *L)
    assert r.returncode == 2 and "the audit key (BSP_AUDIT_KEY) does not match the audit chain" in r.stderr, r.stderr
    r = bsp("deals", "--flagged", "--json", *L)
    assert _refs(r.stdout) == ["D2"]
    assert rows(ledger, "SELECT count(*) FROM deal_events WHERE to_state = 'resolved'") == [(1,)]
    # without --by: the OS user running bsp is who did it, in the same field
    r = bsp("deals", "resolve", ids["D2"], "--outcome", "applied", "--note", "confirmed by phone", *L)
    assert r.returncode == 0 and f"resolved (applied) by {os_user()} at " in r.stdout, r.stderr
    r = bsp("deals", "--flagged", "--all", "--json", *L)
    res = {orjson.loads(line)["reference"]: orjson.loads(line) for line in r.stdout.splitlines()}["D2"]["resolution"]
    assert res["by"] == os_user() and "os_user" not in res, res
    r = bsp("audit", "verify", *L)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_os_user_without_a_name_is_its_uid(monkeypatch) -> None:
    import getpass

    def nameless() -> str:
        raise KeyError("getpwuid(): uid not found: 4242")

    monkeypatch.setattr(getpass, "getuser", nameless)
    assert os_user() == f"uid {os.getuid()}"


async def test_resolve_live_the_engine_records_it(nursery, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BSP_AUDIT_KEY", KEY)
    back = await json_counterpart(nursery, _answer)
    route = _route(tmp_path, back)
    ledger = tmp_path / "l.duckdb"
    registry = default_registry()
    box: list = []
    ready, stopped = trio.Event(), trio.Event()

    def hook(engine) -> None:
        box.append(engine)
        ready.set()

    async def serve() -> None:
        ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=TOKEN), hooks=[hook])
        await run_live(compile_file(route, registry), registry, ledger_path=ledger, load=lambda: ([route], {}),
                       grace=2.0, ops=ops)
        stopped.set()

    nursery.start_soon(serve)
    await ready.wait()
    eng = box[0]
    url = f"http://127.0.0.1:{eng.admin_port}"
    await _ask(eng.current.channels["front"].port, ["K1", "D1", "D2"])
    env = {**os.environ, "BSP_ADMIN_TOKEN": TOKEN, "BSP_ADMIN_URL": url, "COLUMNS": "250"}

    def bsp(*args: str) -> subprocess.CompletedProcess:
        return _bsp(env, *args)

    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {TOKEN}"}) as client:
        flagged = (await client.get("/deals", params={"flagged": "1"})).json()["deals"]
        ids = {d["reference"]: d["deal_id"] for d in flagged}
        assert sorted(ids) == ["D1", "D2"]
        r = await trio.to_thread.run_sync(bsp, "deals", "resolve", ids["D1"], "--live", "--outcome", "applied",
                                          "--note", "the credit house confirms it applied, ref CH-9", "--by", "bob")
        # who did it is the admin token's name (here the single token, "admin"); --by is what the caller stated
        assert r.returncode == 0 and f"deal {ids['D1']} resolved (applied) by admin (stated by bob)" in r.stdout, \
            r.stderr
        assert f"recorded in the engine at {url}" in r.stdout
        r = await trio.to_thread.run_sync(bsp, "deals", "--flagged", "--live", "--json")
        assert r.returncode == 0 and _refs(r.stdout) == ["D2"], r.stderr
        r = await trio.to_thread.run_sync(bsp, "deals", "--flagged", "--all", "--live", "--json")
        got = {orjson.loads(line)["reference"]: orjson.loads(line) for line in r.stdout.splitlines()}
        res = got["D1"]["resolution"]
        assert res["outcome"] == "applied" and res["by"] == "admin" and res["via"] == "admin API", res
        assert res["stated_by"] == "bob" and res["token"] == "admin", res
        assert res["peer"] == "127.0.0.1" and got["D2"]["resolution"] is None
        r = await trio.to_thread.run_sync(bsp, "deals", "show", ids["D1"], "--live")
        assert " by admin (via admin API, stated by bob, peer 127.0.0.1): applied: the credit house confirms it " \
               "applied" in r.stdout, \
            r.stdout
        r = await trio.to_thread.run_sync(bsp, "deals", "--all")
        assert r.returncode == 2 and "add --flagged" in r.stderr
        # refusals, through the CLI (exit 1) and the API (409 with `why`, 404, 400)
        r = await trio.to_thread.run_sync(bsp, "deals", "resolve", ids["D1"], "--live", "--outcome", "undone",
                                          "--note", "again")
        assert r.returncode == 1 and "is already resolved: applied by admin" in r.stderr, r.stderr
        r = await trio.to_thread.run_sync(bsp, "deals", "resolve", "0123456789abcdef", "--live", "--outcome",
                                          "undone", "--note", "n")
        assert r.returncode == 1 and f"the engine at {url} has no deal '0123456789abcdef'" in r.stderr, r.stderr
        k1 = (await client.get("/deals", params={"reference": "K1"})).json()["deals"][0]["deal_id"]
        resp = await client.post(f"/deals/{k1}/resolve", json={"outcome": "applied", "note": "n"})
        assert resp.status_code == 409 and resp.json()["why"] == "not_flagged", resp.text
        resp = await client.post(f"/deals/{ids['D2']}/resolve", json={"outcome": "maybe", "note": "n"})
        assert resp.status_code == 400 and resp.json()["field"] == "outcome", resp.text
        resp = await client.post(f"/deals/{ids['D2']}/resolve", json={"outcome": "undone", "note": "n", "x": 1})
        assert resp.status_code == 400 and "unknown field(s) x" in resp.json()["detail"], resp.text
        resp = await client.post(f"/deals/{ids['D2']}/resolve", content=b"{oops",
                                 headers={"content-type": "application/json"})
        assert resp.status_code == 400 and "not JSON" in resp.json()["detail"], resp.text
        async with httpx.AsyncClient(base_url=url) as anyone:
            resp = await anyone.post(f"/deals/{ids['D2']}/resolve", json={"outcome": "undone", "note": "n"})
        assert resp.status_code == 401                       # token-protected like the others
        status = (await client.get("/status")).json()
        assert status["flagged_deals"] == 2 and status["resolved_deals"] == 1, status
        assert status["routes"]["pay"]["resolved"] == 1
        metrics = (await client.get("/metrics")).text
        assert 'bsp_route_resolved_total{route="pay"} 1.0' in metrics
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert paths["/deals/{id}/resolve"]["post"]["requestBody"]["required"] is True
    eng.drain()
    with trio.fail_after(20):
        await stopped.wait()
    r = await trio.to_thread.run_sync(_bsp, {**env, "BSP_AUDIT_KEY": KEY}, "audit", "verify", "--ledger", str(ledger))
    assert r.returncode == 0, r.stdout + r.stderr
    assert rows(ledger, "SELECT count(*) FROM deal_events WHERE to_state = 'resolved'") == [(1,)]
