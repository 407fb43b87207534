"""engine.metrics: own registry, every family rendered, exact values, bad labels refused."""
from __future__ import annotations

import pytest
import trio
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from engine.metrics import Metrics


def families(m: Metrics) -> dict:
    return {f.name: f for f in text_string_to_metric_families(m.render().decode())}


def test_each_metrics_object_has_its_own_registry():
    a, b = Metrics(), Metrics()
    a.route_started("bill_payment")
    assert a.value("bsp_route_received_total", {"route": "bill_payment"}) == 1
    assert b.value("bsp_route_received_total", {"route": "bill_payment"}) is None
    assert REGISTRY.get_sample_value("bsp_route_received_total", {"route": "bill_payment"}) is None


def test_route_lifecycle():
    m = Metrics()
    m.route_started("bill_payment")
    m.route_started("bill_payment")
    assert m.value("bsp_route_in_flight", {"route": "bill_payment"}) == 2
    m.route_finished("bill_payment", "committed", 0.004)
    m.route_finished("bill_payment", "rejected", 0.2)
    assert m.value("bsp_route_in_flight", {"route": "bill_payment"}) == 0
    assert m.value("bsp_route_outcomes_total", {"route": "bill_payment", "outcome": "rejected"}) == 1
    assert m.value("bsp_route_latency_seconds_count", {"route": "bill_payment"}) == 2
    assert m.value("bsp_route_latency_seconds_bucket", {"route": "bill_payment", "le": "0.005"}) == 1
    with pytest.raises(ValueError, match="outcome 'ok' is not one of committed, rejected, failed"):
        m.route_finished("bill_payment", "ok", 1)


async def test_track_route_counts_failures_with_trio_clock(autojump_clock):
    m = Metrics()
    with m.track_route("r", clock=trio.current_time) as o:
        await trio.sleep(0.3)
        o.outcome = "rejected"
    with pytest.raises(KeyError):
        with m.track_route("r", clock=trio.current_time):
            raise KeyError("x")
    assert m.value("bsp_route_outcomes_total", {"route": "r", "outcome": "rejected"}) == 1
    assert m.value("bsp_route_outcomes_total", {"route": "r", "outcome": "failed"}) == 1
    assert m.value("bsp_route_latency_seconds_sum", {"route": "r"}) == pytest.approx(0.3)


def test_channels_ledger_reloads_admin_render():
    m = Metrics()
    m.call_started("biller")
    m.call_finished("biller", 0.012)
    m.call_started("biller")
    m.call_finished("biller", 3.0, error_kind="timeout")
    m.reconnected("biller")
    m.circuit("biller", "open")
    m.ledger_committed(64, 0.003)
    m.reload_done(True, "admin")
    m.reload_done(False, "watch")
    m.auth_failed("wrong")
    m.admin_request("/status", 200)
    m.config_loaded("abc123")
    m.config_loaded("def456")
    fams = families(m)
    for name in ["bsp_route_received", "bsp_channel_received", "bsp_channel_errors", "bsp_channel_in_flight",
                 "bsp_channel_latency_seconds", "bsp_channel_reconnects", "bsp_channel_circuit_state",
                 "bsp_ledger_batch_size", "bsp_ledger_commit_seconds", "bsp_reloads",
                 "bsp_admin_auth_failures", "bsp_admin_requests", "bsp_config_info"]:
        assert name in fams, name
    assert m.value("bsp_channel_errors_total", {"channel": "biller", "kind": "timeout"}) == 1
    assert m.value("bsp_channel_in_flight", {"channel": "biller"}) == 0
    assert m.value("bsp_channel_circuit_state", {"channel": "biller"}) == 2
    assert m.value("bsp_ledger_batch_size_bucket", {"le": "50.0"}) == 0
    assert m.value("bsp_ledger_batch_size_bucket", {"le": "100.0"}) == 1
    assert m.value("bsp_reloads_total", {"result": "failed", "source": "watch"}) == 1
    assert m.value("bsp_config_info", {"version": "abc123"}) is None
    assert m.value("bsp_config_info", {"version": "def456"}) == 1
    with pytest.raises(ValueError, match="circuit state 'broken'"):
        m.circuit("biller", "broken")
    with pytest.raises(ValueError, match="auth failure reason"):
        m.auth_failed("bad")
