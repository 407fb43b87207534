"""`bsp run --watch` reloads when a secret file the deployment names is rewritten in place (a bearer token,
a key or a password file rotated at the same path), as SIGHUP would: the channel reading it is rebuilt and
the next request carries the new secret.  Before, --watch watched route files, copybooks, tables and
certificates only, so a rotated secret went unread until someone sent SIGHUP."""
from __future__ import annotations

import functools
from pathlib import Path

import trio

from engine.ops.watch import _targets, watch_and_reload
from opskit import live
from test_ops_reload_secret_file import Partner, ask

ROUTE = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
channel partner = http call {
    url     = "http://127.0.0.1:%(port)d/pay"
    timeout = 10s
}
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY" }
    call p = partner as Req reply Req { ref = msg.ref }
    reply Req { ref = msg.ref  status = p.status }
}
"""


async def test_watch_reloads_when_a_secret_file_of_the_deployment_is_rewritten(tmp_path: Path) -> None:
    partner = Partner()
    secrets = tmp_path / "secrets"            # a folder of its own, as /run/secrets: nothing else watched there
    secrets.mkdir()
    token = secrets / "partner.token"
    token.write_text("TOKEN-ONE-4f1c9e\n")
    route = tmp_path / "routes" / "r.route"
    route.parent.mkdir()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, partner.handler, 0, host="127.0.0.1"))
        route.write_text(ROUTE % {"port": listeners[0].socket.getsockname()[1]})
        overrides = {"partner": {"auth_bearer_file": str(token)}}      # named by platform.yaml channels:
        async with live([route], tmp_path / "l.duckdb", overrides=overrides) as eng:
            assert token.resolve() in _targets(eng)[0]
            await nursery.start(watch_and_reload, eng, None, 0.05)
            front = eng.channels["front"].port
            with trio.fail_after(30):
                assert (await ask(front, "A1"))["status"] == "OK"
            token.write_text("TOKEN-TWO-77aa01\n")                     # rotated in place
            with trio.fail_after(10):
                while not eng.history:             # the reload's entry, written once it is done
                    await trio.sleep(0.02)
            last = eng.history[-1]
            assert last["source"] == "watch" and last["ok"], last
            with trio.fail_after(30):
                assert (await ask(front, "A2"))["status"] == "OK"
        listeners[0].socket.close()
        nursery.cancel_scope.cancel()
    assert partner.auth == ["Bearer TOKEN-ONE-4f1c9e", "Bearer TOKEN-TWO-77aa01"]


async def test_watch_reloads_when_an_admin_token_file_is_rewritten(nursery, tmp_path: Path) -> None:
    from test_ops_admin_token_reload import SECRET, _engine, _get
    eng, url = await _engine(nursery, tmp_path)
    assert (tmp_path / "prom.token").resolve() in _targets(eng)[0]
    await nursery.start(watch_and_reload, eng, None, 0.05)
    assert await _get(url, "prom") == 200
    before = len(eng.history)
    (tmp_path / "prom.token").write_text(SECRET["prom2"] + "\n")       # rotated in place, still 0600
    with trio.fail_after(10):
        while len(eng.history) == before:
            await trio.sleep(0.02)
    assert eng.history[-1]["source"] == "watch" and eng.history[-1]["ok"], eng.history[-1]
    assert await _get(url, "prom") == 401          # the old token is refused at once
    assert await _get(url, "prom2") == 200
    eng.drain()


async def test_watch_reloads_when_the_deployment_file_changes(nursery, tmp_path: Path) -> None:
    """platform.yaml itself: a channel override, a route added, a token revoked there is read by a reload;
    --watch did not watch the file (only what it names), so an edit waited for SIGHUP."""
    from test_ops_admin_token_reload import START, _engine, _get, _yaml
    eng, url = await _engine(nursery, tmp_path)
    assert (tmp_path / "platform.yaml").resolve() in _targets(eng)[0]
    await nursery.start(watch_and_reload, eng, None, 0.05)
    assert await _get(url, "gone", "/deals?limit=1") == 200
    before = len(eng.history)
    _yaml(tmp_path, START[:3])                                   # the token "gone" revoked in the file
    with trio.fail_after(10):
        while len(eng.history) == before:
            await trio.sleep(0.02)
    assert eng.history[-1]["source"] == "watch" and eng.history[-1]["ok"], eng.history[-1]
    assert await _get(url, "gone", "/deals?limit=1") == 401
    eng.drain()
