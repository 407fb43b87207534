"""W012: a route on a file watch channel whose deal has no key.  A crash between a batch's commit and the
file index's note of it runs that batch again at the restart (tests/engine/test_channels_file_kill.py kills a
real engine mid-file); a deal key answers the repeated records from the ledger, without one each is a deal
twice.  Until 2026-11-27 `bsp check` said nothing of it."""
from __future__ import annotations

from dsl.load import compile_source

REQ = 'format Req = json\n'
FILES = 'channel inbox = file watch {\n    dir = "."\n}\n'        # 3 lines
ROUTE = 'route pay {\n    receive from inbox as Req\n    deal PAY { ref = msg.ref  amount = msg.amount }\n}\n'


def _w012(tmp_path, registry, src):
    r = compile_source(src, registry, tmp_path / "main.route")
    assert not r.errors, r.errors
    return [d for d in r.diagnostics if d.code == "W012"]


def test_a_file_route_whose_deal_has_no_key_is_told(tmp_path, registry):
    [d] = _w012(tmp_path, registry, REQ + FILES + ROUTE)
    assert d.severity == "warning"
    assert d.message == ("route `pay` receives from file watch channel `inbox` and its deal `PAY` has no `key`: a "
                         "crash in the middle of a file runs the batch it was in again at the restart (up to the "
                         "channel's `batch` records, 1,000 unless set), each then a deal twice")
    assert (d.pos.line, d.pos.col) == (7, 5)
    assert "key = msg.ref" in d.help
    # a route without a deal step records each record as a deal of its name, keyless too
    [d] = _w012(tmp_path, registry, REQ + FILES + ROUTE.replace(
        "    deal PAY { ref = msg.ref  amount = msg.amount }\n", "    audit r { text = msg.ref }\n"))
    assert "it records its deals without a `key`" in d.message and (d.pos.line, d.pos.col) == (5, 7)


def test_a_keyed_file_route_or_another_channel_is_not_told(tmp_path, registry):
    keyed = ROUTE.replace("amount = msg.amount }", "amount = msg.amount  key = msg.ref }")
    tcp = 'channel inbox = tcp listen {\n    address = "127.0.0.1:7000"\n}\n'
    for src in (REQ + FILES + keyed, REQ + tcp + ROUTE):
        assert _w012(tmp_path, registry, src) == [], src
