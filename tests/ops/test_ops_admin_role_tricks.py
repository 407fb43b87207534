"""Attacks on the admin API's roles (docs/admin-api.md#roles) on a live engine: a monitor or read token sending
an operate, snapshot or raw request in another spelling (a trailing or doubled slash, a %-escaped letter, a
query string, HEAD, another method) is refused as the endpoint's plain spelling is, and a read token never gets a
dead letter's message.  Real engine (run_live), real admin API on 127.0.0.1 port 0, real DuckDB ledger."""
from __future__ import annotations

import httpx

from tests.ops.test_ops_admin_roles import SECRETS, _ask, _client, _engine

OPERATE = ["/reload", "/reload/", "//reload", "/%72eload", "/reload?dry_run=1", "/reload/?x=/health",
           "/ledger/snapshot", "/ledger//snapshot/", "/%6cedger/snapshot"]


async def test_a_token_without_the_role_is_refused_whatever_the_spelling(nursery, tmp_path) -> None:
    eng, url = await _engine(nursery, tmp_path)
    got = await _ask(eng.current.channels["front"].port, ["D1"])
    assert [g["code"] for g in got] == ["68"], got
    async with _client(url, SECRETS["prom"]) as prom, _client(url, SECRETS["dash"]) as dash, \
            _client(url, SECRETS["audit"]) as audit:
        for path in OPERATE:
            r = await prom.send(httpx.Request("POST", url + path, headers=prom.headers))
            assert r.status_code in (403, 404), (path, r.status_code, r.text)
            assert r.status_code != 404 or "no resource" in r.text, (path, r.text)
        # HEAD is GET without a body: it needs GET's role; other methods on an operate path: 405 at most
        for method in ("HEAD", "GET", "OPTIONS", "PUT", "DELETE", "PATCH"):
            r = await prom.request(method, "/reload")
            assert r.status_code in (403, 405), (method, r.status_code)
        r = await prom.head("/deals")
        assert r.status_code == 403, r.status_code
        [letter] = (await dash.get("/dead-letters")).json()["dead_letters"]
        assert "raw" not in letter and "raw_base64" not in letter, letter
        lid = letter["id"]
        for path in (f"/dead-letters/{lid}", f"/dead-letters/{lid}/", f"//dead-letters/{lid}",
                     f"/dead-letters/{lid}?raw=1", f"/%64ead-letters/{lid}"):
            r = await dash.send(httpx.Request("GET", url + path, headers=dash.headers))
            assert r.status_code in (200, 404) and r.json().get("raw_base64") is None, (path, r.text)
            assert r.status_code == 404 or "raw_withheld" in r.json(), (path, r.text)
        assert (await audit.get(f"/dead-letters/{lid}")).json()["raw_base64"]
        # the list never carries a message, whoever asks
        listed = (await audit.get("/dead-letters")).json()["dead_letters"]
        assert all("raw_base64" not in d and "raw" not in d for d in listed), listed
        # OpenAPI: a schema, no data
        assert lid not in (await prom.get("/openapi.json")).text
