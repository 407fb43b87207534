"""A `call` without `reply FORMAT` reads its answer decoded with the request format (docs/language.md,
`call`), as `bsp check` types it: `NAME.field` after the call and in `expect` reads the counterpart's
field, not a field of raw bytes.  A channel that makes its own JSON answer (file write) is read as
that JSON whatever the request format.  Real loopback sockets, real DuckDB ledger files."""
from __future__ import annotations

from pathlib import Path

from kit import Client, compile_text, deals, json_counterpart, running

ROUTE = """
format J = json

channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply J { code = error.code  text = error.text }
}

channel back = tcp connect {
    address = "127.0.0.1:1"
    framing = length4
    timeout = 2s
}

route r {
    receive from front as J
    call c = back as J { ref = msg.ref } expect c.status == "OK"
    reply J { ref = msg.ref  code = "00"  status = c.status  conf = c.conf }
}
"""


async def test_a_call_without_reply_reads_its_answer_in_the_request_format(nursery, tmp_path: Path) -> None:
    prog = compile_text(tmp_path, ROUTE)
    back = await json_counterpart(nursery, lambda req: {"status": "OK" if req["ref"] != "N1" else "NO",
                                                        "conf": "C-" + req["ref"]})
    ledger = tmp_path / "l.duckdb"
    async with running(prog, ledger, {"back": {"address": f"127.0.0.1:{back}"}}) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(b'{"ref": "A1"}', b'{"ref": "N1"}')
        ok, refused = await c.recv_json(2)
        await c.aclose()
    assert ok == {"ref": "A1", "code": "00", "status": "OK", "conf": "C-A1"}
    assert refused == {"code": "05", "text": "refused by counterpart"}      # by its expect
    assert sorted(d["status"] for d in deals(ledger)) == ["committed", "failed"]


FILE_ROUTE = """
format J = json
format Line = csv {
    ref     string
    amount  decimal(2)
}

channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply J { code = error.code  text = error.text }
}

channel out = file write {
    dir  = "%s"
    name = "R-{seq}.csv"
}

route r {
    receive from front as J
    call w = out as Line { ref = msg.ref  amount = msg.amount }
    reply J { ref = msg.ref  code = "00" }
}
"""


async def test_a_file_write_call_without_reply_still_goes_through(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    prog = compile_text(tmp_path, FILE_ROUTE % (tmp_path / "out"))
    async with running(prog, tmp_path / "l.duckdb") as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(b'{"ref": "F1", "amount": 1.50}')
        (r,) = await c.recv_json()
        await c.aclose()
    assert r == {"ref": "F1", "code": "00"}, r
    assert [p.read_text() for p in (tmp_path / "out").iterdir()] == ["F1,1.50"]
