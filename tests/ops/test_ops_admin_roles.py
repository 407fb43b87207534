"""Named admin tokens with roles (docs/admin-api.md#roles): each role reaches its endpoints only (403 naming the
role otherwise, counted and logged with the token's name), operator actions record the token's name (reload,
resolve, retry, snapshot), raw dead-letter messages need the role raw, two entries with one token are refused
at start, and the single-token setup stays one token with every role.

Real engine (run_live), real admin API on 127.0.0.1 port 0, a real loopback counterpart and DuckDB ledger;
the ``bsp`` command line runs in a subprocess."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
import trio

from engine.admin.auth import NamedToken, TokenAuth
from engine.admin.roles import ALL_ROLES
from engine.deploy import load_deployment
from engine.ops import runopts
from engine.ops.serve import AdminOptions, OpsOptions, run_live
from engine.registry import default_registry
from formats.framing import LengthPrefixFramer
from opskit import compile_file, json_counterpart

# the counterpart answers K* at once and never D*: a timeout of 2 s (with 300 ms, K1 could miss it on a loaded machine), which
# D1 and D2 wait out
ROUTE = """
format Req = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2 }
channel back = tcp connect { address = "127.0.0.1:%d"  framing = length4  timeout = 2s }
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY" }
    call post = back as Req reply Req { ref = msg.ref } expect post.status == "OK"
    reply Req { ref = msg.ref  code = "00" }
    on error reply Req { ref = msg.ref  code = error.code }
}
"""

SECRETS = {name: f"{name}-secret-" + "s" * 20 for name in ("prom", "dash", "audit", "ops-alice", "vault")}
ROLES = {"prom": {"monitor"}, "dash": {"monitor", "read"}, "audit": {"read", "raw"}, "ops-alice": {"operate"},
         "vault": {"snapshot"}}
NAMED = tuple(NamedToken(n, SECRETS[n], frozenset(ROLES[n])) for n in SECRETS)
LEGACY = "legacy-admin-token-" + "a" * 20
DEAL = "0123456789abcdef0123456789abcdef"
LETTER = "0123456789abcdef0123456789abcdef"

# the table of docs/admin-api.md#roles, written out here (not read from the code under test)
EXPECTED = [
    ("GET", "/ready", "monitor"), ("GET", "/status", "monitor"), ("GET", "/metrics", "monitor"),
    ("GET", "/openapi.json", "monitor"),
    ("GET", "/deals", "read"), ("GET", f"/deals/{DEAL}", "read"), ("GET", "/dead-letters", "read"),
    ("GET", f"/dead-letters/{LETTER}", "read"),
    ("POST", "/reload?dry_run=1", "operate"), ("POST", f"/dead-letters/{LETTER}/retry", "operate"),
    ("POST", f"/deals/{DEAL}/resolve", "operate"),
    ("POST", "/ledger/snapshot", "snapshot"),
]


def _answer(req: dict) -> dict | None:
    return None if req["ref"].startswith("D") else {"ref": req["ref"], "status": "OK"}


async def _ask(port: int, refs: list[str]) -> list[dict]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    out: list[bytes] = []
    async with stream:
        with trio.fail_after(60):                    # a guard against a hang, not a timing
            for i, r in enumerate(refs):
                await stream.send_all(tx.frame(orjson.dumps({"ref": r})))
                while len(out) < i + 1:
                    data = await stream.receive_some(65536)
                    assert data
                    out.extend(rx.feed(data))
    return [orjson.loads(f) for f in out]


async def _engine(nursery, tmp_path: Path, *, token: str = "", tokens=NAMED):
    back = await json_counterpart(nursery, _answer)
    route = tmp_path / "pay.route"
    route.write_text(ROUTE % back)
    registry = default_registry()
    ready = trio.Event()
    box: list = []

    def hook(engine) -> None:
        box.append(engine)
        ready.set()

    ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=token, tokens=tokens), hooks=[hook])
    nursery.start_soon(lambda: run_live(compile_file(route, registry), registry, ledger_path=tmp_path / "l.duckdb",
                                        load=lambda: ([route], {}), grace=2.0, ops=ops))
    await ready.wait()
    return box[0], f"http://127.0.0.1:{box[0].admin_port}"


def _client(url: str, secret: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {secret}"}, timeout=30)


async def test_each_role_reaches_its_endpoints_and_is_refused_the_others(nursery, tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="bsp.admin")
    eng, url = await _engine(nursery, tmp_path)
    forbidden = 0
    for name, secret in SECRETS.items():
        async with _client(url, secret) as client:
            for method, path, role in EXPECTED:
                body = {"outcome": "applied", "note": "n"} if path.endswith("/resolve") else None
                r = await client.request(method, path, json=body)
                if role in ROLES[name]:
                    assert r.status_code != 403, (name, method, path, r.text)
                    assert r.status_code in (200, 404), (name, method, path, r.text)
                    continue
                forbidden += 1
                assert r.status_code == 403, (name, method, path, r.text)
                doc = r.json()
                assert doc["role"] == role and f"the role {role!r}" in doc["detail"], doc
                assert not any(n in r.text for n in SECRETS), r.text        # no token named, neither its own
                assert not any(s in r.text for s in SECRETS.values())
    async with _client(url, SECRETS["prom"]) as client:
        metrics = (await client.get("/metrics")).text
    assert f'bsp_admin_auth_failures_total{{reason="forbidden"}} {float(forbidden)}' in metrics, metrics
    lines = [r.getMessage() for r in caplog.records if "lacks the role" in r.getMessage()]
    # the first refusal of each token in full (its name, the path, the role), the rest counted (not one a line)
    assert len(lines) == len(SECRETS), lines
    assert any("GET /deals from 127.0.0.1: token 'prom' lacks the role 'read'" in line for line in lines), lines
    assert not any(s in "\n".join(lines) for s in SECRETS.values())


async def test_operator_actions_record_the_token_name_and_raw_needs_its_role(nursery, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    eng, url = await _engine(nursery, tmp_path, token=LEGACY)
    got = await _ask(eng.current.channels["front"].port, ["K1", "D1", "D2"])
    assert [g["code"] for g in got] == ["00", "68", "68"], got
    async with _client(url, LEGACY) as admin, _client(url, SECRETS["ops-alice"]) as ops, \
            _client(url, SECRETS["dash"]) as dash, _client(url, SECRETS["audit"]) as audit, \
            _client(url, SECRETS["vault"]) as vault:
        flagged = (await dash.get("/deals", params={"flagged": "1"})).json()["deals"]
        ids = {d["reference"]: d["deal_id"] for d in flagged}
        assert sorted(ids) == ["D1", "D2"], flagged

        # resolve: the token's name is who did it (`by`, chained in the `resolved` event's detail); a body's `by`
        # naming someone else is kept beside it as what the caller stated (docs/security.md "Who did it")
        r = await ops.post(f"/deals/{ids['D1']}/resolve", json={"outcome": "applied", "note": "CH-9", "by": "alice"})
        assert r.status_code == 200 and r.json()["token"] == "ops-alice", r.text
        story = (await dash.get(f"/deals/{ids['D1']}")).json()
        [event] = [e for e in story["events"] if e["to_state"] == "resolved"]
        detail = event["detail"] if isinstance(event["detail"], dict) else orjson.loads(event["detail"])
        assert detail["token"] == "ops-alice" and detail["by"] == "ops-alice", event
        assert detail["stated_by"] == "alice", event
        # without a body `by`, or with the token's own name: no stated_by
        r = await ops.post(f"/deals/{ids['D2']}/resolve", json={"outcome": "applied", "note": "CH-10",
                                                               "by": "ops-alice"})
        assert r.status_code == 200 and r.json()["by"] == "ops-alice" and "stated_by" not in r.json(), r.text
        flagged = (await dash.get("/deals", params={"flagged": "1", "resolved": "1"})).json()["deals"]
        assert {d["resolution"]["by"] for d in flagged} == {"ops-alice"}, flagged

        # reload: the log line and the status entry
        r = await ops.post("/reload")
        assert r.status_code == 200, r.text
        reloads = (await dash.get("/status")).json()["reloads"]
        assert reloads[-1]["by"] == "ops-alice" and reloads[-1]["source"] == "admin", reloads
        assert any("reloaded: version" in m and "(admin, token 'ops-alice')" in m
                   for m in (rec.getMessage() for rec in caplog.records))

        # a dead letter: its message for the role raw only
        letters = (await dash.get("/dead-letters")).json()["dead_letters"]
        assert letters, "the deals failed in doubt have their dead letters"
        letter = letters[0]
        seen = (await dash.get(f"/dead-letters/{letter['id']}")).json()
        assert seen["raw_base64"] is None and "the role 'raw'" in seen["raw_withheld"], seen
        full = (await audit.get(f"/dead-letters/{letter['id']}")).json()
        assert full["raw_base64"] and "raw_withheld" not in full, full
        assert (await admin.get(f"/dead-letters/{letter['id']}")).json()["raw_base64"] == full["raw_base64"]

        # retry: the outcome recorded on the dead letter names the token
        r = await ops.post(f"/dead-letters/{letter['id']}/retry")
        assert r.status_code == 200 and r.json()["by"] == "ops-alice", r.text
        after = (await dash.get(f"/dead-letters/{letter['id']}")).json()
        assert "(admin API, token 'ops-alice')" in after["retry_outcome"], after

        # snapshot: the log line names the token
        r = await vault.post("/ledger/snapshot")
        assert r.status_code == 200 and r.content, r.text
        assert any("ledger snapshot:" in m and "(token 'vault')" in m
                   for m in (rec.getMessage() for rec in caplog.records))

        # the single token given alone (--admin-token-file, admin.token) still does everything, as "admin"
        r = await admin.post("/reload", params={"dry_run": "1"})
        assert r.status_code == 200, r.text


def _bsp(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env,
                          timeout=60)


async def test_cli_works_with_a_token_of_the_role_and_says_the_403_otherwise(nursery, tmp_path) -> None:
    _, url = await _engine(nursery, tmp_path)
    env = {**os.environ, "BSP_ADMIN_URL": url, "BSP_ADMIN_TOKEN": SECRETS["prom"], "COLUMNS": "250"}
    env.pop("BSP_ADMIN_TOKEN_FILE", None)
    r = await trio.to_thread.run_sync(lambda: _bsp(env, "status"))
    assert r.returncode == 0 and orjson.loads(r.stdout)["ready"] is True, r.stderr
    r = await trio.to_thread.run_sync(lambda: _bsp(env, "reload"))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "error: 403 Forbidden: POST /reload needs a token with the role 'operate'" in r.stderr, r.stderr
    r = await trio.to_thread.run_sync(lambda: _bsp({**env, "BSP_ADMIN_TOKEN": SECRETS["ops-alice"]}, "reload"))
    assert r.returncode == 0 and "reload ok" in r.stdout, r.stderr


async def test_dead_show_live_says_why_the_engine_withheld_the_message(nursery, tmp_path) -> None:
    """`bsp dead show ID --live` with a token without the role raw printed `raw: (unreadable)`, dropping the
    engine's `raw_withheld` (why, and what to do), and with --reveal exited 0 having revealed nothing."""
    eng, url = await _engine(nursery, tmp_path)
    got = await _ask(eng.current.channels["front"].port, ["D1"])
    assert [g["code"] for g in got] == ["68"], got
    async with _client(url, SECRETS["dash"]) as dash:
        [letter] = (await dash.get("/dead-letters")).json()["dead_letters"]
    env = {**os.environ, "BSP_ADMIN_URL": url, "BSP_ADMIN_TOKEN": SECRETS["dash"], "COLUMNS": "250"}
    env.pop("BSP_ADMIN_TOKEN_FILE", None)
    r = await trio.to_thread.run_sync(lambda: _bsp(env, "dead", "show", letter["id"], "--live"))
    assert r.returncode == 0, r.stderr
    [raw] = [ln for ln in r.stdout.splitlines() if ln.strip().startswith("raw:")]
    assert "(unreadable)" not in raw and "withheld by the engine" in raw and "the role 'raw'" in raw, r.stdout
    r = await trio.to_thread.run_sync(lambda: _bsp(env, "dead", "show", letter["id"], "--live", "--reveal"))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"--reveal of dead letter {letter['id']}: the engine withheld its message" in r.stderr, r.stderr
    assert "the role 'raw'" in r.stderr and "raw:" not in r.stdout, (r.stdout, r.stderr)
    # a token with the role raw gets it
    r = await trio.to_thread.run_sync(lambda: _bsp({**env, "BSP_ADMIN_TOKEN": SECRETS["audit"]},
                                                   "dead", "show", letter["id"], "--live", "--reveal"))
    assert r.returncode == 0 and '"D1"' in r.stdout, (r.stdout, r.stderr)


def _deployment(tmp_path: Path, body: str) -> Path:
    (tmp_path / "x.route").write_text("")
    p = tmp_path / "platform.yaml"
    p.write_text("routes: [x.route]\nadmin:\n  listen: \"127.0.0.1:0\"\n" + body)
    return p


def test_admin_tokens_from_the_deployment_file_and_duplicates_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("BSP_ADMIN_TOKEN", raising=False)
    (tmp_path / "prom.token").write_text(SECRETS["prom"] + "\n")
    (tmp_path / "ops.token").write_text(SECRETS["ops-alice"] + "\n")
    monkeypatch.setenv("BSP_OPS_TOKEN", SECRETS["ops-alice"])
    dep = load_deployment(_deployment(tmp_path, "  tokens:\n"
                                                "    - {name: prometheus, file: prom.token, roles: [monitor]}\n"
                                                "    - {name: alice, env: BSP_OPS_TOKEN, roles: [operate, read]}\n"))
    opts = runopts.admin_options(None, None, None, None, None, None, dep)
    assert opts.token == "" and [(t.name, t.roles) for t in opts.tokens] == [
        ("prometheus", frozenset({"monitor"})), ("alice", frozenset({"operate", "read"}))]
    assert opts.tokens[0].secret == SECRETS["prom"]

    # one token text under two names: refused at start, naming both (never the token)
    dep = load_deployment(_deployment(tmp_path, "  tokens:\n"
                                                "    - {name: prometheus, file: prom.token, roles: [monitor]}\n"
                                                "    - {name: alice, file: ops.token, roles: [operate]}\n"
                                                "    - {name: bob, env: BSP_OPS_TOKEN, roles: [operate]}\n"))
    with pytest.raises(runopts.OpsConfigError) as exc:
        runopts.admin_options(None, None, None, None, None, None, dep)
    assert "admin tokens 'alice' and 'bob' are the same token" in str(exc.value)
    assert SECRETS["ops-alice"] not in str(exc.value)

    # on the command line: NAME:ROLES:FILE, replacing admin.tokens
    opts = runopts.admin_options(None, None, None, None, None, None, dep,
                                 [f"scraper:monitor:{tmp_path / 'prom.token'}"])
    assert [t.name for t in opts.tokens] == ["scraper"]
    with pytest.raises(runopts.OpsConfigError, match="the name 'a b': use letters"):
        runopts.admin_options(None, None, None, None, None, None, dep, [f"a b:monitor:{tmp_path / 'prom.token'}"])
    with pytest.raises(runopts.OpsConfigError, match="unknown role 'admin'"):
        runopts.admin_options(None, None, None, None, None, None, dep, [f"x:admin:{tmp_path / 'prom.token'}"])


def test_an_admin_token_that_cannot_be_read_says_how_to_fix_it(tmp_path, monkeypatch) -> None:
    # the production example of docs/deployment.md names a token by variable; unset, the start said only
    # "environment variable BSP_REPORTS_TOKEN is not set", not what to do
    monkeypatch.delenv("BSP_REPORTS_TOKEN", raising=False)
    monkeypatch.delenv("BSP_ADMIN_TOKEN", raising=False)
    dep = load_deployment(_deployment(tmp_path, "  tokens:\n"
                                                "    - {name: reports, env: BSP_REPORTS_TOKEN, roles: [snapshot]}\n"))
    with pytest.raises(runopts.OpsConfigError) as exc:
        runopts.admin_options(None, None, None, None, None, None, dep)
    text = str(exc.value)
    assert "platform.yaml:5:7: secret 'admin.tokens[reports]': environment variable BSP_REPORTS_TOKEN is not set" \
        in text, text
    assert "export BSP_REPORTS_TOKEN before bsp run" in text, text
    dep = load_deployment(_deployment(tmp_path, "  tokens:\n"
                                                "    - {name: reports, file: keys/reports.token, roles: [snapshot]}\n"))
    with pytest.raises(runopts.OpsConfigError) as exc:
        runopts.admin_options(None, None, None, None, None, None, dep)
    text = str(exc.value)
    assert "cannot read" in text and "create it with `bsp admin token" in text, text
    dep = load_deployment(_deployment(tmp_path, "  token: {env: BSP_ADMIN_TOKEN}\n"))
    with pytest.raises(runopts.OpsConfigError, match="export BSP_ADMIN_TOKEN before bsp run"):
        runopts.admin_options(None, None, None, None, None, None, dep)


def test_a_token_file_of_the_deployment_file_readable_by_others_is_warned_of(tmp_path, monkeypatch, caplog) -> None:
    # --admin-token-file warned of a token file of mode 0644; admin.tokens / admin.token files did not
    monkeypatch.delenv("BSP_ADMIN_TOKEN", raising=False)
    (tmp_path / "prom.token").write_text(SECRETS["prom"] + "\n")
    (tmp_path / "admin.token").write_text(LEGACY + "\n")
    os.chmod(tmp_path / "prom.token", 0o644)
    os.chmod(tmp_path / "admin.token", 0o640)
    dep = load_deployment(_deployment(tmp_path, "  token: {file: admin.token}\n  tokens:\n"
                                                "    - {name: prometheus, file: prom.token, roles: [monitor]}\n"))
    caplog.set_level(logging.WARNING, "bsp.admin")
    runopts.admin_options(None, None, None, None, None, None, dep)
    lines = [r.getMessage() for r in caplog.records if "readable by group/others" in r.getMessage()]
    assert any(f"admin.tokens[prometheus] ({tmp_path / 'prom.token'}) is readable by group/others (mode 0644)" in line
               and f"chmod 600 {tmp_path / 'prom.token'}" in line for line in lines), lines
    assert any(f"admin.token ({tmp_path / 'admin.token'}) is readable by group/others (mode 0640)" in line
               for line in lines), lines
    assert not any(SECRETS["prom"] in line or LEGACY in line for line in lines)
    caplog.clear()
    os.chmod(tmp_path / "prom.token", 0o600)
    os.chmod(tmp_path / "admin.token", 0o600)
    runopts.admin_options(None, None, None, None, None, None, dep)
    assert "readable by group/others" not in caplog.text


def test_inline_tokens_and_bad_entries_are_refused_with_their_place(tmp_path) -> None:
    from engine.deploy import DeploymentError

    with pytest.raises(DeploymentError) as exc:
        load_deployment(_deployment(tmp_path, "  tokens:\n"
                                              "    - {name: p, token: abcdefabcdefabcdefabc, roles: [monitor]}\n"
                                              "    - {name: q, file: q.token, roles: [root]}\n"))
    text = str(exc.value)
    assert "platform.yaml:5:" in text and "admin.tokens[0].token: inline token values are refused" in text, text
    assert "platform.yaml:6:" in text and "admin.tokens[1].roles[0]: expected one of monitor, read, raw, operate, " \
                                          "snapshot, got 'root'" in text, text
    with pytest.raises(DeploymentError) as exc:
        load_deployment(_deployment(tmp_path, "  tokens:\n"
                                              "    - {name: p, file: a, roles: [monitor]}\n"
                                              "    - {name: p, env: B, roles: [read]}\n"
                                              "    - {name: r, roles: [read]}\n"))
    text = str(exc.value)
    assert "platform.yaml:6:14: admin.tokens[1].name: the name 'p' is taken by admin.tokens[0]" in text, text
    assert "admin.tokens[2]: neither file nor env given" in text, text


def test_the_single_token_setup_is_one_token_named_admin_with_every_role(tmp_path, monkeypatch) -> None:
    (tmp_path / "admin.token").write_text(LEGACY + "\n")
    monkeypatch.delenv("BSP_ADMIN_TOKEN", raising=False)
    dep = load_deployment(_deployment(tmp_path, "  token: {file: admin.token}\n"))
    opts = runopts.admin_options(None, None, None, None, None, None, dep)
    assert opts.token == LEGACY and opts.tokens == ()
    auth = TokenAuth(opts.token or None, tokens=opts.tokens)
    assert [(t.name, t.roles) for t in auth.tokens] == [("admin", ALL_ROLES)]


def test_a_reload_reads_admin_tokens_again_so_they_warn_of_no_restart(tmp_path, monkeypatch) -> None:
    # admin.tokens / admin.token and their files are read again by a reload (engine/ops/admintokens.py,
    # tests/ops/test_ops_admin_token_reload.py): no "takes effect at the next restart" warning for them
    from engine.ops.live import restart_warning

    (tmp_path / "prom.token").write_text(SECRETS["prom"] + "\n")
    body = "  tokens:\n    - {name: prometheus, file: prom.token, roles: [%s]}\n"
    started = load_deployment(_deployment(tmp_path, body % "monitor")).restart_settings()
    now = load_deployment(_deployment(tmp_path, body % "monitor, operate")).restart_settings()
    assert restart_warning(started, now, "platform.yaml") == []
    (tmp_path / "prom.token").write_text(SECRETS["dash"] + "\n")          # the token rotated in its file
    now = load_deployment(_deployment(tmp_path, body % "monitor")).restart_settings()
    assert restart_warning(started, now, "platform.yaml") == []
