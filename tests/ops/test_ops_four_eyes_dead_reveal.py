"""Four eyes on a dead letter's reveal (dead.reveal), over the real admin API of a real engine (run_live, 127.0.0.1,
port 0, named tokens with the role raw, a real DuckDB ledger, no field keyring: the message is stored in clear).

With dead.reveal listed, `GET /dead-letters/{id}` withholds a message stored in clear even from a token with the
role raw; `bsp dead show ID --live --reveal` records a request and shows nothing; the requester cannot approve it
nor fetch it before another operator approved; approved, the requester alone fetches the message once (`bsp
approvals reveal ID --live`); the reveal is recorded on the letter (both operators) and told by `bsp report
operator-actions`; on the ledger file `bsp dead show --reveal` is refused (the policy the engine recorded)."""
from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

import httpx
import trio
from typer.testing import CliRunner

from engine.admin.auth import NamedToken
from engine.cli import app
from engine.four_eyes import Policy
from engine.ops.runsettings import RunKeys
from engine.ops.serve import AdminOptions, OpsOptions, run_live
from engine.registry import default_registry
from opskit import compile_file, json_counterpart
from test_ops_four_eyes import AUDIT_KEY, ROUTE, Back, _letter

SECRETS = {n: f"{n}-secret-" + "r" * 24 for n in ("alice", "bob", "dave")}
TOKENS = tuple(NamedToken(n, s, frozenset({"operate", "read"} | ({"raw"} if n != "dave" else set())))
               for n, s in SECRETS.items())
CARD = "CARD-4111111111111111"


async def _engine(nursery, tmp_path: Path, port: int, keyring=None):
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % port)
    registry = default_registry()
    ready = trio.Event()
    box: list = []
    ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token="", tokens=TOKENS),
                     hooks=[lambda e: (box.append(e), ready.set())], four_eyes=Policy(("dead.reveal",), 3600))
    nursery.start_soon(lambda: run_live(compile_file(route, registry), registry, ledger_path=tmp_path / "l.duckdb",
                                        load=lambda: ([route], {}), grace=2.0, ops=ops,
                                        keys=RunKeys(audit_key=AUDIT_KEY, keyring=keyring)))
    with trio.fail_after(10):
        await ready.wait()
    return box[0], f"http://127.0.0.1:{box[0].admin_port}"


def _client(url: str, who: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {SECRETS[who]}"}, timeout=30)


def _bsp(url: str | None, who: str | None, *args: str):
    env = {"BSP_ADMIN_URL": url, "BSP_ADMIN_TOKEN": SECRETS[who] if who else None, "BSP_ADMIN_TOKEN_FILE": None,
           "BSP_FIELD_KEYS": None, "BSP_FIELD_KEYS_FILE": None, "COLUMNS": "250"}
    return CliRunner().invoke(app, list(args), env=env)


async def test_a_dead_letters_message_is_shown_once_another_operator_approves_its_reveal(
        nursery, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(AUDIT_KEY).decode())
    monkeypatch.delenv("BSP_AUDIT_KEY_FILE", raising=False)
    back = Back()
    port = await json_counterpart(nursery, back)
    ledger = str(tmp_path / "l.duckdb")
    async with trio.open_nursery() as running:
        eng, url = await _engine(running, tmp_path, port)
        lid = await _letter(eng, CARD)
        async with _client(url, "alice") as alice, _client(url, "bob") as bob, _client(url, "dave") as dave:
            got = await alice.get(f"/dead-letters/{lid}")          # the role raw is not enough under four eyes
            assert got.status_code == 200 and got.json()["raw_base64"] is None, got.text
            assert got.json()["raw_four_eyes"] is True and CARD not in got.text, got.text
            r = await trio.to_thread.run_sync(_bsp, url, "bob", "dead", "show", lid, "--live")     # says why
            assert r.exit_code == 0 and "withheld by the engine: four eyes: dead.reveal is under dual control" \
                in r.output and "roles read and raw" not in r.output and CARD not in r.output, r.output
            r = await trio.to_thread.run_sync(_bsp, url, "alice", "dead", "show", lid, "--live", "--reveal")
            assert r.exit_code == 0, r.output
            assert "NOT done yet: four eyes: dead.reveal of " + lid in r.output and CARD not in r.output, r.output
            assert "bsp approvals reveal " in r.output, r.output
            (req,) = (await bob.get("/approvals")).json()["approvals"]
            assert (req["action"], req["by"], req["target"]) == ("dead.reveal", "alice", lid), req
            nope = await dave.post(f"/dead-letters/{lid}/reveals", json={"fields": ["message"]})
            assert nope.status_code == 403 and "role 'raw'" in nope.text, nope.text      # nothing requested
            early = await alice.post(f"/approvals/{req['id']}/reveal")
            assert early.status_code == 409 and early.json()["why"] == "not_approved", early.text
            own = await alice.post(f"/approvals/{req['id']}/approve", json={"reason": "mine"})
            assert own.status_code == 409 and own.json()["why"] == "own_request", own.text
            ok = await bob.post(f"/approvals/{req['id']}/approve", json={"reason": "ticket OPS-7: the bank asks"})
            assert ok.status_code == 200 and CARD not in ok.text and ok.json()["decision"]["fetch_until"], ok.text
            other = await bob.post(f"/approvals/{req['id']}/reveal")
            assert other.status_code == 409 and other.json()["why"] == "not_requester", other.text
            r = await trio.to_thread.run_sync(_bsp, url, "alice", "approvals", "reveal", req["id"][:8], "--live")
            assert r.exit_code == 0 and CARD in r.output, r.output
            again = await alice.post(f"/approvals/{req['id']}/reveal")
            assert again.status_code == 409 and again.json()["why"] == "fetched", again.text
            assert CARD not in (await bob.get("/approvals?all=1")).text
            story = (await bob.get(f"/dead-letters/{lid}")).json()
            assert story["raw_base64"] is None and story["approvals"][0]["state"] == "approved", story
        eng.drain()
        running.cancel_scope.deadline = trio.current_time() + 30      # a hang guard
    # on the ledger file: refused while the recorded policy lists dead.reveal; the reveal in the operators' report
    r = await trio.to_thread.run_sync(_bsp, None, None, "dead", "show", lid, "--ledger", ledger, "--reveal")
    assert r.exit_code == 2 and "four eyes: dead.reveal needs a second operator's approval" in r.output, r.output
    assert CARD not in r.output, r.output
    r = await trio.to_thread.run_sync(_bsp, None, None, "report", "operator-actions", "--ledger", ledger, "--from",
                                      "today", "--format", "csv")
    assert r.exit_code == 0, r.output
    rows = [row for row in csv.DictReader(io.StringIO(r.stdout))]
    (shown,) = [row for row in rows if row["action"] == "reveal"]
    assert shown["by"] == "alice" and shown["target"] == lid and "dead letter: message" in shown["what"], shown
    assert any(row["action"] == "four eyes: approve" and row["by"] == "bob" for row in rows), rows


async def test_a_sealed_message_is_decrypted_by_the_engine_for_its_requester(nursery, tmp_path: Path) -> None:
    """The engine holds the field keyring: GET sends the message sealed (as a deal's sealed fields); an approved
    dead.reveal is fetched by its requester with the message decrypted by the engine."""
    from test_ops_four_eyes_reveal_reload import KEYRING

    back = Back()
    port = await json_counterpart(nursery, back)
    eng, url = await _engine(nursery, tmp_path, port, KEYRING)
    lid = await _letter(eng, CARD + "-S")
    async with _client(url, "alice") as alice, _client(url, "bob") as bob:
        got = (await alice.get(f"/dead-letters/{lid}")).json()
        assert got["raw_key"] and got["raw_base64"] and CARD not in base64.b64decode(got["raw_base64"]).decode()
        req = await alice.post(f"/dead-letters/{lid}/reveals", json={"fields": ["message"], "by": "alice"})
        assert req.status_code == 202 and req.json()["action"] == "dead.reveal", req.text
        rid = req.json()["id"]
        assert (await bob.post(f"/approvals/{rid}/approve", json={"reason": "OPS-8"})).status_code == 200
        done = await alice.post(f"/approvals/{rid}/reveal")
        assert done.status_code == 200, done.text
        letter = done.json()["dead_letter"]
        assert CARD + "-S" in base64.b64decode(letter["raw_base64"]).decode() and letter["raw_key"] is None, letter
        assert done.json()["fields"][0] == "message" and done.json()["request"]["revealed"]["approved_by"] == "bob"
    eng.drain()
