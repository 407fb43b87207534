"""The admin API wired to a live engine: status, reload (dry run, ok, failed), deals, metrics, SIGHUP."""
from __future__ import annotations

import base64
import os
import re
import signal
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import httpx
import orjson
import trio

from engine.ops.serve import AdminOptions, OpsOptions, run_live
from engine.registry import default_registry
from formats.framing import LengthPrefixFramer
from opskit import ECHO, compile_file

TOKEN = "ops-test-token-" + "z" * 20


async def _serve(route: Path, ledger: Path, nursery: trio.Nursery, **ops_kw) -> tuple:
    registry = default_registry()
    program = compile_file(route, registry)
    ready = trio.Event()
    box: list = []

    def hook(engine) -> None:
        box.append(engine)
        ready.set()

    ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=TOKEN), hooks=[hook], **ops_kw)
    nursery.start_soon(partial(run_live, program, registry, ledger_path=ledger, load=lambda: ([route], {}),
                               grace=2.0, ops=ops))
    await ready.wait()
    engine = box[0]
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.admin_port}",
                               headers={"authorization": f"Bearer {TOKEN}"}, timeout=60)   # httpx's 5 s: a hang guard
    return engine, client


async def _ask(stream: trio.SocketStream, refs: list[str]) -> list[dict]:
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    await stream.send_all(b"".join(tx.frame(orjson.dumps({"ref": r})) for r in refs))
    out: list[bytes] = []
    while len(out) < len(refs):
        data = await stream.receive_some(65536)
        assert data
        out.extend(rx.feed(data))
    return [orjson.loads(f) for f in out]


async def test_admin_api_drives_the_live_engine(nursery, tmp_path: Path) -> None:
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    engine, client = await _serve(route, tmp_path / "l.duckdb", nursery)
    async with client:
        port = engine.current.channels["front"].port
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        replies = await _ask(stream, [f"r{i}" for i in range(30)])
        assert {r["tag"] for r in replies} == {"A"}

        r = await client.get("/status")
        assert r.status_code == 200, r.text
        st = r.json()
        assert st["generation"] == 1 and st["config_version"] == engine.current.version
        assert st["channels"]["front"]["connections"] == 1
        assert st["channels"]["front"]["frames_in"] == 30
        assert st["routes"]["echo"]["received"] == 30 and st["routes"]["echo"]["committed"] == 30

        # dry run: a plan, nothing changes
        route.write_text(ECHO % "B")
        r = await client.post("/reload", params={"dry_run": "1"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["dry_run"] and body["plan"]["routes"]["changed"] == ["echo"]
        assert body["plan"]["channels"]["kept"] == ["front"]
        assert (await _ask(stream, ["d1"]))[0]["tag"] == "A"
        assert engine.current.number == 1

        # a real reload: same connection, new mapping
        r = await client.post("/reload")
        assert r.status_code == 200, r.text
        assert (await _ask(stream, ["n1"]))[0]["tag"] == "B"
        assert (await client.get("/status")).json()["generation"] == 2

        # a broken file: 422 with file:line:col, the running configuration answers on
        route.write_text(ECHO.replace("reply Req {", "reply Nope {") % "C")
        r = await client.post("/reload")
        assert r.status_code == 422
        problem = r.json()
        assert any(d.startswith(f"{route}:") and "Nope" in d for d in problem["diagnostics"]), problem
        assert (await _ask(stream, ["k1"]))[0]["tag"] == "B"

        # SIGHUP reloads from the files
        route.write_text(ECHO % "H")
        os.kill(os.getpid(), signal.SIGHUP)
        with trio.fail_after(60):
            while engine.current.number < 3:
                await trio.sleep(0.01)
        assert (await _ask(stream, ["h1"]))[0]["tag"] == "H"

        # deals come from the ledger the engine holds open
        r = await client.get("/deals", params={"reference": "n1"})
        assert r.status_code == 200, r.text
        (deal,) = r.json()["deals"]
        assert deal["route"] == "echo" and deal["config_version"] == (await client.get("/status")).json()["reloads"][1]["version"]
        r = await client.get("/dead-letters")
        assert r.status_code == 200 and r.json()["count"] == 0
        # times in the status are ISO 8601 UTC, as everywhere else in the API
        status = (await client.get("/status")).json()
        for t in [x["at"] for x in status["reloads"]] + [status["generation_started_at"]]:
            assert isinstance(t, str) and datetime.fromisoformat(t).utcoffset() == timedelta(0), t
            assert abs(datetime.fromisoformat(t) - datetime.now(timezone.utc)) < timedelta(minutes=5)

        text = (await client.get("/metrics")).text
        assert 'bsp_route_received_total{route="echo"} 34.0' in text
        assert 'bsp_route_outcomes_total{outcome="committed",route="echo"} 34.0' in text
        assert 'bsp_route_latency_seconds_count{route="echo"} 34.0' in text
        assert 'bsp_channel_received_total{channel="front"} 34.0' in text
        assert 'bsp_reloads_total{result="ok",source="admin"} 1.0' in text
        assert 'bsp_reloads_total{result="failed",source="admin"} 1.0' in text
        assert 'bsp_reloads_total{result="ok",source="signal"} 1.0' in text
        assert f'bsp_config_info{{version="{engine.current.version}"}} 1.0' in text
        batches = re.search(r"^bsp_ledger_batch_size_count (\S+)$", text, re.M)
        assert batches and float(batches.group(1)) >= 1
        assert re.search(r"^bsp_ledger_commit_seconds_count [1-9]", text, re.M)
        assert 'bsp_route_in_flight{route="echo"} 0.0' in text

        assert (await client.get("/status", headers={"authorization": "Bearer wrong-token-xxxxxxxxxx"})).status_code == 401
        await stream.aclose()
    engine.drain()


async def test_bsp_deals_live_asks_the_engine_that_holds_the_ledger(nursery, tmp_path: Path) -> None:
    import sys

    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    ledger = tmp_path / "l.duckdb"
    engine, client = await _serve(route, ledger, nursery)
    async with client:
        stream = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
        await _ask(stream, [f"L{i}" for i in range(5)])
        await stream.send_all(LengthPrefixFramer(2).frame(b"{not json"))      # a dead letter
        with trio.fail_after(60):
            while not (await client.get("/dead-letters")).json()["count"]:
                await trio.sleep(0.02)
        await stream.aclose()
    env = {**os.environ, "BSP_ADMIN_TOKEN": TOKEN, "BSP_ADMIN_URL": f"http://127.0.0.1:{engine.admin_port}",
           "COLUMNS": "200"}

    def bsp(*args: str, command: tuple[str, ...] = ("deals",)):
        import subprocess
        return subprocess.run([sys.executable, "-m", "engine.cli", *command, *args], capture_output=True,
                              text=True, env=env, timeout=60)

    # another process (the engine is this one) finds the file locked, and is told about --live
    r = await trio.to_thread.run_sync(bsp, "--ledger", str(ledger))
    assert r.returncode == 2 and "locked by another process" in r.stderr, r.stderr
    assert "hint: add --live to ask the running engine through its admin API" in r.stderr
    r = await trio.to_thread.run_sync(bsp, "--live", "--json", "--since", "1h")
    assert r.returncode == 0, r.stderr
    rows = [orjson.loads(line) for line in r.stdout.splitlines() if b'"MALFORMED"' not in line.encode()]
    assert sorted(row["reference"] for row in rows) == [f"L{i}" for i in range(5)]
    assert {row["amount"] for row in rows} == {"1.00"} and {row["status"] for row in rows} == {"committed"}
    r = await trio.to_thread.run_sync(bsp, "--live", "--json", "--currency", "cny")    # the engine's GET /deals
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 5, r.stderr
    r = await trio.to_thread.run_sync(bsp, "--live", "--json", "--currency", "CNY", "--party", "L3")
    assert r.returncode == 0 and r.stdout == "", r.stderr       # the echo route's deals name no party
    r = await trio.to_thread.run_sync(bsp, "--live", "--ref", "L3")
    assert r.returncode == 0 and "deals in the engine at http://127.0.0.1:" in r.stdout and "L3" in r.stdout
    assert "L2" not in r.stdout
    # one deal's story, by an id prefix
    one = rows[0]
    one_deal = one["deal_id"]
    r = await trio.to_thread.run_sync(partial(bsp, command=("deals", "show")), one["deal_id"][:30], "--live")
    assert r.returncode == 0, r.stderr
    assert f"deal {one['deal_id']}  ECHO  committed" in r.stdout and f"reference {one['reference']}" in r.stdout
    r = await trio.to_thread.run_sync(partial(bsp, command=("deals", "show")), one["deal_id"], "--live", "--json")
    story = orjson.loads(r.stdout)
    assert story["amount"] == "1.00" and story["config"]["version"] == engine.current.version
    assert story["steps"] == [] and story["calls"] == [] and story["config"]["files"] == [str(route)]
    r = await trio.to_thread.run_sync(partial(bsp, command=("deals", "show")), "0123456789abcdef", "--live")
    assert r.returncode == 1 and "has no deal '0123456789abcdef'" in r.stderr
    r = await trio.to_thread.run_sync(partial(bsp, command=("deals", "show")), "0123", "--live")
    assert r.returncode == 2 and "too short" in r.stderr
    r = await trio.to_thread.run_sync(bsp, "--live", "--status", "failed", "--limit", "0")
    assert r.returncode == 0 and "no deals match these filters" in r.stdout
    assert "at most 1,000" not in r.stderr        # pages through the API (test_ops_live_paging.py), no cap to warn of

    # dead letters the same way
    dead = partial(bsp, command=("dead", "list"))
    r = await trio.to_thread.run_sync(dead, "--ledger", str(ledger))
    assert r.returncode == 2 and "hint: add --live" in r.stderr, r.stderr
    r = await trio.to_thread.run_sync(dead, "--live", "--json", "--status", "new", "--reason", "JSON")
    assert r.returncode == 0, r.stderr
    (letter,) = [orjson.loads(line) for line in r.stdout.splitlines()]
    assert letter["channel"] == "front" and letter["status"] == "new" and letter["at"].endswith("Z")
    show = partial(bsp, command=("dead", "show"))                       # one, its message withheld
    r = await trio.to_thread.run_sync(show, letter["id"], "--live", "--json")
    assert r.returncode == 0, r.stderr
    one = orjson.loads(r.stdout)
    assert one["id"] == letter["id"] and one["raw"] is None and one["at"].endswith("Z")
    assert one["raw_withheld"].startswith("9 bytes, not shown") and "{not json" not in r.stdout
    r = await trio.to_thread.run_sync(show, letter["id"], "--live", "--json", "--reveal")   # with it, as stored
    assert r.returncode == 0 and bytes.fromhex(orjson.loads(r.stdout)["raw"]) == b"{not json", r.stderr
    r = await trio.to_thread.run_sync(show, letter["id"], "--live", "--reveal")
    assert r.returncode == 0 and "9 bytes" in r.stdout and "{not json" in r.stdout, r.stderr
    # each reveal is in the engine's audit chain (PCI DSS 10.2): the engine sent the message stored in clear
    # (GET), and the command showed it (POST .../reveals), who the token's name, never the bytes
    from engine.ops.ledger_reads import read_in_process

    def revealed(path: Path, con: object, ident: str) -> list[dict]:
        return [orjson.loads(d) for (d,) in con.execute(
            "SELECT detail FROM deal_events WHERE deal_id = ? AND to_state = 'revealed' ORDER BY seq",
            [ident]).fetchall()]

    got = await read_in_process(revealed, ledger, ident=letter["id"])
    shown = [d for d in got if d.get("request") is None]
    sent = [d for d in got if d.get("request") is not None]
    assert len(shown) == 2 and len(sent) == 3 and all(d["via"] == "admin API" for d in got), got
    assert all(d["by"] == "admin" and d["token"] == "admin" and d["fields"] == ["message"] for d in got)
    assert all(d["what"] == "dead letter" and d["peer"] == "127.0.0.1" for d in got)
    assert "not json" not in orjson.dumps(got).decode()
    # a deal the same way: `bsp deals show --live --reveal` has the engine record it, then decrypts here
    env["BSP_FIELD_KEYS"] = "k1:" + base64.b64encode(bytes(32)).decode()
    r = await trio.to_thread.run_sync(partial(bsp, command=("deals", "show")), one_deal, "--live", "--reveal",
                                      "--by", "alice")
    del env["BSP_FIELD_KEYS"]
    assert r.returncode == 0 and f"deal {one_deal}" in r.stdout, r.stderr
    (d,) = await read_in_process(revealed, ledger, ident=one_deal)
    assert d == {"what": "deal", "fields": [], "by": "admin", "via": "admin API", "peer": "127.0.0.1",
                 "token": "admin", "stated_by": "alice"}
    env_url = env["BSP_ADMIN_URL"]
    async with httpx.AsyncClient(base_url=env_url, headers={"authorization": f"Bearer {TOKEN}"}) as api:
        bad = await api.post(f"/deals/{one_deal}/reveals", json={"fields": "request.card"})
        assert bad.status_code == 400 and bad.json()["field"] == "fields"
        bad = await api.post(f"/deals/{one_deal}/reveals", json={"fields": [], "value": "4111111111111111"})
        assert bad.status_code == 400 and bad.json()["field"] == "value"
        missing = await api.post(f"/dead-letters/{'f' * 32}/reveals", json={"fields": ["message"]})
        assert missing.status_code == 404
    assert len(await read_in_process(revealed, ledger, ident=one_deal)) == 1       # nothing more recorded
    r = await trio.to_thread.run_sync(show, "f" * 32, "--live")
    assert r.returncode == 1 and f"no dead letter '{'f' * 32}' in the engine at http://127.0.0.1:" in r.stderr
    # the table as the ledger file gives it: a line naming where from, the column names, the rows
    r = await trio.to_thread.run_sync(dead, "--live")
    assert r.returncode == 0, r.stderr
    title, head, row = r.stdout.splitlines()
    # without --status or --all: what waits, and the title says so (--all lists every status)
    assert title == f"dead letters waiting (new or retrying; --all lists every status) in the engine at " \
                    f"{env['BSP_ADMIN_URL']}"
    assert head.split() == ["id", "at", "(UTC)", "status", "channel", "route", "kind", "code", "reason"]
    assert row.startswith(letter["id"]) and head.index("channel") == row.index("front  ")
    # --code asks the engine for that code (GET /dead-letters?code=), as --kind for a kind
    code = row.split()[head.split().index("code")]          # "at (UTC)" two words over a date and a time
    assert code.isdigit(), row
    r = await trio.to_thread.run_sync(dead, "--live", "--code", code, "--json")
    assert r.returncode == 0 and [orjson.loads(x)["id"] for x in r.stdout.splitlines()] == [letter["id"]], r.stderr
    r = await trio.to_thread.run_sync(dead, "--live", "--code", "no-such-code")
    assert r.returncode == 0 and r.stdout.splitlines()[1:] == ["no dead letters match these filters"], r.stdout
    r = await trio.to_thread.run_sync(dead, "--live", "--status", "retried")
    assert r.returncode == 0 and r.stdout.splitlines() == [
        f"dead letters in the engine at {env['BSP_ADMIN_URL']}", "no dead letters match these filters"]
    r = await trio.to_thread.run_sync(dead, "--live", "--since", "2026-01-02", "--until", "2026-01-01")
    # a range backwards is a usage error before anything is asked, as without --live (the engine's 400 says the
    # same to another client: tests/engine/test_admin.py)
    assert r.returncode == 2 and "is not before --until 2026-01-01" in " ".join(r.stderr.replace("│", " ").split())


# ECHO that rejects X1 (a dead letter) and answers errors with their code
STRICT = (ECHO % "S").replace("    reply Req {", """    validate {
        msg.ref != "X1" else reject "13" "X1 is not served yet"
    }
    reply Req {""").rstrip().removesuffix("}") + """    on error reply Req { ref = msg.ref  code = error.code }
}
"""


async def test_bsp_dead_retry_admin_reinjects_through_the_running_configuration(nursery, tmp_path: Path) -> None:
    import subprocess
    import sys

    route = tmp_path / "echo.route"
    route.write_text(STRICT)
    ledger = tmp_path / "l.duckdb"
    engine, client = await _serve(route, ledger, nursery)
    async with client:
        stream = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
        with trio.fail_after(60):
            assert (await _ask(stream, ["X1"]))[0] == {"ref": "X1", "code": "13"}     # rejected: a dead letter
        await stream.aclose()
        with trio.fail_after(60):
            while not (letters := (await client.get("/dead-letters")).json()["dead_letters"]):
                await trio.sleep(0.02)
        (letter,) = letters
        url = f"http://127.0.0.1:{engine.admin_port}"
        env = {**os.environ, "BSP_ADMIN_TOKEN": TOKEN}

        def bsp(*args: str):
            return subprocess.run([sys.executable, "-m", "engine.cli", "dead", "retry", *args], capture_output=True,
                                  text=True, env=env, timeout=60)

        # before the fix, refused again: the new deal's id and reason (as the ledger has them), not only "rejected"
        r = await trio.to_thread.run_sync(bsp, letter["id"], "--live", "--url", url)
        assert r.returncode == 1, r.stderr
        again, first = (await client.get("/deals", params={"reference": "X1"})).json()["deals"]   # newest first
        assert first["status"] == again["status"] == "rejected" and "X1 is not served yet" in again["reason"]
        # refused again: its deal's own dead letter is where the message waits now, which the first names
        waiting = again["deal_id"]
        assert r.stdout.splitlines() == [f"{letter['id']}: NOT retried: rejected (deal {again['deal_id']}): "
                                         f"{again['reason']}; the message waits again as dead letter {waiting}"], \
            r.stdout
        route.write_text(ECHO % "A")                                        # the fix goes live
        assert (await client.post("/reload")).status_code == 200
        # the first letter is not run again, even with --again: the message waits in the other one
        r = await trio.to_thread.run_sync(bsp, letter["id"], "--live", "--url", url, "--again")
        assert r.returncode == 1 and f"retry that one (`bsp dead retry {waiting}`)" in r.stdout, r.stdout

        r = await trio.to_thread.run_sync(bsp, waiting, "no-such-letter", "--admin", url)
        assert r.returncode == 1, r.stderr
        assert f"{waiting}: retried: committed (deal " in r.stdout        # which deal the retry made
        assert (f"no-such-letter: NOT retried: no dead letter 'no-such-letter' in the engine at {url}; list them "
                "with `bsp dead list --live`") in r.stdout       # the command to type, not the endpoint
        done = (await client.get("/dead-letters", params={"status": "retried"})).json()["dead_letters"]
        assert sorted(x["id"] for x in done) == sorted([letter["id"], waiting])
        (after,) = [x for x in done if x["id"] == waiting]
        r = await client.get("/deals", params={"reference": "X1"})
        assert sorted(d["status"] for d in r.json()["deals"]) == ["committed", "rejected", "rejected"]
        (made,) = [d["deal_id"] for d in r.json()["deals"] if d["status"] == "committed"]
        # the token that asked is recorded with the outcome: the single token is the one named "admin"
        assert after["retry_outcome"] == f"committed (deal {made}) (admin API, token 'admin')"
        r = await trio.to_thread.run_sync(bsp, waiting, "--admin", url, "--token-file", "/nonexistent")
        assert r.returncode == 2 and "admin token" in r.stderr
        # --live finds the engine as `bsp dead list --live` does: $BSP_ADMIN_URL, or --url
        env["BSP_ADMIN_URL"] = url
        # (the letter is retried already: refused, naming when and the deal that retry made; this route has
        # no deal key, so a second retry would commit the exchange a second time)
        r = await trio.to_thread.run_sync(bsp, waiting, "--live")
        assert r.returncode == 1 and f"{waiting}: NOT retried: refused: status retried: already retried at " \
            in r.stdout and f"committed (deal {made}) (admin API, token 'admin'); it is not run again. add --again" in r.stdout, r.stdout
        del env["BSP_ADMIN_URL"]
        r = await trio.to_thread.run_sync(bsp, waiting, "--live", "--url", url, "--again")
        assert r.returncode == 0 and f"{waiting}: retried: committed" in r.stdout, r.stderr
        r = await client.get("/deals", params={"reference": "X1"})
        assert sorted(d["status"] for d in r.json()["deals"]) == ["committed", "committed", "rejected", "rejected"]
        r = await trio.to_thread.run_sync(bsp, letter["id"])
        said = " ".join(r.stderr.replace("│", " ").split())          # rich wraps the usage error in a box
        assert r.returncode == 2 and "--live for the running engine (its admin API at --url or $BSP_ADMIN_URL)" \
            in said, r.stderr
        r = await trio.to_thread.run_sync(bsp, letter["id"], "--live", "--routes", str(route))
        assert r.returncode == 2 and "give one" in r.stderr



async def test_bsp_dead_retry_live_by_filters(nursery, tmp_path: Path) -> None:
    """`bsp dead retry --live --status new --kind rejected --yes`: the letters `bsp dead list --live` selects,
    retried one by one in the running engine, with a summary; --dry-run first; nothing run twice."""
    import subprocess
    import sys

    route = tmp_path / "echo.route"
    route.write_text(STRICT)
    ledger = tmp_path / "l.duckdb"
    engine, client = await _serve(route, ledger, nursery)
    async with client:
        stream = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
        with trio.fail_after(60):
            assert [r.get("code") for r in await _ask(stream, ["X1", "X1", "A1"])] == ["13", "13", None]
        await stream.aclose()
        with trio.fail_after(60):
            while len((await client.get("/dead-letters")).json()["dead_letters"]) < 2:
                await trio.sleep(0.02)
        route.write_text(ECHO % "A")                                        # the fix goes live
        assert (await client.post("/reload")).status_code == 200
        url = f"http://127.0.0.1:{engine.admin_port}"
        env = {**os.environ, "BSP_ADMIN_TOKEN": TOKEN}

        def bsp(*args: str):
            return subprocess.run([sys.executable, "-m", "engine.cli", "dead", "retry", "--live", "--url", url,
                                   "--status", "new", "--kind", "rejected", *args], capture_output=True, text=True,
                                  env=env, timeout=60, stdin=subprocess.DEVNULL)

        r = await trio.to_thread.run_sync(bsp, "--dry-run")
        assert r.returncode == 0 and r.stdout.splitlines()[0] == (
            f"would retry 2 dead letter(s) in the engine at {url}, oldest first"), r.stdout + r.stderr
        assert r.stdout.splitlines()[-1] == "2 to retry, 0 already retried, 0 purged"
        r = await trio.to_thread.run_sync(bsp)
        assert r.returncode == 2 and "add --yes" in r.stderr, r.stderr
        r = await trio.to_thread.run_sync(bsp, "--yes")
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.splitlines()[-1] == ("retried 2 of 2 dead letter(s): 2 committed; 0 refused again; 0 "
                                             "skipped because already retried"), r.stdout
        r = await trio.to_thread.run_sync(bsp, "--yes")
        assert r.returncode == 0 and r.stdout.splitlines()[0] == f"no dead letter to retry in the engine at {url}"
        deals = (await client.get("/deals", params={"reference": "X1"})).json()["deals"]
        assert sorted(d["status"] for d in deals) == ["committed", "committed", "rejected", "rejected"]


async def test_dead_list_live_kind_is_filtered_by_the_engine(nursery, tmp_path: Path) -> None:
    """`bsp dead list --live --kind K` and `GET /dead-letters?kind=K`: the engine's query selects by error kind
    (as `bsp dead retry --live --kind` does); an unknown kind is a 400 / a usage error naming the kinds; the
    OpenAPI document the engine serves declares the parameter."""
    import subprocess
    import sys

    route = tmp_path / "echo.route"
    route.write_text(STRICT)
    engine, client = await _serve(route, tmp_path / "l.duckdb", nursery)
    async with client:
        stream = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
        with trio.fail_after(5):
            assert [r.get("code") for r in await _ask(stream, ["X1", "A1"])] == ["13", None]
        await stream.send_all(LengthPrefixFramer(2).frame(b"{not json"))        # malformed
        with trio.fail_after(5):
            while len((await client.get("/dead-letters")).json()["dead_letters"]) < 2:
                await trio.sleep(0.02)
        await stream.aclose()
        r = await client.get("/dead-letters", params={"kind": "malformed"})
        assert r.status_code == 200, r.text
        assert [d["error_kind"] for d in r.json()["dead_letters"]] == ["malformed"]
        r = await client.get("/dead-letters", params={"kind": "unreacheable"})
        assert r.status_code == 400 and r.json()["parameter"] == "kind", r.text
        assert "one of unreachable, timeout, lost" in r.json()["detail"]
        doc = (await client.get("/openapi.json")).json()
        (param,) = [p for p in doc["paths"]["/dead-letters"]["get"]["parameters"] if p["name"] == "kind"]
        assert param["in"] == "query" and "rejected" in param["schema"]["enum"]
        url = f"http://127.0.0.1:{engine.admin_port}"
        env = {**os.environ, "BSP_ADMIN_TOKEN": TOKEN, "COLUMNS": "300"}      # the usage error on one line

        def dead_list(*args: str):
            return subprocess.run([sys.executable, "-m", "engine.cli", "dead", "list", "--live", "--url", url, *args],
                                  capture_output=True, text=True, env=env, timeout=60)

        r = await trio.to_thread.run_sync(dead_list, "--kind", "rejected", "--json")
        assert r.returncode == 0, r.stderr
        (letter,) = [orjson.loads(line) for line in r.stdout.splitlines()]
        assert letter["error_kind"] == "rejected" and "X1 is not served yet" in letter["reason"]
        r = await trio.to_thread.run_sync(dead_list, "--kind", "unreacheable")
        assert r.returncode == 2 and "is not an error kind; use one of unreachable" in r.stderr, r.stderr


# a keyed deal whose call the counterpart refuses: failed after its call left, so its key keeps its answer
KEYED = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
channel back = tcp connect {
    address = "127.0.0.1:%d"
    framing = length4
    timeout = 10s
}
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY"  key = msg.ref }
    call post = back as Req reply Req { ref = msg.ref } expect post.status == "OK"
    reply Req { ref = msg.ref }
    on error reply Req { ref = msg.ref  code = error.code }
}
"""


async def test_a_retry_a_deal_key_answers_says_duplicate_not_no_reply(nursery, tmp_path: Path) -> None:
    # a keyed route answers a request whose key has an answer with that answer and runs nothing again: the
    # retry of its dead letter is such a repeat, and says so (it said "no reply", as if the engine had hung)
    from opskit import json_counterpart

    calls: list[str] = []
    back = await json_counterpart(nursery, lambda req: calls.append(req["ref"]) or {"status": "NO"})
    route = tmp_path / "keyed.route"
    route.write_text(KEYED % back)
    engine, client = await _serve(route, tmp_path / "l.duckdb", nursery)
    async with client:
        stream = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
        with trio.fail_after(60):
            assert (await _ask(stream, ["K1"]))[0]["ref"] == "K1"
        await stream.aclose()
        with trio.fail_after(60):
            while not (letters := (await client.get("/dead-letters")).json()["dead_letters"]):
                await trio.sleep(0.02)
        (letter,) = letters
        r = await client.post(f"/dead-letters/{letter['id']}/retry")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["ok"] is False and body["outcome"].startswith("duplicate: "), body
        assert calls == ["K1"]                       # the counterpart was not called again


async def test_dead_letters_are_listed_as_soon_as_their_deal_is_answered(nursery, tmp_path: Path) -> None:
    """A rejected deal's dead letter travels in its journal record: `GET /dead-letters` (and one letter)
    waits for the journal's load as `GET /deals` does, so an answered request's letter is listed at once
    (before, it showed up only once the loader had run: up to 0.2 s, or 10,000 rows, later)."""
    route = tmp_path / "echo.route"
    route.write_text(STRICT)
    engine, client = await _serve(route, tmp_path / "l.duckdb", nursery)
    async with client:
        jl = engine.ledger
        while not hasattr(jl, "_load_wait"):             # the journaled ledger under the observer's view
            jl = jl._ledger
        jl._load_wait = 3600.0                            # the loader loads only when asked (or at 10k rows)
        stream = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
        with trio.fail_after(60):
            assert "code" not in (await _ask(stream, ["A0"]))[0]      # served
        await client.get("/deals")                        # the load now in progress: the loader then waits long
        with trio.fail_after(60):
            assert (await _ask(stream, ["X1"]))[0] == {"ref": "X1", "code": "13"}
        await stream.aclose()
        with trio.fail_after(60):                         # a guard, not a timing: no polling
            letters = (await client.get("/dead-letters")).json()["dead_letters"]
        assert [x["route"] for x in letters] == ["echo"], letters
        with trio.fail_after(60):
            one = await client.get(f"/dead-letters/{letters[0]['id']}")
        assert one.status_code == 200, one.text
