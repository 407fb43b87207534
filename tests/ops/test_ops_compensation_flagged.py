"""A compensation that failed is flagged for an operator, as a plugin step left in doubt is
(docs/transactions.md "Flagged for an operator"): the deal's event ``flagged``, its reason and dead letter
("flagged for an operator: ..."), ``bsp status`` (the route's ``flagged``, ``flagged_deals``), the metric
``bsp_route_flagged_total`` and ``bsp deals --flagged`` / ``GET /deals?flagged=1``.

Real engine (LiveEngine and its admin backend), real loopback counterparts: the debit host refuses the cancel
of one deal (``{"status": "REFUSED"}``: the compensation's own ``expect d.status == "OK"`` is false) and
accepts the cancel of another, the credit host is down (its call unreachable: the deal fails and the debit is
compensated)."""
from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from engine.admin.backend import DealQuery
from engine.cli import app
from engine.commands.top import render
from engine.ledger_query import query_deals
from engine.ops.backend import EngineBackend
from opskit import live, rows
from test_ops_dead_retry_keys import Host, ask, letter_of, req, route_file


def _events(ledger: Path, deal: str) -> list[tuple[str, str]]:
    return rows(ledger, f"SELECT to_state, CAST(detail AS VARCHAR) FROM deal_events WHERE deal_id = '{deal}' "
                        f"ORDER BY seq")


async def test_a_cancel_the_counterpart_refused_flags_the_deal_where_operators_look(nursery, tmp_path: Path) -> None:
    debit, credit = await Host().bind(), await Host().bind()
    debit.how[("cancel", "R1")] = "REFUSED"          # R1's debit stays posted at the debit host
    await debit.up(nursery)                          # credit stays down: both deals fail at the credit call
    ledger = tmp_path / "l.duckdb"
    async with live([route_file(tmp_path, debit, credit)], ledger) as eng:
        port = eng.channels["front"].port
        assert (await ask(port, req("R1"))) == {"ref": "R1", "code": "91"}
        assert (await ask(port, req("A1"))) == {"ref": "A1", "code": "91"}      # its cancel accepted
        letter = await letter_of(ledger, "R1")
        backend = EngineBackend(eng, eng.observer)
        status = await backend.status()
        flagged = await backend.deals(DealQuery(flagged=True))
        every = await backend.deals(DealQuery())
        metrics = eng.observer.metrics.render().decode()
    assert credit.sock is not None
    credit.sock.close()                              # bound, never listened
    assert debit.counts == Counter({("post", "R1"): 1, ("cancel", "R1"): 1, ("post", "A1"): 1, ("cancel", "A1"): 1})
    assert status["routes"]["transfer"]["failed"] == 2 and status["routes"]["transfer"]["flagged"] == 1, status
    assert status["flagged_deals"] == 1, status
    table = Console(width=240, record=True, file=io.StringIO())
    table.print(render(dict(status), None, 0, {}))            # bsp status --table, bsp top
    assert "deals flagged for an operator since start: 1" in table.export_text()
    assert 'bsp_route_flagged_total{route="transfer"} 1.0' in metrics
    [(deal, reason)] = rows(ledger, "SELECT deal_id, reason FROM deals WHERE reference = 'R1'")
    assert [d["deal_id"] for d in flagged] == [deal] and len(every) == 2, (flagged, every)
    assert "; flagged for an operator: call d to debit went through and its compensation failed (refused: " in reason
    assert "it may stand at the counterpart; settle it there" in reason, reason
    assert "flagged for an operator" in letter["reason"], letter
    events = _events(ledger, deal)
    states = [s for s, _ in events]
    assert states[-3:] == ["compensation of d failed", "flagged", "failed"], states
    assert '"not_undone": ["d"]' in events[-2][1] or '"not_undone":["d"]' in events[-2][1], events[-2]
    [(other,)] = rows(ledger, "SELECT deal_id FROM deals WHERE reference = 'A1'")
    assert "flagged" not in [s for s, _ in _events(ledger, other)]
    # offline, as the operator lists them once the engine has stopped
    assert [d["deal_id"] for d in query_deals(ledger, flagged=True)] == [deal]
    out = CliRunner().invoke(app, ["deals", "--ledger", str(ledger), "--flagged", "--json"])
    assert out.exit_code == 0, out.output
    assert deal in out.output and other not in out.output, out.output
