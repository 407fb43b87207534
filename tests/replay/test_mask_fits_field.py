"""`bsp run --record --mask` on ISO 8583 card traffic: DE 2 (the PAN, type n, classified pan) cannot hold
``411111******1111``, so every request and reply carrying a card number was stored without its bytes
("unmaskable"), and a replay sent empty frames in their place (every deal "rejected").  A masked value
that does not fit a numeric field now keeps its shape with zeros for the hidden digits."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths
from engine.registry import default_registry
from engine.replay.guide import FormatGuide
from engine.runtime.binder import Binder

ROUTE = """
format Net = iso8583 iso8583_1987_ascii mac_algorithm "cmac-aes" mac_key_env "MASK_TEST_MAC_KEY"
format Fix = fixed {
    ref   string(8)
    card  string(16) pan
}
channel pos = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route purchase {
    receive from pos as Net when msg.t == "0200"
    reply Net { t = "0210"  "2" = msg["2"]  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]
                "39" = "00"  "49" = msg["49"] }
}
route fix {
    receive from front as Fix
    reply Fix { ref = msg.ref  card = msg.card }
}
"""
PAN = "4111111111111111"


def guide(tmp_path: Path, monkeypatch) -> tuple[FormatGuide, Binder]:
    monkeypatch.setenv("MASK_TEST_MAC_KEY", "00112233445566778899aabbccddeeff")
    route = tmp_path / "pos.route"
    route.write_text(ROUTE)
    registry = default_registry()
    res = compile_paths([route], registry)
    assert res.program is not None, [str(d) for d in res.diagnostics]
    binder = Binder(res.program, registry)
    return FormatGuide(res.program, binder.codec), binder


def test_a_masked_pan_in_a_numeric_iso8583_field_is_stored_and_still_verifies(tmp_path: Path, monkeypatch) -> None:
    g, binder = guide(tmp_path, monkeypatch)
    net = binder.codec("Net")
    raw = net.encode({"t": "0200", "2": PAN, "3": "000000", "4": "000000000100", "7": "1126100000", "11": "000042",
                       "49": "978"})
    stored, masked = g.mask("pos", "inbound", "in", raw)
    assert stored is not None, masked
    assert PAN.encode() not in stored
    values = net.decode(stored)                        # a valid message, its MAC computed over the masked one
    assert values["2"] == "4111110000001111" and values["11"] == "000042"
    assert masked is not None and "2" in masked.split(",")


def test_a_text_field_keeps_the_star_mask(tmp_path: Path, monkeypatch) -> None:
    g, binder = guide(tmp_path, monkeypatch)
    stored, masked = g.mask("front", "inbound", "in", f"{'R1':<8}{PAN}".encode())
    assert stored == b"R1      411111******1111" and masked == "card"


async def test_a_masked_iso8583_capture_replays_without_differences(tmp_path: Path, monkeypatch) -> None:
    """Recorded with --mask, replayed against the same configuration: no difference (the zeroed PAN of the
    recorded reply is what the candidate's masked reply gives)."""
    import trio

    from engine.ledger import open_ledger
    from engine.replay.session import replay_file
    from engine.replay.tap import recording
    from engine.runtime import Switchboard
    from formats.framing import LengthPrefixFramer

    g, binder = guide(tmp_path, monkeypatch)
    net = binder.codec("Net")
    program, registry = g.program, default_registry()
    capture = tmp_path / "cap.duckdb"
    with recording(program, registry, capture, mask=True) as (reg, _):
        async with open_ledger(tmp_path / "l.duckdb", audit_key=None, keyring=None) as ledger:
            sb = Switchboard(program, reg, ledger=ledger)
            async with trio.open_nursery() as nursery:
                await nursery.start(sb.run)
                fr = LengthPrefixFramer(2)
                reqs = [net.encode({"t": "0200", "2": pan, "3": "000000", "4": "000000000100", "7": "1126100000",
                                    "11": f"{i:06d}", "49": "978"})
                        for i, pan in enumerate([PAN, "5500005555555559"])]
                async with await trio.open_tcp_stream("127.0.0.1", sb.channel("pos").port) as s:
                    await s.send_all(b"".join(fr.frame(r) for r in reqs))
                    got: list[bytes] = []
                    with trio.fail_after(10):
                        while len(got) < 2:
                            got.extend(fr.feed(await s.receive_some(65536)))
                assert [net.decode(r)["2"] for r in got] == [PAN, "5500005555555559"]
                sb.drain()
    report = await trio.to_thread.run_sync(lambda: replay_file(capture, [tmp_path / "pos.route"], registry))
    assert report.summary()["exchanges"] == 2
    assert [(d.what, d.field, d.recorded, d.produced) for d in report.diff.differences] == []
