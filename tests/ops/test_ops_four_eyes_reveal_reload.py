"""Four eyes on a reveal and on a reload, over the real admin API of a real engine (run_live, 127.0.0.1, port 0,
named tokens, a field keyring, a real DuckDB ledger).

deal.reveal: `bsp deals show ID --live --reveal` in a shell without the field keyring records a request and shows
nothing; the requester cannot approve it, nor fetch it before it is approved; approved by another token, the
requester alone fetches the deal with its sealed field in clear (`bsp approvals reveal ID --live`), once; the
clear value is in no ledger row, no log line and no listing; a reveal not fetched before its `fetch_until` (the
injected clock moved past it) is refused, lapsed.

config.reload: POST /reload compiles the files (a dry run) and records a request for their version; the engine
keeps running the old one until another token approves; an approval of files changed since does not reload, and
one of the version running already does not reload again."""
from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import trio

from engine.fieldcrypt import keyring_from_list
from engine.four_eyes import Policy
from engine.ops.ledger_reads import read_in_process
from engine.ops.runsettings import RunKeys
from engine.ops.serve import AdminOptions, OpsOptions, run_live
from engine.registry import default_registry
from opskit import REPO, compile_file, json_counterpart
from formats.framing import LengthPrefixFramer
from test_ops_four_eyes import AUDIT_KEY, SECRETS, TOKENS, Back, _client

ROUTE = """
format Req = json classify ["name:personal"]
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2
    on error reply Req { ref = msg.ref  code = error.code } }
channel back = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 5s }
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY" }
    call post = back as Req reply Req { ref = msg.ref } expect post.status == "OK"
    reply Req { ref = msg.ref  code = "%s" }
}
"""
NAME = "Ivan Petrovich Sidorov"
KEYRING = keyring_from_list("k1:" + base64.b64encode(bytes(range(100, 132))).decode(), "test keyring")


async def _engine(nursery, tmp_path: Path, policy: Policy):
    back = Back()
    back.up = True
    port = await json_counterpart(nursery, back)
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % (port, "00"))
    registry = default_registry()
    ready = trio.Event()
    box: list = []
    ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token="", tokens=TOKENS),
                     hooks=[lambda e: (box.append(e), ready.set())], four_eyes=policy)
    nursery.start_soon(lambda: run_live(compile_file(route, registry), registry, ledger_path=tmp_path / "l.duckdb",
                                        load=lambda: ([route], {}), grace=2.0, ops=ops,
                                        keys=RunKeys(audit_key=AUDIT_KEY, keyring=KEYRING)))
    with trio.fail_after(10):
        await ready.wait()
    return box[0], f"http://127.0.0.1:{box[0].admin_port}", route, port


async def _ask(port: int, ref: str, name: str) -> dict:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    async with stream:
        await stream.send_all(tx.frame(orjson.dumps({"ref": ref, "name": name})))
        got: list[bytes] = []
        while not got:
            data = await stream.receive_some(65536)
            if not data:
                break
            got.extend(rx.feed(data))
    return orjson.loads(got[0]) if got else {}


def _bsp(url: str, who: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BSP_ADMIN_URL": url, "BSP_ADMIN_TOKEN": SECRETS[who], "COLUMNS": "250"}
    for name in ("BSP_ADMIN_TOKEN_FILE", "BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE"):
        env.pop(name, None)          # this shell has no field keyring: the engine decrypts
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=str(REPO))


def _every_event(path: Path, con) -> str:
    return "\n".join(str(d) for (d,) in con.execute("SELECT detail FROM deal_events").fetchall())


async def test_a_reveal_goes_to_its_requester_once_another_operator_approves_it(nursery, tmp_path: Path,
                                                                               caplog) -> None:
    caplog.set_level(logging.DEBUG)
    clock = [datetime.now(timezone.utc)]
    eng, url, _, _ = await _engine(nursery, tmp_path, Policy(("deal.reveal",), 600, now=lambda: clock[0]))
    for ref in ("V1", "V2"):
        assert (await _ask(eng.channels["front"].port, ref, NAME))["code"] == "00"
    async with _client(url, "alice") as alice, _client(url, "bob") as bob:
        deals = {d["reference"]: d["deal_id"] for d in (await alice.get("/deals")).json()["deals"]}
        sealed = (await alice.get(f"/deals/{deals['V1']}")).json()["request"]["name"]
        assert sealed.startswith("enc:v1:"), sealed
        r = await trio.to_thread.run_sync(_bsp, url, "alice", "deals", "show", deals["V1"], "--live", "--reveal")
        assert r.returncode == 0 and "NOT done yet: four eyes: deal.reveal of " in r.stdout, r.stdout + r.stderr
        assert NAME not in r.stdout and "bsp approvals reveal " in r.stdout, r.stdout
        (req,) = (await bob.get("/approvals")).json()["approvals"]
        assert req["action"] == "deal.reveal" and req["by"] == "alice" and req["target"] == deals["V1"], req
        early = await alice.post(f"/approvals/{req['id']}/reveal")
        assert early.status_code == 409 and early.json()["why"] == "not_approved", early.text
        own = await alice.post(f"/approvals/{req['id']}/approve", json={"reason": "mine"})
        assert own.status_code == 409 and own.json()["why"] == "own_request", own.text
        ok = await bob.post(f"/approvals/{req['id']}/approve", json={"reason": "ticket OPS-12: chargeback"})
        assert ok.status_code == 200 and NAME not in ok.text, ok.text
        assert ok.json()["decision"]["fetch_until"] == (clock[0] + timedelta(seconds=600)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"), ok.text
        other = await bob.post(f"/approvals/{req['id']}/reveal")      # the approver is not the requester
        assert other.status_code == 409 and other.json()["why"] == "not_requester", other.text
        r = await trio.to_thread.run_sync(_bsp, url, "alice", "approvals", "reveal", req["id"][:8], "--live",
                                          "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        assert orjson.loads(r.stdout)["request"]["name"] == NAME, r.stdout
        again = await alice.post(f"/approvals/{req['id']}/reveal")
        assert again.status_code == 409 and again.json()["why"] == "fetched", again.text
        listed = await bob.get("/approvals?all=1")
        assert NAME not in listed.text, listed.text
        (done,) = listed.json()["approvals"]
        assert done["state"] == "approved" and done["run"]["outcome"] == "revealed to alice (1 field(s))", done
        # a second reveal approved and not fetched in time: lapsed, nothing shown
        # (asked with alice's token, saying "carol": carol's token is not the requester's, and gets nothing)
        r2 = await alice.post(f"/deals/{deals['V2']}/reveals", json={"fields": [], "four_eyes": True, "by": "carol"})
        assert r2.status_code == 202 and r2.json()["stated_by"] == "carol", r2.text
        assert (await bob.post(f"/approvals/{r2.json()['id']}/approve", json={"reason": "ok"})).status_code == 200
        async with _client(url, "carol") as carol:
            said = await carol.post(f"/approvals/{r2.json()['id']}/reveal")
            assert said.status_code == 409 and said.json()["why"] == "not_requester", said.text
        clock[0] += timedelta(seconds=600)
        late = await alice.post(f"/approvals/{r2.json()['id']}/reveal")
        assert late.status_code == 409 and late.json()["why"] == "lapsed" and NAME not in late.text, late.text
        states = {a["id"]: a["state"] for a in (await bob.get("/approvals?all=1")).json()["approvals"]}
        assert states == {req["id"]: "approved", r2.json()["id"]: "lapsed"}, states
        story = (await bob.get(f"/deals/{deals['V1']}")).json()
        (revealed,) = [e["detail"] for e in story["events"] if e["to_state"] == "revealed"]
        assert revealed["by"] == "alice" and revealed["approved_by"] == "bob", revealed
        assert revealed["four_eyes"] == req["id"] and revealed["fields"] == ["request.name"], revealed
    # the clear value is nowhere but in the requester's answer: not in the ledger, not in the log
    assert NAME not in await read_in_process(_every_event, Path(eng.ledger.path))
    assert NAME not in caplog.text
    assert "fetched by token 'alice'" in caplog.text, caplog.text
    eng.drain()


async def test_a_reload_runs_the_version_asked_once_another_operator_approves_it(nursery, tmp_path: Path) -> None:
    eng, url, route, port = await _engine(nursery, tmp_path, Policy(("config.reload",), 3600))
    first = eng.current.version
    route.write_text(ROUTE % (port, "01"))
    async with _client(url, "alice") as alice, _client(url, "bob") as bob:
        dry = await alice.post("/reload?dry_run=1")               # a dry run changes nothing: not under four eyes
        assert dry.status_code == 200 and dry.json()["dry_run"] is True, dry.text
        r = await alice.post("/reload")
        assert r.status_code == 202 and r.json()["action"] == "config.reload", r.text
        req = r.json()
        asked = req["params"]["version"]
        assert asked == dry.json()["version"] != first and eng.current.version == first, req
        again = await bob.post("/reload")
        assert again.status_code == 409 and again.json()["why"] == "already_requested", again.text
        own = await alice.post(f"/approvals/{req['id']}/approve", json={"reason": "mine"})
        assert own.status_code == 409 and own.json()["why"] == "own_request", own.text
        assert eng.current.version == first
        ok = await bob.post(f"/approvals/{req['id']}/approve", json={"reason": "reviewed the diff"})
        assert ok.status_code == 200 and ok.json()["run"]["ok"] is True, ok.text
        assert ok.json()["run"]["outcome"] == f"reloaded: version {first} -> {asked}", ok.text
        assert eng.current.version == asked
        assert (await alice.get("/approvals?all=1")).json()["approvals"][0]["state"] == "approved"
        # asked for the files as they were, approved after they changed: not reloaded
        route.write_text(ROUTE % (port, "02"))
        req2 = (await alice.post("/reload")).json()
        route.write_text(ROUTE % (port, "03"))
        r = await bob.post(f"/approvals/{req2['id']}/approve", json={"reason": "ok"})
        assert r.status_code == 200 and r.json()["run"]["ok"] is False, r.text
        assert "not reloaded: the files changed since the request" in r.json()["run"]["outcome"], r.text
        assert eng.current.version == asked
        # asked for the version running already: not reloaded again
        route.write_text(ROUTE % (port, "01"))
        req3 = (await alice.post("/reload")).json()
        assert req3["params"]["version"] == asked, req3
        r = await bob.post(f"/approvals/{req3['id']}/approve", json={"reason": "ok"})
        assert r.status_code == 200 and r.json()["run"]["outcome"].startswith(f"not reloaded: version {asked} runs"), \
            r.text
    eng.drain()
