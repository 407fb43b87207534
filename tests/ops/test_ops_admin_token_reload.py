"""Admin tokens rotated, added, revoked and re-roled by a reload, without a restart (engine/ops/admintokens.py):
an added token works after the reload, a removed or rewritten one is refused (401) at once, a roles change
takes effect; a new set that cannot be used (a file missing, two tokens alike, a new token's file readable by
group/others) refuses the reload as a whole, naming the token and its file, and the set in force stays.  Token
text never reaches the log nor an answer.

Real engine (run_live) from a real platform.yaml, real token files (0600) in tmp_path, the admin API on
127.0.0.1 port 0, reloads through POST /reload and the path SIGHUP takes (LiveEngine.reload, source signal)."""
from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import httpx
import trio

from engine.commands.run import _expand
from engine.deploy import load_deployment
from engine.ops import runopts
from engine.ops.serve import OpsOptions, run_live
from engine.registry import default_registry
from opskit import ECHO, compile_file

SECRET = {n: f"{n}-token-text-" + "k" * 24 for n in ("ops", "prom", "dash", "gone", "bob", "prom2", "eve")}


def _token(tmp_path: Path, file: str, name: str, mode: int = 0o600) -> None:
    p = tmp_path / file
    p.write_text(SECRET[name] + "\n")
    p.chmod(mode)


def _yaml(tmp_path: Path, tokens: list[str]) -> Path:
    yaml = tmp_path / "platform.yaml"
    yaml.write_text("version: 1\nroutes: [r.route]\nledger:\n  path: l.duckdb\nadmin:\n  listen: \"127.0.0.1:0\"\n"
                    "  tokens:\n" + "".join(f"    - {t}\n" for t in tokens))
    return yaml


START = ["{name: ops, file: ops.token, roles: [operate, read, monitor]}",
         "{name: prom, file: prom.token, roles: [monitor]}",
         "{name: dash, file: dash.token, roles: [monitor]}",
         "{name: gone, file: gone.token, roles: [read]}"]


async def _engine(nursery, tmp_path: Path, named: list[str] | None = None, deployment: bool = True):
    (tmp_path / "r.route").write_text(ECHO % "x")
    for name in ("ops", "prom", "dash", "gone"):
        _token(tmp_path, f"{name}.token", name)
    yaml = _yaml(tmp_path, START)
    dep = load_deployment(yaml)
    opts = runopts.admin_options(None, None, None, None, None, None, dep, named)
    registry = default_registry()
    box: list = []
    ready = trio.Event()
    nursery.start_soon(partial(
        run_live, compile_file(tmp_path / "r.route", registry), registry, ledger_path=tmp_path / "l.duckdb",
        load=runopts.loader([yaml], yaml, None, _expand), overrides=dep.channel_overrides, grace=2.0,
        ops=OpsOptions(admin=opts, hooks=[lambda e: (box.append(e), ready.set())])))
    with trio.fail_after(30):                        # a guard against a hang, not a timing
        await ready.wait()
    return box[0], f"http://127.0.0.1:{box[0].admin_port}"


async def _get(url: str, name: str, path: str = "/status") -> int:
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {SECRET[name]}"},
                                 timeout=30) as client:
        return (await client.get(path)).status_code


async def _reload(url: str, name: str = "ops") -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {SECRET[name]}"},
                                 timeout=60) as client:
        return await client.post("/reload")


async def test_a_reload_rotates_adds_revokes_and_re_roles_admin_tokens(nursery, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    eng, url = await _engine(nursery, tmp_path)
    assert await _get(url, "prom") == 200 and await _get(url, "gone", "/deals") == 200
    assert await _get(url, "dash", "/deals") == 403 and await _get(url, "bob") == 401

    # prom's file rewritten (rotated), dash given read, gone removed, bob added: one reload
    _token(tmp_path, "prom.token", "prom2")
    _token(tmp_path, "bob.token", "bob")
    _yaml(tmp_path, [START[0], START[1], "{name: dash, file: dash.token, roles: [monitor, read]}",
                     "{name: bob, file: bob.token, roles: [read]}"])
    r = await _reload(url)
    assert r.status_code == 200, r.text
    plan = r.json()["plan"]
    assert "tokens" in plan["admin API"]["changed"], plan
    assert plan["why"]["admin API"]["tokens"].startswith(
        "added bob; removed gone; changed prom (token), dash (roles: monitor -> monitor, read)"), plan
    assert "warnings" not in r.json(), r.json()          # no "takes effect at the next restart" any more

    assert await _get(url, "prom") == 401                # the old text of a rotated token: refused at once
    assert await _get(url, "prom2") == 200
    assert await _get(url, "gone", "/deals") == 401      # revoked
    assert await _get(url, "bob", "/deals") == 200       # added
    assert await _get(url, "dash", "/deals") == 200      # its new role
    assert await _get(url, "ops") == 200

    lines = [rec.getMessage() for rec in caplog.records if "admin API tokens" in rec.getMessage()]
    assert lines == ["reload: admin API tokens: added bob; removed gone; changed prom (token), dash (roles: "
                     "monitor -> monitor, read)"], lines
    assert not any(s in caplog.text for s in SECRET.values())

    # the token a reload request came with, removed by that very reload: the request it is in finishes
    # (it was let in with the old set), the next one is refused
    _yaml(tmp_path, [START[1],
                     "{name: dash, file: dash.token, roles: [monitor, read, operate]}"])
    r = await _reload(url, "ops")
    assert r.status_code == 200, r.text
    assert await _get(url, "ops") == 401
    assert (await _reload(url, "dash")).status_code == 200      # nothing changed: no line, no "tokens" in the plan


async def test_a_reload_with_an_unusable_token_set_is_refused_and_the_old_set_stays(nursery, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    eng, url = await _engine(nursery, tmp_path)
    version = eng.current.version

    async def refused(*needles: str) -> None:
        r = await _reload(url)
        assert r.status_code == 422, r.text
        text = "\n".join(r.json()["diagnostics"])
        for needle in needles:
            assert needle in text, text
        assert "the admin tokens in force are kept" in text, text
        assert not any(s in r.text or s in caplog.text for s in SECRET.values())
        assert eng.current.version == version
        # the old set in force, the new one not
        assert await _get(url, "prom") == 200 and await _get(url, "gone", "/deals") == 200
        assert await _get(url, "dash", "/deals") == 403 and await _get(url, "bob") == 401

    # a token added whose file is missing: named with its file
    _yaml(tmp_path, START + ["{name: bob, file: bob.token, roles: [read]}"])
    await refused("admin.tokens[bob]", str(tmp_path / "bob.token"))

    # two tokens alike: both named, never the text
    _token(tmp_path, "bob.token", "gone")
    await refused("admin tokens 'gone' and 'bob' are the same token")

    # a token added whose file group/others can read
    _token(tmp_path, "bob.token", "bob", mode=0o644)
    await refused("token 'bob'", f"its file {tmp_path / 'bob.token'} is readable by group/others (mode 0644)",
                  f"chmod 600 {tmp_path / 'bob.token'}")

    # a rotated token's file (rewritten, also open to others) and a roles change in the same reload: nothing of it
    (tmp_path / "bob.token").chmod(0o600)
    _token(tmp_path, "prom.token", "prom2", mode=0o640)
    _yaml(tmp_path, [START[0], START[1], "{name: dash, file: dash.token, roles: [monitor, read]}", START[3],
                     "{name: bob, file: bob.token, roles: [read]}"])
    await refused("token 'prom'", "mode 0640")
    assert await _get(url, "prom2") == 401

    # fixed: the whole set comes in
    (tmp_path / "prom.token").chmod(0o600)
    r = await _reload(url)
    assert r.status_code == 200, r.text
    assert await _get(url, "prom2") == 200 and await _get(url, "bob", "/deals") == 200
    assert await _get(url, "dash", "/deals") == 200 and await _get(url, "prom") == 401


async def test_a_named_token_of_the_command_line_is_read_again_from_its_file(nursery, tmp_path) -> None:
    # --admin-named-token NAME:ROLES:FILE (replacing admin.tokens): its file rotated, a reload takes it
    _token(tmp_path, "cli.token", "eve")
    eng, url = await _engine(nursery, tmp_path, named=[f"eve:operate,monitor:{tmp_path / 'cli.token'}"])
    assert await _get(url, "eve") == 200 and await _get(url, "ops") == 401
    _token(tmp_path, "cli.token", "bob")
    result = await eng.reload(dry_run=False, source="signal")     # what SIGHUP runs (engine/ops/watch.py)
    assert result.ok, result.diagnostics
    assert await _get(url, "eve") == 401 and await _get(url, "bob") == 200
    (tmp_path / "cli.token").unlink()                 # gone: refused, naming the option and the file
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {SECRET['bob']}"},
                                 timeout=60) as client:
        r = await client.post("/reload")
    assert r.status_code == 422, r.text
    text = "\n".join(r.json()["diagnostics"])
    assert "--admin-named-token eve" in text and str(tmp_path / "cli.token") in text, text
    assert await _get(url, "bob") == 200
