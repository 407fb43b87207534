"""The counters the runbook's alerts watch with increase() are on /metrics at 0 from the start, not only from
their first event.  Before, `bsp_reloads_total`, `bsp_admin_auth_failures_total`, `bsp_channel_errors_total`,
`bsp_route_flagged_total` ... had no series until something happened: the first failed reload after a start made
`bsp_reloads_total{result="failed"}` appear at 1, which is no increase to Prometheus (it needs a sample before
the event), so `increase(bsp_reloads_total{result="failed"}[10m]) > 0` (docs/runbook.md, BspReloadFailed) never
fired for it; the same for a counterpart's first timeouts, the first refused admin request.

A real engine (run_live with its admin API, as `bsp run` runs it) whose route calls a loopback counterpart."""
from __future__ import annotations

import re
from pathlib import Path

from opskit import CALL, json_counterpart, serve_with_admin

TOKEN = "ops-alert-series-token-" + "s" * 20


def _sample(text: str, name: str, labels: str) -> float | None:
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


async def test_the_alerted_counters_are_there_at_zero_before_their_first_event(nursery, tmp_path: Path) -> None:
    back = await json_counterpart(nursery, lambda req: {"status": "OK", "via": "back"})
    route = tmp_path / "pay.route"
    route.write_text(CALL % {"back": back, "timeout": "10s", "reply": "via = post.via"})
    engine, admin = await serve_with_admin(route, tmp_path, nursery, TOKEN)
    async with admin as client:
        text = (await client.get("/metrics")).text
        for source in ("admin", "signal", "watch"):
            assert _sample(text, "bsp_reloads_total", f'result="failed",source="{source}"') == 0, text
            assert _sample(text, "bsp_reloads_total", f'result="ok",source="{source}"') == 0, text
        for reason in ("missing", "malformed", "wrong", "refused", "forbidden"):
            assert _sample(text, "bsp_admin_auth_failures_total", f'reason="{reason}"') == 0, text
        for kind in ("unreachable", "timeout", "lost"):
            assert _sample(text, "bsp_channel_errors_total", f'channel="back",kind="{kind}"') == 0, text
        assert _sample(text, "bsp_channel_errors_total", 'channel="front",kind="timeout"') is None  # listening
        assert _sample(text, "bsp_channel_capped_total", 'channel="front"') == 0, text
        assert _sample(text, "bsp_channel_evictions_total", 'channel="front",reason="idle"') == 0, text
        assert _sample(text, "bsp_channel_client_refused_total", 'channel="front"') == 0, text
        for outcome in ("committed", "rejected", "failed", "duplicate"):
            assert _sample(text, "bsp_route_outcomes_total", f'outcome="{outcome}",route="pay"') == 0, text
        for name in ("bsp_route_flagged_total", "bsp_route_key_conflicts_total", "bsp_route_statement_breaks_total"):
            assert _sample(text, name, 'route="pay"') == 0, text

        # a failed reload then counts from that 0 (what increase() sees), the ok ones likewise
        route.write_text("route broken {")
        assert (await client.post("/reload")).status_code == 422
        text = (await client.get("/metrics")).text
        assert _sample(text, "bsp_reloads_total", 'result="failed",source="admin"') == 1, text
        assert (await client.get("/metrics", headers={"authorization": "Bearer " + "x" * 40})).status_code == 401
        text = (await client.get("/metrics")).text
        assert _sample(text, "bsp_admin_auth_failures_total", 'reason="wrong"') == 1, text
    engine.drain()
