"""POST /ledger/snapshot and the `--live` commands built on it, against a real engine over real sockets:
a consistent copy while traffic flows (every deal already answered is in it), the same report, form and
audit check as on the stopped engine's file, one snapshot at a time, the token, owner-only files."""
from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import httpx
import orjson
import trio

from engine.deal import DealRecord
from engine.fieldcrypt import Keyring
from engine.ledger import open_ledger
from engine.ops.runsettings import RunKeys
from engine.ops.serve import AdminOptions, OpsOptions, run_live
from engine.registry import default_registry
from formats.framing import LengthPrefixFramer
from opskit import ECHO, compile_file

TOKEN = "snapshot-test-token-" + "s" * 20
AUDIT_KEY = bytes(range(1, 33))
RING = Keyring("k1", {"k1": bytes(range(100, 132))})


async def _serve(route: Path, ledger: Path, nursery: trio.Nursery) -> tuple:
    """An engine as `bsp run` serves it (journal mode, audit key, field keyring, admin API); returns the
    engine, an admin client and an event set once the engine has stopped and closed its ledger."""
    registry = default_registry()
    program = compile_file(route, registry)
    ready, stopped = trio.Event(), trio.Event()
    box: list = []

    def hook(engine) -> None:
        box.append(engine)
        ready.set()

    ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=TOKEN), hooks=[hook])

    async def run() -> None:
        try:
            await run_live(program, registry, ledger_path=ledger, load=lambda: ([route], {}), grace=2.0, ops=ops,
                           keys=RunKeys(audit_key=AUDIT_KEY, keyring=RING))
        finally:
            stopped.set()

    nursery.start_soon(run)
    await ready.wait()
    engine = box[0]
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.admin_port}",
                               headers={"authorization": f"Bearer {TOKEN}"}, timeout=60)
    return engine, client, stopped


async def _ask(stream: trio.SocketStream, refs: list[str]) -> list[dict]:
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    await stream.send_all(b"".join(tx.frame(orjson.dumps({"ref": r})) for r in refs))
    out: list[bytes] = []
    while len(out) < len(refs):
        data = await stream.receive_some(65536)
        assert data
        out.extend(rx.feed(data))
    return [orjson.loads(f) for f in out]


async def _snapshot_to(client: httpx.AsyncClient, target: Path) -> httpx.Response:
    async with client.stream("POST", "/ledger/snapshot") as r:
        if r.status_code == 200:
            with target.open("wb") as f:
                async for chunk in r.aiter_bytes():
                    f.write(chunk)
        else:
            await r.aread()
    return r


def _refs(path: Path, sql: str = "SELECT reference FROM deals WHERE deal_type = 'ECHO'") -> set[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {r[0] for r in con.execute(sql).fetchall()}
    finally:
        con.close()


def _env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BSP_")}
    env.update(BSP_ADMIN_TOKEN=TOKEN, BSP_ADMIN_URL=f"http://127.0.0.1:{port}", COLUMNS="200",
               BSP_AUDIT_KEY=base64.b64encode(AUDIT_KEY).decode())
    return env


def _bsp(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=cwd)


def _leftovers(ledger: Path) -> list[str]:
    return [p.name for p in ledger.parent.iterdir() if ".snapshot-" in p.name]


async def _gone(ledger: Path) -> None:
    """The engine's copies are removed (the client may have every byte before the engine has closed its side)."""
    with trio.fail_after(10):
        while _leftovers(ledger):
            await trio.sleep(0.01)


async def test_a_snapshot_while_traffic_flows_holds_every_deal_already_answered(nursery, tmp_path: Path) -> None:
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    ledger = tmp_path / "l.duckdb"
    engine, client, stopped = await _serve(route, ledger, nursery)
    answered: list[str] = []
    traffic_done = trio.Event()

    async def traffic() -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
        try:
            for batch in range(60):
                refs = [f"T{batch:03d}-{i:02d}" for i in range(10)]
                replies = await _ask(stream, refs)
                assert sorted(r["ref"] for r in replies) == refs
                answered.extend(refs)
                await trio.sleep(0.005)
        finally:
            await stream.aclose()
            traffic_done.set()

    async with client:
        nursery.start_soon(traffic)
        snapshots = []
        with trio.fail_after(60):
            while not traffic_done.is_set():
                if len(answered) < 100 * (len(snapshots) + 1):
                    await trio.sleep(0.01)
                    continue
                before = set(answered)              # every deal answered before the request
                target = tmp_path / f"during-{len(snapshots)}.duckdb"
                r = await _snapshot_to(client, target)
                assert r.status_code == 200, r.text
                assert r.headers["content-type"] == "application/octet-stream"
                assert int(r.headers["content-length"]) == target.stat().st_size
                got = _refs(target)
                assert before <= got, sorted(before - got)[:5]          # nothing answered is missing
                assert int(r.headers["x-bsp-snapshot-deals"]) == len(got)
                snapshots.append((len(before), len(got)))
        assert len(snapshots) >= 3, snapshots
        assert len(answered) == 600
        # the engine served on while the copies were made, and removed each copy from its disk
        await _gone(ledger)
        # the CLI writes its file owner-only, refuses to overwrite it without --force
        env = _env(engine.admin_port)
        out = tmp_path / "eod.duckdb"
        res = await trio.to_thread.run_sync(_bsp, env, "ledger", "snapshot", "--live", "--out", str(out))
        assert res.returncode == 0, res.stderr
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        assert f"wrote {out}" in res.stdout and f"the engine at http://127.0.0.1:{engine.admin_port}" in res.stdout
        assert _refs(out) == set(answered)
        res = await trio.to_thread.run_sync(_bsp, env, "ledger", "snapshot", "--live", "--out", str(out))
        assert res.returncode == 2 and "the file exists" in res.stderr and "--force" in res.stderr
        res = await trio.to_thread.run_sync(_bsp, env, "ledger", "snapshot", "--live", "--out", str(out), "--force")
        assert res.returncode == 0, res.stderr
        assert [p.name for p in tmp_path.iterdir() if ".part-" in p.name] == []
    engine.drain()
    with trio.fail_after(30):
        await stopped.wait()
    assert _refs(ledger) == set(answered)          # and no message lost by the engine either


async def test_live_report_reconcile_and_audit_verify_match_the_stopped_engines_file(nursery, tmp_path: Path) -> None:
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    ledger = tmp_path / "l.duckdb"
    engine, client, stopped = await _serve(route, ledger, nursery)
    async with client:
        stream = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
        await _ask(stream, [f"R{i:03d}" for i in range(40)])
        await stream.send_all(LengthPrefixFramer(2).frame(b"{not json 4111111111111111"))    # a dead letter
        with trio.fail_after(10):
            while not (await client.get("/dead-letters")).json()["count"]:
                await trio.sleep(0.02)
        await stream.aclose()
        r = await client.post("/ledger/snapshot")
        assert r.status_code == 200
    statement = tmp_path / "stmt.csv"
    today = datetime.now(timezone.utc).date().isoformat()
    statement.write_text("reference,amount,currency,date\n" + "".join(
        f"R{i:03d},1.00,CNY,{today}\n" for i in range(39)) + f"X999,5.00,CNY,{today}\n")
    eod = tmp_path / "eod.csv"          # the mainframe's end-of-day totals: 40 echoes of 1.00, one cent short
    eod.write_text(f"date,type,currency,count,amount\n{today},ECHO,CNY,40,39.99\n")
    env = _env(engine.admin_port)
    private = tmp_path / "tmp"
    private.mkdir()
    env["TMPDIR"] = str(private)

    def commands(where: list[str], tag: str) -> dict[str, subprocess.CompletedProcess]:
        return {
            "report": _bsp(env, "report", "daily-summary", "--from", "today", "--format", "csv", *where),
            "reconcile": _bsp(env, "reconcile", "--against", str(statement), "--type", "csv", "--format", "csv",
                              "--out", str(tmp_path / f"rec-{tag}.csv"), "-q", *where),
            "audit": _bsp(env, "audit", "verify", *where),
            "totals": _bsp(env, "reconcile", "--against", str(eod), "--type", "totals", "--format", "json",
                           "--out", "-", *where),
        }

    live = await trio.to_thread.run_sync(commands, ["--live"], "live")
    assert live["report"].returncode == 0, live["report"].stderr
    assert live["reconcile"].returncode == 1, live["reconcile"].stderr        # one deal and one line unmatched
    assert live["audit"].returncode == 0, live["audit"].stderr
    for name in ("report", "reconcile", "audit"):   # which engine, and when its snapshot was taken
        assert f"on a snapshot of the ledger of the engine at http://127.0.0.1:{engine.admin_port}, taken " \
               in live[name].stderr, (name, live[name].stderr)
    assert live["audit"].stdout.startswith("a snapshot of the ledger of the engine at "), live["audit"].stdout
    assert "audit chain intact" in live["audit"].stdout
    assert list(private.iterdir()) == []          # the commands' temporary snapshots are gone
    await _gone(ledger)

    # the engine stopped: the same commands on its own file give the same answers
    engine.drain()
    with trio.fail_after(30):
        await stopped.wait()
    local = await trio.to_thread.run_sync(commands, ["--ledger", str(ledger)], "file")
    assert local["report"].returncode == 0 and local["reconcile"].returncode == 1, local["reconcile"].stderr
    assert local["audit"].returncode == 0, local["audit"].stderr
    assert live["report"].stdout == local["report"].stdout and "R000" not in live["report"].stdout
    assert "ECHO" in live["report"].stdout
    assert live["reconcile"].stdout == local["reconcile"].stdout == "41 lines, 2 break(s)\n"
    assert (tmp_path / "rec-live.csv").read_text() == (tmp_path / "rec-file.csv").read_text()
    # the end-of-day totals: the same break on the snapshot as on the file, its deals listed the live way
    assert live["totals"].returncode == local["totals"].returncode == 1, live["totals"].stderr
    rows = {tag: json.loads(res.stdout)["tables"][0]["rows"] for tag, res in (("live", live["totals"]),
                                                                              ("file", local["totals"]))}
    assert [(r["status"], r["ledger_count"], r["amount_difference"]) for r in rows["live"]] == \
        [(r["status"], r["ledger_count"], r["amount_difference"]) for r in rows["file"]] == \
        [("amount_differs", 40, "-0.0100")]
    assert rows["live"][0]["deals"].startswith("bsp deals --live --type ECHO --status committed --since ")
    assert rows["file"][0]["deals"].startswith(f"bsp deals --ledger {ledger} --type ECHO ")

    def counted(out: str) -> str:          # "N records (...) in 0.012 s (...), last seq S": not the timing
        text = out.split("audit chain intact: ", 1)[1]
        return text.split(" in ", 1)[0] + " | " + text.rsplit("last seq", 1)[1]
    assert counted(live["audit"].stdout) == counted(local["audit"].stdout)


async def test_encrypted_fields_stay_encrypted_in_the_copy(nursery, tmp_path: Path) -> None:
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    engine, client, stopped = await _serve(route, tmp_path / "l.duckdb", nursery)
    async with client:
        stream = await trio.open_tcp_stream("127.0.0.1", engine.current.channels["front"].port)
        await stream.send_all(LengthPrefixFramer(2).frame(b"{not json 4111111111111111"))
        with trio.fail_after(10):
            while not (await client.get("/dead-letters")).json()["count"]:
                await trio.sleep(0.02)
        await stream.aclose()
        copy = tmp_path / "copy.duckdb"
        assert (await _snapshot_to(client, copy)).status_code == 200
    engine.drain()
    con = duckdb.connect(str(copy), read_only=True)
    try:
        (raw, kid), = con.execute("SELECT raw, raw_key FROM dead_letters").fetchall()
        assert kid == "k1" and b"4111111111111111" not in bytes(raw) and b"not json" not in bytes(raw)
        requests = [r[0] for r in con.execute("SELECT request FROM deals").fetchall()]
        assert requests and all("4111111111111111" not in (q or "") for q in requests)
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'deals'").fetchall())
        assert types["amount"] == "DECIMAL(24,4)"
    finally:
        con.close()
    assert b"4111111111111111" not in copy.read_bytes()


async def test_one_snapshot_at_a_time_and_only_with_the_token(nursery, tmp_path: Path) -> None:
    ledger = tmp_path / "l.duckdb"
    # a ledger of some MiB, so that its copy outlasts what the sockets' buffers hold
    now = datetime.now(timezone.utc)
    async with open_ledger(ledger, audit_key=AUDIT_KEY, keyring=None) as led:
        records = [DealRecord(deal_type="BULK", route="bulk", config_version="v0", channel="front", status="committed",
                              received_at=now, finished_at=now, reference=f"B{i}", amount=Decimal("1.00"),
                              currency="CNY", request={"blob": os.urandom(3000).hex()}) for i in range(4000)]
        assert not [e for e in await led.commit_many(records) if e is not None]
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    engine, client, stopped = await _serve(route, ledger, nursery)
    async with client:
        async with httpx.AsyncClient(base_url=str(client.base_url)) as anonymous:
            r = await anonymous.post("/ledger/snapshot")
        assert r.status_code == 401 and r.json()["reason"] == "missing"
        r = await client.post("/ledger/snapshot", headers={"authorization": "Bearer wrong-token-wrong-token"})
        assert r.status_code == 401 and r.json()["reason"] == "wrong"
        env = _env(engine.admin_port)
        del env["BSP_ADMIN_TOKEN"]
        res = await trio.to_thread.run_sync(_bsp, env, "ledger", "snapshot", "--live", "--out", str(tmp_path / "n"))
        assert res.returncode == 2 and "no admin token" in res.stderr and not (tmp_path / "n").exists()

        # the first snapshot is being sent (its reader reads slowly): a second one is refused, 409
        slow = httpx.AsyncClient(base_url=str(client.base_url), headers=dict(client.headers), timeout=60,
                                 limits=httpx.Limits(max_connections=1))
        async with slow, slow.stream("POST", "/ledger/snapshot") as first:
            assert first.status_code == 200
            size = int(first.headers["content-length"])
            assert size > 8 * 1024 * 1024, size
            second = await client.post("/ledger/snapshot")
            assert second.status_code == 409, second.text
            assert "already being taken or sent" in second.json()["detail"]
            assert len(_leftovers(ledger)) == 1          # the first one's file, until it is sent
            got = 0
            async for chunk in first.aiter_bytes():
                got += len(chunk)
            assert got == size
        await _gone(ledger)                        # sent: its file is gone, and the next one may start
        third = tmp_path / "third.duckdb"
        assert (await _snapshot_to(client, third)).status_code == 200
        assert len(_refs(third, "SELECT reference FROM deals")) == 4000
        await _gone(ledger)

        # a client that hangs up midway: the file is removed all the same, and the next snapshot runs
        quitter = await trio.open_tcp_stream("127.0.0.1", engine.admin_port)
        await quitter.send_all(f"POST /ledger/snapshot HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n"
                               f"content-length: 0\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += await quitter.receive_some(65536)
        assert head.startswith(b"HTTP/1.1 200 ")
        await quitter.aclose()
        with trio.fail_after(15):
            while _leftovers(ledger):
                await trio.sleep(0.05)
        assert (await client.post("/ledger/snapshot")).status_code == 200
        text = (await client.get("/openapi.json")).json()
        assert "409" in text["paths"]["/ledger/snapshot"]["post"]["responses"]
    engine.drain()


async def test_a_disk_without_room_is_a_problem_naming_the_folder(nursery, tmp_path: Path, monkeypatch) -> None:
    import shutil

    from engine import ledger_snapshot

    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    ledger = tmp_path / "l.duckdb"
    engine, client, stopped = await _serve(route, ledger, nursery)
    # the engine keeps a reserve for its own writes: one larger than the whole disk leaves no room (whatever
    # other processes free meanwhile)
    monkeypatch.setattr(ledger_snapshot, "RESERVE", shutil.disk_usage(tmp_path).total + 1)
    async with client:
        r = await client.post("/ledger/snapshot")
        assert r.status_code == 507, r.text
        problem = r.json()
        assert problem["folder"] == str(tmp_path) and problem["detail"].startswith(f"{tmp_path}: not enough free")
        assert "Free space in" in problem["detail"]
        res = await trio.to_thread.run_sync(_bsp, _env(engine.admin_port), "ledger", "snapshot", "--live", "--out",
                                            str(tmp_path / "x.duckdb"))
        assert res.returncode == 1 and "507" in res.stderr and str(tmp_path) in res.stderr
        assert not (tmp_path / "x.duckdb").exists() and _leftovers(ledger) == []
        monkeypatch.setattr(ledger_snapshot, "RESERVE", 0)
        assert (await client.post("/ledger/snapshot")).status_code == 200
    engine.drain()

