"""No sentinel value in clear anywhere bsp writes, on the failure paths of three shipped services
(tests/tools/sentinel_sweep.py --quick; docs/security.md, "Scanning for leaks").

Card payments (ISO 8583 with an hmac-sha256 MAC: success and repeat, unknown BIN, declined, time-out
with its 0420 reversal answered and unanswered, an answer whose PAN cannot be read, an answer that is
not ISO 8583, a bad MAC, undecodable and unframed frames holding the PAN, the host down), bill payment
(refused, an account that is not text, malformed, the biller down) and claims payout (invalid IBAN,
malformed JSON, duplicate keys, escaped names, the mainframe down), then every dead letter retried
through the admin API.  The admin token, MAC key, field keyring and audit key are sentinels too.  Each
sentinel is searched for (case, escapes, EBCDIC, hex) in the engine's log at DEBUG, the ledger's tables
and files, the journal and transaction log taken while the engine ran, the capture, the admin API's
answers, /metrics and `bsp deals --json` / `bsp dead list --json`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "tools"))
import sentinel_sweep  # noqa: E402


def test_no_sentinel_in_clear_on_the_failure_paths(tmp_path: Path) -> None:
    work = tmp_path / "run"
    res = sentinel_sweep.run(work, echo=lambda _: None, quick=True)
    assert res["engine_exit"] == 0, (work / "engine.stderr").read_text()[-2000:]
    # every path ran: its deal is in the ledger with the reason it should have
    con = duckdb.connect(str(work / "bsp.duckdb"), read_only=True)
    try:
        reasons = "\n".join(r[0] or "" for r in con.execute("SELECT reason FROM deals").fetchall())
        statuses = {r[0] for r in con.execute("SELECT status FROM deals").fetchall()}
        raw = con.execute("SELECT count(*), count(*) FILTER (WHERE raw_key IS NOT NULL AND "
                          "starts_with(decode(raw), 'enc:v1:')) FROM dead_letters").fetchone()
    finally:
        con.close()
    for why in ("unknown BIN", "expect at", "timeout: call auth", "unauthenticated", "malformed",
                "unreachable: call auth", "unreachable: call post", "unreachable: call debit",
                "field account: byte 0xff", "beneficiary IBAN invalid", "duplicate key 'name'"):
        assert why in reasons, why
    assert {"committed", "duplicate", "rejected", "failed"} <= statuses, statuses
    # dead letters are kept (for retry) and encrypted with the keyring
    assert raw[0] >= 10 and raw[0] == raw[1], raw
    assert "journal / txn log (while running)" in {sentinel_sweep.place(n, set()) for n in res["artefacts"]}
    text, leaks = sentinel_sweep.table(res)
    assert not leaks, text + "\n" + "\n".join(leaks)
    # the sweep finds what it looks for: the answer to a wrong path names the PAN the sender put in it
    hits = sentinel_sweep.sweep(res["artefacts"])
    assert any("PAN" in h for name, h in hits.items() if "wrong_path" in name), hits
