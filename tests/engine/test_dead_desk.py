"""The dead-letter desk as the operator meets it each morning (`bsp dead list | show | retry | purge`): what a
user would call a bug, each pinned by a test.  Real CLI commands on real keyed DuckDB ledgers."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest
import trio

from engine.ledger_query import query_dead_letters, query_deals
from test_deadletter import KEY, chain_ok, cli, fill

OTHER = """
format Req = json
channel mainframe = tcp listen { address = "127.0.0.1:0" framing = length2 }
route other {
    receive from mainframe as Req
    deal OTHER { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Req { ref = msg.ref  code = "00" }
    on error reply Req { ref = msg.ref  code = error.code }
}
"""


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BSP_AUDIT_KEY_FILE", "BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE", "BSP_ENV"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY", base64.b64encode(KEY).decode())


def test_a_retry_whose_route_is_gone_names_the_route_and_the_letter_keeps_waiting(tmp_path: Path) -> None:
    """d-timeout was failed by route bill_payment, which the current configuration no longer has (its channel is
    still there): re-injected, the message would meet whatever route takes the channel now.  Nothing runs; the
    message names the route and what to do, and the letter stays new (before: it ran as a malformed deal of no
    route, and its letter became another one)."""
    path = tmp_path / "l.duckdb"
    trio.run(fill, path)
    route = tmp_path / "other.route"
    route.write_text(OTHER)
    res = cli("retry", "d-timeout", "--ledger", str(path), "--routes", str(route))
    assert res.exit_code == 1, res.output
    assert res.output.splitlines() == [
        "d-timeout: NOT retried: failed: route 'bill_payment', which failed this letter, is not in the current "
        "configuration (routes: other); nothing ran and the letter still waits: load a configuration with route "
        "'bill_payment' (bsp reload), then retry it, or purge it (bsp dead purge d-timeout) and have its sender "
        "send it again"], res.output
    assert query_deals(path) == []
    [row] = query_dead_letters(path, ids=["d-timeout"])
    assert row["status"] == "new" and row["retry_outcome"].startswith("failed: route 'bill_payment'"), row
    assert len(query_dead_letters(path, limit=None)) == 3       # no letter of a new deal
    assert chain_ok(path)
