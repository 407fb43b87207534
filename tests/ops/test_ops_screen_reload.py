"""A `screen` step's list is a table: a name added to the list file is a hit after `bsp reload`, with the
route file unchanged (the list is versioned and reloaded with the configuration)."""
from __future__ import annotations

from pathlib import Path

import orjson
import trio

from formats.framing import LengthPrefixFramer
from opskit import live

ROUTE = """
format Req = json classify ["name:personal"]
table sanctions = csv "list.csv" key entry_id
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply Req { ref = msg.ref  code = error.code }
}
route pay {
    receive from front as Req
    deal PAY { ref = msg.ref  amount = 1.00  currency = "CNY" }
    screen party { name = msg.name  list = sanctions }
    reply Req { ref = msg.ref  code = "00" }
}
"""
HEAD = "entry_id,source,name,aliases,ids\nSYN-1,UN,Viktor Kurganov,,\n"


async def ask(stream: trio.SocketStream, ref: str, name: str) -> dict:
    tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
    await stream.send_all(tx.frame(orjson.dumps({"ref": ref, "name": name})))
    got: list[bytes] = []
    while not got:
        got.extend(rx.feed(await stream.receive_some(65536)))
    return orjson.loads(got[0])


async def test_a_name_added_to_the_list_hits_after_a_reload(tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_text(HEAD)
    route = tmp_path / "pay.route"
    route.write_text(ROUTE)
    async with live([route], tmp_path / "l.duckdb") as eng:
        s = await trio.open_tcp_stream("127.0.0.1", eng.channels["front"].port)
        assert (await ask(s, "a1", "Dragan Miloradovic"))["code"] == "00"
        (tmp_path / "list.csv").write_text(HEAD + "SYN-2,OFAC SDN,Dragan Miloradović,,\n", encoding="utf-8")
        result = await eng.reload()
        assert result.ok and result.plan["tables"]["changed"] == ["sanctions"]
        assert (await ask(s, "a2", "MILORADOVIC DRAGAN"))["code"] == "62"
        assert (await ask(s, "a3", "Viktor Kurganov"))["code"] == "62"
        await s.aclose()


def big_list(n: int) -> str:
    """``n`` entries whose names are made of a few hundred syllables (as bench/bench_screen.py makes them)."""
    import random

    rnd = random.Random(7)
    syl = [a + b for a in "bdgklmnprstvz" for b in ("a", "e", "i", "o", "u", "ar", "en", "ov")]
    word = lambda: "".join(rnd.choice(syl) for _ in range(rnd.randint(2, 4))).capitalize()   # noqa: E731
    lines = [f"SYN-{i},UN,{word()} {word()} {word()},{word()} {word()},\n" for i in range(n)]
    return "entry_id,source,name,aliases,ids\n" + "".join(lines)


async def test_the_index_of_a_changed_list_is_built_off_the_loop_while_it_serves(tmp_path: Path) -> None:
    """The reload builds a changed list's index before it binds, in a worker thread: tasks on the loop (here one
    that only checkpoints, as an exchange does) go on running while the index is being built, and the bind then
    finds it built.  (On the loop, nothing else ran from the build's start to its end: seconds for a large list.)"""
    from dsl.load import compile_paths
    from dsl.tables import load_table
    from engine.registry import default_registry
    from engine.steps.screen import index_built
    from engine.steps.screen_prepare import prepare, screened_tables

    (tmp_path / "list.csv").write_text(big_list(3000), encoding="utf-8")
    route = tmp_path / "pay.route"
    route.write_text(ROUTE)
    program = compile_paths([route], default_registry()).program
    (decl,) = screened_tables(program)
    table = load_table(decl)
    assert not index_built(table)
    started = False
    while_building = 0

    async def serve() -> None:        # a task of the loop: counts its turns once the build began and before it ended
        nonlocal while_building
        while True:
            await trio.sleep(0)
            if started and not index_built(table):
                while_building += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        await trio.sleep(0)
        started = True
        assert await prepare(program) == 1
        nursery.cancel_scope.cancel()
    assert index_built(table)             # what the bind then takes, building nothing on the loop
    assert while_building > 0             # the loop ran other tasks while the index was being built
