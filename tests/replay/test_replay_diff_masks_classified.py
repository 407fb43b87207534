"""A replay's differences never show a classified value in clear, even from a capture recorded without
--mask: the report goes to CI logs and is attached to change requests.  A field its format classifies
(ISO 8583 DE 2 is `pan`, bill payment's `account` is `personal`) is shown masked as the ledger masks it,
and so is a classified value of the request carried into a field no format classifies.  Values that
differ only in the masked characters say so.  Real captures over loopback sockets (cardkit.py, replaykit.py)."""
from __future__ import annotations

import re

import cardkit as ck
from engine.registry import default_registry
from engine.replay.diff import _short
from engine.replay.session import replay_file
from replaykit import config_copy, record_session

PAN_MASKED = "411111******1111"

# the call sends 15 digits of the PAN; the reply carries the whole PAN in DE 44, which no spec classifies
CARD_EDIT = (lambda t: t.replace('"2" = msg["2"]  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]\n'
                                 '        "49"',
                                 '"2" = substr(msg["2"], 0, 15)  "3" = msg["3"]  "4" = msg["4"]  "7" = msg["7"]'
                                 '  "11" = msg["11"]\n        "49"')
             .replace('"38" = "APPROV"', '"38" = "APPROV"  "44" = msg["2"]'))


def _everything(report, tmp_path) -> str:
    report.write_json(tmp_path / "r.json")
    report.write_html(tmp_path / "r.html")
    return "\n".join([report.text(), (tmp_path / "r.json").read_text(), (tmp_path / "r.html").read_text()])


def test_a_pan_difference_is_shown_masked_from_an_unmasked_capture(tmp_path, monkeypatch):
    monkeypatch.setenv(ck.KEY_ENV, ck.KEY)
    route = ck.write_config(tmp_path / "cfg")
    _, _, net = ck.codec(route)
    capture, _ = ck.record(tmp_path, route, [ck.request(net, i) for i in (1, 2)], ck.approve, mask=False)
    cand = ck.write_config(tmp_path / "cand", CARD_EDIT)

    report = replay_file(capture, [cand], default_registry())
    got = sorted({(d.what, d.channel, d.field, d.recorded, d.produced) for d in report.diff.differences})
    assert got == [("call", "host", "2", PAN_MASKED, "411111*****1111"),
                   ("reply", "pos", "44", "<none>", PAN_MASKED)], got
    shown = _everything(report, tmp_path)
    assert ck.PAN not in shown and ck.PAN[:15] not in shown
    assert PAN_MASKED in shown


def test_a_personal_value_is_masked_and_a_difference_in_its_hidden_characters_is_told(tmp_path):
    config = config_copy(tmp_path / "config")
    capture = record_session(tmp_path, config, 30)
    cand = config_copy(tmp_path / "cand", lambda t: t.replace(
        "        account   = trim(msg.account)\n", '        account   = trim(msg.account) + "9"\n').replace(
        'message    = "paid " + upper(billers[msg.biller_id].name)', 'message    = "paid for " + trim(msg.account)'))

    report = replay_file(capture, [cand], default_registry())
    diffs = {(d.what, d.field): d for d in report.diff.differences}
    call = diffs[("call", "account")]
    assert re.fullmatch(r"\w\*\*\*", call.recorded), call
    assert call.produced == f"{call.recorded} (differs in masked characters)"
    msg = diffs[("reply", "message")]
    assert re.fullmatch(r"paid for \w\*\*\*", msg.produced), msg     # carried: masked where it travels
    shown = _everything(report, tmp_path)
    assert not re.search(r"ACC\d{4}", shown), re.search(r".{60}ACC\d{4}.{20}", shown)


def test_bytes_no_format_decodes_are_shown_with_card_numbers_masked():
    shown = _short(b"0200" + ck.PAN.encode() + b"000000")
    assert ck.PAN not in shown and "******" in shown, shown
