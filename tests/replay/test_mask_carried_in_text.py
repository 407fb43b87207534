"""--mask masks a classified value wherever it travels in the exchange (docs/testing.md, Masking): inside a
longer text too, not only where a field holds exactly that value.  A reply whose unclassified `message`
says "paid for ACC123..." (the request's `personal` account) is stored as "paid for A***", and a replay of
the same configuration still finds no difference.  Real loopback sockets (replaykit.py)."""
from __future__ import annotations

import re

import duckdb

from engine.registry import default_registry
from engine.replay.session import replay_file
from replaykit import config_copy, record_session

CARRY = (lambda t: t.replace('message    = "paid " + upper(billers[msg.biller_id].name)',
                             'message    = "paid for " + trim(msg.account)'))


def test_an_account_inside_a_reply_text_is_masked_and_the_capture_still_replays(tmp_path):
    config = config_copy(tmp_path / "config", CARRY)
    capture = record_session(tmp_path, config, 30, mask=True)
    with duckdb.connect(str(capture), read_only=True) as con:
        rows = con.execute("SELECT raw, masked FROM frames WHERE raw IS NOT NULL").fetchall()
    texts = [bytes(raw).decode("latin-1") for raw, _ in rows]
    assert not [t for t in texts if re.search(r"ACC\d{4}", t)], "an account in clear in a --mask capture"
    paid = [(t, m) for (t, (_, m)) in zip(texts, rows) if "paid for " in t]
    assert paid and all(re.search(r"paid for \w\*\*\* ", t) and m == "values of classified fields" for t, m in paid)

    report = replay_file(capture, [config], default_registry())
    assert report.passed and not report.diff.differences, report.text()
