"""`--mask` and a secret field that cannot hold ``***``: the PIN block (ISO 8583 DE 52, type b, classified
secret).  The frame used to be stored without its bytes ("unmaskable"), so the purchase was not replayable;
now DE 52 is stored as a same-length filler of its kind (0xFF bytes), the frame is re-encoded (its MAC
computed again) and marked masked, and a replay of the unchanged configuration shows no difference."""
from __future__ import annotations

import duckdb

import cardkit as ck
from engine.registry import default_registry
from engine.replay.capture import Capture
from engine.replay.session import replay_file


def test_a_pin_block_is_stored_as_a_filler_and_the_purchase_replays_without_differences(tmp_path, monkeypatch):
    monkeypatch.setenv(ck.KEY_ENV, ck.KEY)
    route = ck.write_config(tmp_path / "cfg")
    _, _, net = ck.codec(route)
    capture, replies = ck.record(tmp_path, route, [ck.request(net, 1, **{"52": ck.PIN_BLOCK}), ck.request(net, 2)],
                                 ck.approve)
    assert [net.decode(r)["39"] for r in replies] == ["00", "00"]

    cap = Capture(capture)
    assert [ex.unreplayable for ex in cap.exchanges] == [None, None]
    req, call = cap.exchanges[0].request, cap.exchanges[0].calls[0].request
    for frame in (req, call):                           # the request and the call that carried the PIN block
        assert frame.raw is not None and ck.PIN_BLOCK.encode() not in frame.raw
        values = net.decode(frame.raw)                  # a valid message: its MAC verifies
        assert values["52"] == "F" * 16 and values["2"] == "4111110000001111"
        assert "(secret 52 as a same-length filler: *** does not fit)" in frame.masked
    with duckdb.connect(str(capture), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM frames WHERE raw IS NULL").fetchone() == (0,)

    report = replay_file(capture, [route], default_registry())
    s = report.summary()
    assert (s["exchanges"], s["not_replayable"], s["result"]) == (2, 0, "pass")
    assert [(d.exchange, d.what, d.field, d.recorded, d.produced) for d in report.diff.differences] == []
