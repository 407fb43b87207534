"""Reload under load, per listening channel kind, with `bsp run --record` on: requests in flight across
several reloads (each configuration answers another `tag`), then the checks of reloadkit: one reply per
request from the old or the new generation, one deal each with the version that served it, no dead
letter, the capture holds each exchange once with that version, and a replay against the last
configuration differs exactly for the exchanges an older one served.

Real engine (LiveEngine, as `bsp run`), real clients on 127.0.0.1 (port 0), real DuckDB files."""
from __future__ import annotations

from pathlib import Path

import orjson
import trio

from engine.replay.capture import Capture
from formats.framing import LengthPrefixFramer
from opskit import ECHO, live_recording
from reloadkit import check_generations

TAGS = ["A", "B", "C", "D"]
took: list[float] = []
PACE = 0.01


def stages() -> list[trio.Event]:
    """stages()[k] is set once the reload to TAGS[k] is done (stage 0 at once): the clients send the k-th
    share of their requests only then, so every configuration serves some, however slow a reload is."""
    events = [trio.Event() for _ in TAGS]
    events[0].set()
    return events


def stage_of(i: int, count: int) -> int:
    return i * len(TAGS) // count


async def reload_at(eng, route: Path, text_of, progress: list[int], total: int, versions: dict[str, str],
                    reloaded: list[trio.Event]) -> None:
    """One reload per tag after the first, spread over the run (each when its share of replies came)."""
    for k, tag in enumerate(TAGS[1:], start=1):
        with trio.fail_after(20):
            while progress[0] < k * total // len(TAGS):
                await trio.sleep(0.002)
        route.write_text(text_of(tag))
        t0 = trio.current_time()
        result = await eng.reload(source="test")
        took.append(trio.current_time() - t0)
        assert result.ok, result.diagnostics
        versions[result.version] = tag
        reloaded[k].set()


async def tcp_client(number: int, port: int, count: int, replies: dict[str, str], progress: list[int],
                     sent: list[str], reloaded: list[trio.Event] | None = None) -> None:
    """Pipelined: up to 32 requests in flight, written 8 to a write (PACE between writes); replies must come
    in order."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    window = trio.Semaphore(32)
    mine: list[str] = []

    async def sender() -> None:
        for start in range(0, count, 8):
            batch = []
            for i in range(start, min(start + 8, count)):
                if reloaded is not None and not reloaded[stage_of(i, count)].is_set():
                    if batch:
                        await stream.send_all(b"".join(batch))
                        batch = []
                    await reloaded[stage_of(i, count)].wait()
                await window.acquire()
                ref = f"t{number}-{i:04d}"
                mine.append(ref)
                sent.append(ref)
                batch.append(tx.frame(orjson.dumps({"ref": ref})))
            if batch:
                await stream.send_all(b"".join(batch))
            await trio.sleep(PACE)          # traffic keeps flowing while each reload compiles and swaps

    async with stream:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            got = 0
            while got < count:
                data = await stream.receive_some(65536)
                assert data, f"connection {number} closed by the engine after {got} replies"
                for frame in rx.feed(data):
                    reply = orjson.loads(frame)
                    assert reply["ref"] == mine[got], (number, got, reply)
                    assert reply["ref"] not in replies, f"two replies for {reply['ref']}"
                    replies[reply["ref"]] = reply["tag"]
                    got += 1
                    progress[0] += 1
                    window.release()


async def test_tcp_listen_pipelined_across_reloads_recorded(tmp_path: Path) -> None:
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    ledger, capture = tmp_path / "l.duckdb", tmp_path / "cap.duckdb"
    replies: dict[str, str] = {}
    sent: list[str] = []
    progress = [0]
    conns, per = 4, 150
    async with live_recording([route], ledger, capture) as eng:
        versions = {eng.version: "A"}
        port = eng.channels["front"].port
        reloaded = stages()
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reload_at, eng, route, lambda t: ECHO % t, progress, conns * per, versions,
                                   reloaded)
                for c in range(conns):
                    nursery.start_soon(tcp_client, c, port, per, replies, progress, sent, reloaded)
    figures = await check_generations(ledger, capture, replies, versions, route, sent=sent)
    print(figures, "reloads took", [round(t * 1000) for t in took], "ms")
    assert len(versions) == 4 and all(figures["by_version"].values()), figures


HTTP = '''
format Req = json
channel api = http listen {
    address = "127.0.0.1:0"
    path    = "/echo"
}
route echo {
    receive from api as Req
    deal ECHO { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Req { ref = msg.ref  tag = "%s" }
}
'''


async def test_http_listen_keep_alive_across_reloads_recorded(tmp_path: Path) -> None:
    import httpx

    route = tmp_path / "api.route"
    route.write_text(HTTP % "A")
    ledger, capture = tmp_path / "l.duckdb", tmp_path / "cap.duckdb"
    replies: dict[str, str] = {}
    sent: list[str] = []
    progress = [0]
    workers, per = 8, 60
    async with live_recording([route], ledger, capture) as eng:
        versions = {eng.version: "A"}
        url = f"http://127.0.0.1:{eng.channels['api'].port}/echo"

        reloaded = stages()

        async def worker(number: int, client: httpx.AsyncClient) -> None:
            for i in range(per):
                await reloaded[stage_of(i, per)].wait()
                ref = f"h{number}-{i:03d}"
                sent.append(ref)
                r = await client.post(url, content=orjson.dumps({"ref": ref}),
                                      headers={"content-type": "application/json"})
                assert r.status_code == 200, (ref, r.status_code, r.text)
                assert r.json()["ref"] == ref and ref not in replies
                replies[ref] = r.json()["tag"]
                progress[0] += 1

        with trio.fail_after(30):
            async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=workers)) as client:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(reload_at, eng, route, lambda t: HTTP % t, progress, workers * per, versions,
                                       reloaded)
                    for w in range(workers):
                        nursery.start_soon(worker, w, client)
    figures = await check_generations(ledger, capture, replies, versions, route, sent=sent)
    assert len(versions) == 4 and all(figures["by_version"].values()), figures


FILES = '''
format Pay = json
channel inbox = file watch {
    dir     = "%(dir)s"
    pattern = "*.jsonl"
    batch   = %(batch)d
    rescan  = 50ms
}
route pay {
    receive from inbox as Pay
    validate {
        msg.amount > %(floor)d else reject "13" "amount too small"
    }
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
}
'''


async def run_file_across_reload(tmp_path: Path, second: dict) -> tuple[dict, list[tuple], str, str]:
    """A file of 400 records (every 10th of amount 5) run in batches of 4; once 40 of them ran the route is
    reloaded with ``second`` (floor 0 -> 9: the new version rejects the records of amount 5).  Returns the
    engine figures, the deals (reference, version, status), the archive folder and the reason text."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    route = tmp_path / "files.route"
    first = dict(dir=inbox, batch=4, floor=0)
    route.write_text(FILES % first)
    ledger, capture = tmp_path / "l.duckdb", tmp_path / "cap.duckdb"
    body = b"".join(b'{"ref": "R%03d", "amount": %d}\n' % (i, 5 if i % 10 == 0 else 50) for i in range(400))
    async with live_recording([route], ledger, capture) as eng:
        v1 = eng.version
        old = eng.channels["inbox"]
        tmp = inbox / ".pay.tmp"
        tmp.write_bytes(body)
        import os
        os.replace(tmp, inbox / "pay.jsonl")
        with trio.fail_after(10):
            while old.ran_records < 40:
                await trio.sleep(0.001)
        route.write_text(FILES % {**first, **second})
        result = await eng.reload()
        assert result.ok, result.diagnostics
        ran_at_swap = old.ran_records
        assert 0 < ran_at_swap < 400, ran_at_swap
        v2 = eng.version
        with trio.fail_after(20):
            while (inbox / "pay.jsonl").exists():
                await trio.sleep(0.01)
    folder = "done" if (inbox / "done" / "pay.jsonl").exists() else "error"
    reason = (inbox / "error" / "pay.jsonl.reason.txt").read_text() if folder == "error" else ""
    from opskit import rows
    deals = rows(ledger, "SELECT deal_id, config_version, status FROM deals")
    return {"v1": v1, "v2": v2, "ran_at_swap": ran_at_swap, "capture": capture, "route": route}, deals, folder, reason


async def test_file_watch_a_file_running_during_a_reload_of_its_route(tmp_path: Path) -> None:
    """The channel is kept (only the route changed): the file's next batch runs on the new version, so its
    records split between the generations; each deal names the version that ran it, and the archive
    decision counts the problems of both (here: those of the new version only)."""
    fig, deals, folder, reason = await run_file_across_reload(tmp_path, {"floor": 9})
    v1, v2 = fig["v1"], fig["v2"]
    assert len(deals) == 400 and len({d for d, _, _ in deals}) == 400, len(deals)      # each record once
    cap = Capture(fig["capture"])
    ref_of = {ex.request.deal_id: orjson.loads(ex.request.raw)["ref"] for ex in cap.exchanges}
    assert len(cap.exchanges) == 400 and sorted(ref_of) == sorted(d for d, _, _ in deals)   # each once
    version_of = {ref_of[d]: v for d, v, _ in deals}
    assert all(ex.request.config_version == version_of[ref_of[ex.request.deal_id]] for ex in cap.exchanges)
    by_version = {v: sorted(r for r, rv in version_of.items() if rv == v) for v in (v1, v2)}
    assert by_version[v1] and by_version[v2], {v: len(x) for v, x in by_version.items()}
    assert max(by_version[v1]) < min(by_version[v2])       # batches in file order: v1's, then v2's
    rejected = sorted(ref_of[d] for d, v, s in deals if s == "rejected")
    assert rejected == [r for r in by_version[v2] if int(r[1:]) % 10 == 0]       # only v2 rejects
    assert folder == "error" and f"{len(rejected)} problem(s) in 400 record(s)" in reason, (folder, reason[:200])
    assert reason.count("amount too small") == len(rejected)
    print({"records_v1": len(by_version[v1]), "records_v2": len(by_version[v2]), "rejected": len(rejected)})


async def test_file_watch_a_file_running_when_a_reload_changes_the_channel(tmp_path: Path) -> None:
    """The channel itself changed (its batch size): the old watcher finishes the file it is running on the
    old version (all of it: it drains), the new one does not take it meanwhile; the file is archived once."""
    fig, deals, folder, reason = await run_file_across_reload(tmp_path, {"floor": 9, "batch": 8})
    v1 = fig["v1"]
    assert len(deals) == 400 and len({d for d, _, _ in deals}) == 400, len(deals)
    assert {v for _, v, _ in deals} == {v1}, "the file's records split between the old and the new watcher"
    assert folder == "done" and reason == "", reason
    inbox = tmp_path / "in"
    assert sorted(p.name for p in (inbox / "done").iterdir() if not p.name.startswith(".")) == ["pay.jsonl"], \
        sorted(p.name for p in inbox.rglob("*"))
    assert not (inbox / "error").exists() or not any((inbox / "error").iterdir())


SLOW_TICKER = '''
format Tick = json
channel tick = timer {
    every     = %(every)s
    immediate = true
}
channel back = tcp connect { address = "127.0.0.1:%(back)d"  framing = length4  timeout = 5s }
route beat {
    receive from tick as Tick
    deal BEAT { ref = "%(tag)s"  amount = msg.tick  currency = "CNY" }
    call post = back as Tick { tick = msg.tick }
}
'''


def overlaps(deals: list[tuple]) -> list[tuple]:
    """Pairs of deals whose runs overlap in time (received_at .. finished_at)."""
    spans = sorted((r, f, ref, amt) for ref, amt, r, f in deals)
    return [(a[2:], b[2:]) for a, b in zip(spans, spans[1:]) if b[0] < a[1]]


async def test_timer_kept_across_route_reloads_ticks_once_each(nursery, tmp_path: Path) -> None:
    """The timer is kept (only its route changes, three times): every tick runs once, on the generation
    current when it started; none runs twice, none overlaps another, none is lost (ticks run = deals)."""
    from opskit import json_counterpart, live, rows

    back = await json_counterpart(nursery, lambda req: {"ok": True}, delay=0.01)
    route = tmp_path / "beat.route"
    text = lambda tag: SLOW_TICKER % dict(every="15ms", back=back, tag=tag)    # noqa: E731
    route.write_text(text("A"))
    ledger = tmp_path / "l.duckdb"
    async with live([route], ledger) as eng:
        timer = eng.channels["tick"]
        for k, tag in enumerate(["B", "C", "D"], start=1):
            with trio.fail_after(10):
                while timer.ticks < 5 * k:
                    await trio.sleep(0.002)
            route.write_text(text(tag))
            assert (await eng.reload()).ok
            assert eng.channels["tick"] is timer
        with trio.fail_after(10):
            while timer.ticks < 20:
                await trio.sleep(0.002)
        ticks = timer.ticks
    deals = rows(ledger, "SELECT reference, amount, received_at, finished_at FROM deals")
    numbers = sorted(int(a) for _, a, _, _ in deals)
    assert numbers == list(range(1, ticks + 1)), (numbers, ticks)          # once each, none lost
    tags = [ref for ref, _, _, _ in sorted(deals, key=lambda d: d[1])]
    assert tags == sorted(tags) and set(tags) == {"A", "B", "C", "D"}, tags
    assert overlaps(deals) == []


async def test_timer_changed_while_a_tick_runs_does_not_overlap_it(nursery, tmp_path: Path) -> None:
    """A reload that changes the timer while one of its ticks is running (its call takes 300 ms): the
    new timer (immediate = true) must not tick before the old tick has finished ("ticks never overlap";
    docs/channels.md: the new timer starts only once the old one has stopped)."""
    from opskit import json_counterpart, live, rows

    back = await json_counterpart(nursery, lambda req: {"ok": True}, delay=0.3)
    route = tmp_path / "beat.route"
    route.write_text(SLOW_TICKER % dict(every="1s", back=back, tag="A"))
    ledger = tmp_path / "l.duckdb"
    async with live([route], ledger) as eng:
        old = eng.channels["tick"]
        with trio.fail_after(10):
            while old.ticks < 1:
                await trio.sleep(0.002)
        route.write_text(SLOW_TICKER % dict(every="2s", back=back, tag="B"))   # the tick is in its call
        assert (await eng.reload()).ok
        new = eng.channels["tick"]
        assert new is not old
        with trio.fail_after(10):
            while new.ticks < 1:
                await trio.sleep(0.002)
            await trio.sleep(0.4)
    deals = rows(ledger, "SELECT reference, amount, received_at, finished_at FROM deals")
    assert sorted(r for r, _, _, _ in deals) == ["A", "B"], deals
    assert overlaps(deals) == [], overlaps(deals)


def moved(port: int, tag: str) -> str:
    return (ECHO % tag).replace('address = "127.0.0.1:0"', f'address = "127.0.0.1:{port}"')


async def test_tcp_listen_moved_to_another_address_while_clients_send(tmp_path: Path) -> None:
    """A reload changes the listen address while 4 pipelined clients are sending: the old socket stops
    reading, answers everything it read, then closes (docs/operations.md, The swap: changed channels
    drain).  Every request that became a deal got its reply; none was answered without a deal; requests
    the old socket never read got neither (the client sees the close and sends them to the new address)."""
    from opskit import free_port, live, rows

    route = tmp_path / "echo.route"
    route.write_text(moved(free_port(), "A"))
    ledger = tmp_path / "l.duckdb"
    replies: dict[str, str] = {}
    sent: list[str] = []

    async def client(number: int, port: int, progress: list[int]) -> None:
        fr = LengthPrefixFramer(2)
        async with await trio.open_tcp_stream("127.0.0.1", port) as s:
            async def sender() -> None:
                try:
                    for i in range(0, 400, 4):
                        refs = [f"m{number}-{j:03d}" for j in range(i, i + 4)]
                        sent.extend(refs)
                        await s.send_all(b"".join(fr.frame(orjson.dumps({"ref": r})) for r in refs))
                        await trio.sleep(0.003)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
            async with trio.open_nursery() as n:
                n.start_soon(sender)
                while True:
                    try:
                        data = await s.receive_some(65536)
                    except trio.BrokenResourceError:
                        data = b""
                    if not data:
                        n.cancel_scope.cancel()
                        return
                    for f in fr.feed(data):
                        r = orjson.loads(f)
                        assert r["ref"] not in replies
                        replies[r["ref"]] = r["tag"]
                        progress[0] += 1

    async with live([route], ledger) as eng:
        old_port = eng.channels["front"].port
        progress = [0]
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for c in range(4):
                    nursery.start_soon(client, c, old_port, progress)
                while progress[0] < 200:
                    await trio.sleep(0.002)
                new_port = free_port()
                route.write_text(moved(new_port, "B"))
                result = await eng.reload()
                assert result.ok and result.plan["channels"]["changed"] == ["front"], result
        assert eng.channels["front"].port == new_port
        late: dict[str, str] = {}
        fr = LengthPrefixFramer(2)
        async with await trio.open_tcp_stream("127.0.0.1", new_port) as s:      # the new address serves
            await s.send_all(fr.frame(b'{"ref": "after"}'))
            with trio.fail_after(5):
                while not late:
                    for f in fr.feed(await s.receive_some(65536)):
                        late[orjson.loads(f)["ref"]] = orjson.loads(f)["tag"]
        assert late == {"after": "B"}
    deals = {r for (r,) in rows(ledger, "SELECT reference FROM deals")}
    assert deals == set(replies) | {"after"}, (len(deals), len(replies))      # a deal <=> a reply
    assert len(replies) >= 200
    assert rows(ledger, "SELECT count(*) FROM dead_letters") == [(0,)]
    print({"sent": len(sent), "answered_before_move": len(replies)})


async def test_reloads_refused_mid_load_keep_the_old_generation_serving(tmp_path: Path) -> None:
    """Under pipelined load, a reload whose files do not compile and one whose new channel cannot listen
    (its port taken) are refused; the running generation answers every request meanwhile, nothing lost."""
    import socket

    from opskit import live

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    extra = f'''
channel side = tcp listen {{ address = "127.0.0.1:{taken.getsockname()[1]}"  framing = length2 }}
route side_echo {{ receive from side as Req  reply Req {{ ref = msg.ref  tag = "side" }} }}
'''
    route = tmp_path / "echo.route"
    route.write_text(ECHO % "A")
    ledger = tmp_path / "l.duckdb"
    replies: dict[str, str] = {}
    sent: list[str] = []
    progress = [0]
    results = []
    try:
        async with live([route], ledger) as eng:
            versions = {eng.version: "A"}

            async def refusals() -> None:
                for k, text in enumerate([ECHO.replace('tag = "%s" }', 'tag = }'), ECHO % "B" + extra], start=1):
                    while progress[0] < k * 200:
                        await trio.sleep(0.002)
                    route.write_text(text)
                    results.append(await eng.reload())

            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(refusals)
                    for c in range(3):
                        nursery.start_soon(tcp_client, c, eng.channels["front"].port, 200, replies, progress, sent)
            assert eng.version == list(versions)[0]
    finally:
        taken.close()
    assert [(r.ok, r.refused) for r in results] == [(False, "files"), (False, "start")], results
    figures = await check_generations(ledger, None, replies, versions, route, sent=sent)
    assert figures["by_version"] == {"A": 600}
