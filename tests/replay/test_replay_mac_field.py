"""The MAC field of an ISO 8583 format with message MACs on (DE 64 here) is not compared by a replay: it
differs whenever any other field does, so every replay profile had to ignore it by hand.  The candidate's
codec verified each MAC it read and computed each one it wrote; the report says once which MAC fields
were left out.  A real capture: terminal -> bsp -> card host over loopback sockets (cardkit.py)."""
from __future__ import annotations

import cardkit as ck
from engine.registry import default_registry
from engine.replay.session import replay_file

NEW_APPROVAL = (lambda t: t.replace('"38" = "APPROV"', '"38" = "OK0001"'))


def test_only_the_changed_field_differs_not_the_mac(tmp_path, monkeypatch):
    monkeypatch.setenv(ck.KEY_ENV, ck.KEY)
    route = ck.write_config(tmp_path / "cfg")
    _, _, net = ck.codec(route)
    capture, _ = ck.record(tmp_path, route, [ck.request(net, i) for i in (1, 2, 3)], ck.approve, mask=False)
    cand = ck.write_config(tmp_path / "cand", NEW_APPROVAL)

    report = replay_file(capture, [cand], default_registry())
    assert sorted({(d.what, d.channel, d.field, d.recorded, d.produced) for d in report.diff.differences}) == [
        ("reply", "pos", "38", "APPROV", "OK0001")]
    assert len(report.diff.differences) == 3 and report.diff.ignored == 0
    assert report.summary()["mac_fields_not_compared"] == {"Net": ["64"]}
    text = report.text()
    assert text.count("MAC field(s) not compared: format Net field 64") == 1, text
    assert "MAC fields not compared" in report.html()
