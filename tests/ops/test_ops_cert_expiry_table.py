"""`bsp status --table` and `bsp top`'s `cert expires` column: computed from the certificate's `not_after`, as the
log's "in N days" is, not from the status' `days_left` (rounded to a tenth of a day): a certificate with an hour
left read EXPIRED in red, one with 4.96 days left "5d" while the log said "in 4 days"."""
from __future__ import annotations

import time

from engine.certexpiry import CertExpiry, notice
from engine.commands.top import _expiry


def _cell(seconds_left: float) -> tuple[str, str]:
    now = time.time()
    cert = CertExpiry("mainframe", "server", "/etc/bsp/tls/mainframe.pem", "CN=bsp.bank.example",
                      now + seconds_left)
    line = notice(cert, now)
    text = _expiry(cert.as_dict(now))
    return text.plain, (line[1] if line else "")


def test_an_hour_left_is_not_expired() -> None:
    cell, log = _cell(3600 + 120)
    assert "EXPIRED" not in cell and "(1h, server)" in cell, cell
    assert "(in 1 hour)" in log, log


def test_the_days_left_agree_with_the_log() -> None:
    cell, log = _cell(4.96 * 86400)
    assert "(4d, server)" in cell and "(in 4 days)" in log, (cell, log)


def test_an_expired_certificate_reads_expired() -> None:
    cell, log = _cell(-60)
    assert "EXPIRED" in cell and "expired on" in log, (cell, log)


def test_days_left_is_cut_down_as_the_log_and_the_table_cut_it() -> None:
    """4.99 days left read 5.0 in bsp status beside "in 4 days" in the log and "4d" in the table; a certificate
    expired a minute ago read 0.0 (not expired to the eye), now -0.1."""
    from engine.certexpiry import CertExpiry, notice
    now = 1_800_000_000.0
    soon = CertExpiry("biller", "peer", "127.0.0.1:7002", "CN=localhost", now + 5 * 86400 - 60)
    assert soon.as_dict(now)["days_left"] == 4.9
    assert "(in 4 days)" in notice(soon, now)[1]
    gone = CertExpiry("biller", "peer", "127.0.0.1:7002", "CN=localhost", now - 60)
    assert gone.as_dict(now)["days_left"] == -0.1
