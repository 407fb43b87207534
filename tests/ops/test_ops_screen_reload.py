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
