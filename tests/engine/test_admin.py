"""The admin API over real loopback HTTP (httpx), with a real DuckDB ledger behind GET /deals.

``LedgerBackend`` below stands in for the ENGINE side of ``AdminBackend`` (the
runtime implements it); everything on the admin side is the real thing.
"""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

from conftest_tls import pki  # noqa: F401  (fixture)
from engine.access import AccessList
from engine.admin import (AdminApp, AdminBackend, AdminConfigError, DealQuery, Readiness,
                          ReloadResult, TokenAuth, build_openapi, load_token, serve_admin, write_token)
from engine.admin.endpoints import ENDPOINTS
from engine.deal import DealRecord
from engine.ledger import open_ledger
from engine.ledger_query import query_deals
from engine.metrics import CONTENT_TYPE, Metrics
from engine.tls import client_context, server_context

TOKEN = "t0k3n-" + "x" * 26
T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=timezone.utc)


class LedgerBackend:
    """The engine side: deals from a real ledger file, a scripted reload outcome."""

    def __init__(self, ledger_path: Path) -> None:
        self.ledger_path = ledger_path
        self.is_ready = Readiness(True)
        self.next_reload = ReloadResult(True, False, "v2", "v1", {"routes": {"added": ["refund"], "kept": ["bill_payment"]}})
        self.reloads: list[bool] = []
        self.reload_gate: trio.Event | None = None
        self.deal_queries: list[DealQuery] = []

    async def status(self):
        return {"version": "0.1.0", "config_version": "v1", "channels": {"mainframe": {"state": "listening"}}}

    async def ready(self):
        return self.is_ready

    async def reload(self, dry_run):
        self.reloads.append(dry_run)
        if self.reload_gate is not None:
            await self.reload_gate.wait()
        return ReloadResult(**{**asdict(self.next_reload), "dry_run": dry_run})

    async def deals(self, query):
        self.deal_queries.append(query)
        return await trio.to_thread.run_sync(partial(query_deals, self.ledger_path, **asdict(query)))

    async def dead_letters(self, query):
        rows = [{"channel": "mainframe", "route": None, "error": "no route for txn_code ZZ01",
                 "received_at": T0, "raw_hex": "5a5a3031"}]
        return [r for r in rows if query.channel in (None, r["channel"])][: query.limit]

    async def deal(self, deal_id):
        from engine.ledger_query import get_deal
        return await trio.to_thread.run_sync(get_deal, self.ledger_path, deal_id)

    async def dead_letter(self, letter_id):
        if letter_id != "d-1":
            return None
        return {"id": letter_id, "status": "new", "channel": "mainframe", "at": T0, "raw_base64": "WlowMQ=="}

    async def retry_dead_letter(self, letter_id):
        if letter_id != "d-1":
            return None
        return {"id": letter_id, "ok": True, "outcome": "committed", "at": T0}

    async def resolve_deal(self, deal_id, outcome, note, by, client):
        from engine.deal_resolve import resolve_in_file
        return await trio.to_thread.run_sync(partial(resolve_in_file, self.ledger_path, deal_id, outcome, note, by,
                                                     None))

    async def snapshot_ledger(self):
        from engine.ledger_snapshot import take_snapshot
        return await trio.to_thread.run_sync(take_snapshot, self.ledger_path)


@pytest.fixture
async def ledger_path(tmp_path):
    path = tmp_path / "bsp.duckdb"
    async with open_ledger(path, max_wait=0) as ledger:
        for i in range(5):
            await ledger.commit(DealRecord(
                deal_type="BILL_PAYMENT", route="bill_payment", config_version="v1", channel="mainframe",
                status="committed" if i != 3 else "rejected", received_at=T0 + timedelta(minutes=i),
                finished_at=T0 + timedelta(minutes=i, milliseconds=9), reference=f"TRACE{i:04d}",
                amount=Decimal("120.50") + i, currency="CNY", party="EL01", response_code="00",
                request={"amount": Decimal("120.50") + i}, response={"resp_code": "00"}))
    return path


@pytest.fixture
async def admin(nursery, ledger_path):
    backend = LedgerBackend(ledger_path)
    metrics = Metrics()
    app = AdminApp(backend, TokenAuth(TOKEN), metrics)
    port = await nursery.start(partial(serve_admin, app, "127.0.0.1", 0))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                 headers={"authorization": f"Bearer {TOKEN}"}) as client:
        yield client, backend, metrics


def test_an_admin_api_in_clear_off_loopback_warns_with_the_port_it_is_bound_to(caplog):
    """Told once listening, with the bound port (`0.0.0.0:0` in the settings used to be logged as port 0).
    No socket is opened off loopback here: the warning's hook is given the port as serve_http would."""
    from engine.admin.app import _WarnInClear

    got = []

    class Status:
        def started(self, port=None):
            got.append(port)

    with caplog.at_level("WARNING", logger="bsp.admin"):
        _WarnInClear(Status(), "0.0.0.0").started(42845)
    assert got == [42845]
    assert [r.getMessage() for r in caplog.records] == [
        "admin API on 0.0.0.0:42845 without TLS: bearer tokens cross the network in clear; "
        "give it a TLS certificate or bind to 127.0.0.1"]


def test_backend_double_satisfies_the_protocol(tmp_path):
    assert isinstance(LedgerBackend(tmp_path), AdminBackend)


async def test_health_needs_no_token(admin):
    client, _, _ = admin
    r = await client.get("/health", headers={"authorization": ""})
    assert r.status_code == 200 and r.json() == {"status": "ok"}


async def test_every_other_endpoint_refuses_without_a_valid_token(admin):
    client, _, metrics = admin
    protected = [e for e in ENDPOINTS if e.auth]
    assert len(protected) == 18
    cases = [({}, "missing"), ({"authorization": "Basic dXNlcjpwYXNz"}, "malformed"),
             ({"authorization": "Bearer " + TOKEN[:-1] + "y"}, "wrong")]
    async with httpx.AsyncClient(base_url=client.base_url) as anonymous:
        for e in protected:
            for headers, reason in cases:
                r = await anonymous.request(e.method, e.path, headers=headers)
                assert r.status_code == 401, (e.path, headers)
                assert r.headers["www-authenticate"] == 'Bearer realm="bsp-admin"'
                assert r.headers["content-type"] == "application/problem+json"
                assert r.json()["reason"] == reason
        r = await anonymous.get("/no-such-thing")
        assert r.status_code == 401        # unknown paths reveal nothing without a token
    for _, reason in cases:
        assert metrics.value("bsp_admin_auth_failures_total", {"reason": reason}) == len(protected) + (reason == "missing")
    assert (await client.get("/no-such-thing")).status_code == 404   # with the token: the real answer


async def test_a_guessed_token_is_logged_with_the_client_address_once_a_minute(admin, caplog):
    # before: refusals were only counted in a metric; the log said nothing of who was trying
    client, _, metrics = admin
    wrong = "Bearer " + TOKEN[:-1] + "y"
    with caplog.at_level("WARNING", logger="bsp.admin"):
        async with httpx.AsyncClient(base_url=client.base_url) as anonymous:
            for _ in range(50):
                assert (await anonymous.get("/status", headers={"authorization": wrong})).status_code == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "bsp.admin"]
    assert lines == ["admin: refused GET /status from 127.0.0.1: wrong token"]
    assert metrics.value("bsp_admin_auth_failures_total", {"reason": "wrong"}) == 50
    assert TOKEN[:-1] not in caplog.text


async def test_status_and_ready(admin):
    client, backend, _ = admin
    r = await client.get("/status")
    assert r.status_code == 200 and r.json()["channels"]["mainframe"]["state"] == "listening"
    assert (await client.get("/ready")).json() == {"ready": True}
    backend.is_ready = Readiness(False, "ledger recovery running: 3 deals left")
    r = await client.get("/ready")
    assert r.status_code == 503 and "ledger recovery running" in r.json()["detail"]


async def test_reload_dry_run_and_real(admin):
    client, backend, metrics = admin
    r = await client.post("/reload", params={"dry_run": "1"})
    assert r.status_code == 200 and r.json()["dry_run"] is True and r.json()["plan"]["routes"]["added"] == ["refund"]
    r = await client.post("/reload")
    assert r.status_code == 200 and r.json() == {
        "ok": True, "dry_run": False, "version": "v2", "previous_version": "v1",
        "plan": {"routes": {"added": ["refund"], "kept": ["bill_payment"]}}, "diagnostics": []}
    assert backend.reloads == [True, False]
    assert metrics.value("bsp_reloads_total", {"result": "ok", "source": "admin"}) == 1   # dry runs not counted

    backend.next_reload = ReloadResult(False, False, None, "v1", {}, (
        "routes/bill.route:12:5: error[E012]: unknown channel `billr`",))
    r = await client.post("/reload")
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    doc = r.json()
    assert "1 problem;" in doc["detail"] and "(version v1) is kept" in doc["detail"]
    assert doc["diagnostics"] == ["routes/bill.route:12:5: error[E012]: unknown channel `billr`"]
    assert metrics.value("bsp_reloads_total", {"result": "failed", "source": "admin"}) == 1

    r = await client.post("/reload", params={"dry_run": "maybe"})
    assert r.status_code == 400 and r.json()["parameter"] == "dry_run"
    assert (await client.get("/reload")).status_code == 405


async def test_concurrent_reload_is_refused(admin):
    client, backend, _ = admin
    backend.reload_gate = trio.Event()
    async with trio.open_nursery() as nursery:
        first: list[httpx.Response] = []

        async def slow():
            first.append(await client.post("/reload"))
        nursery.start_soon(slow)
        while not backend.reloads:
            await trio.sleep(0.001)
        r = await client.post("/reload")
        assert r.status_code == 409 and "another reload is running" in r.json()["detail"]
        backend.reload_gate.set()
    assert first[0].status_code == 200


async def test_deals_from_the_ledger(admin):
    client, backend, _ = admin
    r = await client.get("/deals", params={"limit": "2"})
    assert r.status_code == 200
    doc = r.json()
    assert doc["count"] == 2 and [d["reference"] for d in doc["deals"]] == ["TRACE0004", "TRACE0003"]
    assert doc["deals"][0]["amount"] == "124.50"        # exact decimal string, never a float
    r = await client.get("/deals", params={"status": "rejected"})
    assert [d["reference"] for d in r.json()["deals"]] == ["TRACE0003"]
    r = await client.get("/deals", params={"since": "2026-03-01T09:01:00Z", "until": "2026-03-01T09:03:00"})
    assert [d["reference"] for d in r.json()["deals"]] == ["TRACE0002", "TRACE0001"]
    assert backend.deal_queries[-1].until == datetime(2026, 3, 1, 9, 3, tzinfo=timezone.utc)
    # `bsp deals --live --currency/--party`: the currency in any case, the party exactly as stored
    r = await client.get("/deals", params={"currency": "cny", "party": "EL01", "status": "rejected"})
    assert r.status_code == 200, r.text
    assert [d["reference"] for d in r.json()["deals"]] == ["TRACE0003"]
    for params in ({"currency": "USD"}, {"party": "el01"}, {"party": "EL0"}):
        r = await client.get("/deals", params=params)
        assert r.status_code == 200 and r.json()["deals"] == [], params


async def test_deals_page_by_cursor_without_skipping_or_repeating_deals_received_at_the_same_time(
        nursery, tmp_path) -> None:
    """Newest first by (received_at, deal_id): three deals of the same microsecond and pages of two, every
    deal listed once, in the order of one unpaged query; the last page's `next` is null; a bad cursor is a
    400 naming the parameter."""
    path = tmp_path / "ties.duckdb"
    async with open_ledger(path, max_wait=0) as ledger:
        for i, minute in enumerate([0, 1, 1, 1, 2, 3, 3]):
            await ledger.commit(DealRecord(
                deal_type="ECHO", route="echo", config_version="v1", channel="front", status="committed",
                received_at=T0 + timedelta(minutes=minute), finished_at=T0 + timedelta(minutes=minute, seconds=1),
                reference=f"R{i}", amount=None, currency=None, party=None, response_code="00",
                request={}, response={}))
    app = AdminApp(LedgerBackend(path), TokenAuth(TOKEN), Metrics())
    port = await nursery.start(partial(serve_admin, app, "127.0.0.1", 0))
    every = [d["reference"] for d in query_deals(path, limit=None)]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                 headers={"authorization": f"Bearer {TOKEN}"}) as client:
        got, pages, cursor = [], 0, None
        while True:
            r = await client.get("/deals", params={"limit": "2", **({"cursor": cursor} if cursor else {})})
            assert r.status_code == 200, r.text
            got += [d["reference"] for d in r.json()["deals"]]
            pages += 1
            cursor = r.json()["next"]
            if cursor is None:
                break
        r = await client.get("/deals", params={"cursor": "yesterday"})
    assert got == every and len(set(got)) == 7 and pages == 4, (got, every)
    assert r.status_code == 400 and r.json()["parameter"] == "cursor", r.json()
    assert "the `next` of a previous page" in r.json()["detail"]


async def test_deal_query_errors_name_the_parameter(admin):
    client, _, _ = admin
    for params, param, needle in [
        ({"since": "yesterday"}, "since", "expected an ISO 8601 time such as 2026-11-02T09:00:00Z, got 'yesterday'"),
        ({"limit": "0"}, "limit", "a number from 1 to 1000"),
        ({"limit": "ten"}, "limit", "a whole number"),
        ({"status": "done"}, "status", "one of committed, rejected, failed"),
        ({"colour": "red"}, "colour", "unknown query parameter 'colour' for GET /deals; allowed: type, status"),
        ({"since": "2026-03-02", "until": "2026-03-01"}, "since", "must be before until"),
    ]:
        r = await client.get("/deals", params=params)
        assert r.status_code == 400, params
        assert r.json()["parameter"] == param and needle in r.json()["detail"], r.json()
    r = await client.get("/deals?limit=1&limit=2")
    assert r.status_code == 400 and "given 2 times" in r.json()["detail"]


async def test_dead_letters(admin):
    client, _, _ = admin
    r = await client.get("/dead-letters", params={"channel": "mainframe"})
    assert r.json()["count"] == 1 and r.json()["dead_letters"][0]["received_at"] == "2026-03-01T09:00:00+00:00"
    assert (await client.get("/dead-letters", params={"channel": "other"})).json()["count"] == 0


async def test_metrics_endpoint_counts_admin_traffic(admin):
    client, _, _ = admin
    await client.get("/status")
    r = await client.get("/metrics")
    assert r.headers["content-type"] == CONTENT_TYPE and CONTENT_TYPE.startswith("text/plain; version=")
    fams = {f.name: f for f in text_string_to_metric_families(r.text)}
    samples = {(s.labels["endpoint"], s.labels["status"]): s.value for s in fams["bsp_admin_requests"].samples
               if s.name == "bsp_admin_requests_total"}
    assert samples[("/status", "200")] == 1


async def test_one_dead_letter_with_its_message(admin):
    client, _, _ = admin
    r = await client.get("/dead-letters/d-1")
    assert r.status_code == 200 and r.json()["raw_base64"] == "WlowMQ==" and r.json()["id"] == "d-1"
    r = await client.get("/dead-letters/nope")
    assert r.status_code == 404 and "no dead letter 'nope'" in r.json()["detail"]


async def test_openapi_describes_every_route(admin):
    client, _, _ = admin
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    served = {(e.method.lower(), e.path) for e in ENDPOINTS}
    described = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served == described
    assert doc["paths"]["/health"]["get"]["security"] == []
    assert "401" in doc["paths"]["/deals"]["get"]["responses"]
    deal_params = {p["name"] for p in doc["paths"]["/deals"]["get"]["parameters"]}
    assert deal_params == {"type", "status", "reference", "currency", "party", "flagged", "resolved", "held", "statement_breaks", "since", "until",
                           "limit", "cursor"}
    # every $ref resolves
    refs = []

    def walk(node):
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(doc)
    assert refs and all(r.split("/")[-1] in doc["components"]["schemas"] for r in refs)
    assert build_openapi("x")["info"]["version"] == "x"


async def test_admin_over_mutual_tls(pki, nursery, ledger_path):
    metrics = Metrics()
    app = AdminApp(LedgerBackend(ledger_path), TokenAuth(TOKEN), metrics)
    ctx = server_context(pki.server_cert, pki.server_key, ca=pki.ca, client_cert="required")
    port = await nursery.start(partial(serve_admin, app, "127.0.0.1", 0, ctx,
                                       access=AccessList.parse(["cn:MAINFRAME01"])))
    headers = {"authorization": f"Bearer {TOKEN}"}
    good = client_context(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
    async with httpx.AsyncClient(verify=good, headers=headers) as client:
        assert (await client.get(f"https://localhost:{port}/status")).status_code == 200
    bad = client_context(ca=pki.ca, cert=pki.intruder_cert, key=pki.intruder_key)
    async with httpx.AsyncClient(verify=bad, headers=headers) as client:
        r = await client.get(f"https://localhost:{port}/status")
        assert r.status_code == 403 and "INTRUDER" in r.json()["detail"]
    assert metrics.value("bsp_admin_auth_failures_total", {"reason": "refused"}) == 1


# ------------------------------------------------------------------ tokens

def test_load_token_from_file_and_env(tmp_path):
    f = tmp_path / "admin.token"
    token = write_token(f)
    assert f.stat().st_mode & 0o777 == 0o600
    assert load_token(f) == token
    assert load_token(None, environ={"BSP_ADMIN_TOKEN": f"  {TOKEN}\n"}) == TOKEN


def test_token_problems_are_explained(tmp_path):
    with pytest.raises(AdminConfigError, match=r"no admin token: set \$BSP_ADMIN_TOKEN"):
        load_token(None, environ={})
    with pytest.raises(AdminConfigError, match="does not exist") as info:
        load_token(tmp_path / "missing.token")
    assert "missing.token" in str(info.value)
    short = tmp_path / "short.token"
    short.write_text("abc\n")
    with pytest.raises(AdminConfigError, match="has 3 characters; at least 16"):
        load_token(short)
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    with pytest.raises(AdminConfigError, match="is empty"):
        load_token(empty)
    with pytest.raises(AdminConfigError, match="spaces"):
        TokenAuth("a b c d e f g h i j k")


async def test_resolve_refuses_a_deal_not_flagged_and_a_bad_body(admin):
    client, _, _ = admin
    deal_id = (await client.get("/deals", params={"limit": "1"})).json()["deals"][0]["deal_id"]
    r = await client.post(f"/deals/{deal_id}/resolve", json={"outcome": "applied", "note": "settled"})
    assert r.status_code == 409 and r.json()["why"] == "not_flagged", r.text
    assert f"deal {deal_id} is not flagged for an operator" in r.json()["detail"]
    r = await client.post(f"/deals/{deal_id}/resolve", json={"outcome": "applied", "note": ""})
    assert r.status_code == 400 and r.json()["field"] == "note", r.text
    r = await client.post(f"/deals/{deal_id}/resolve", json=["applied"])
    assert r.status_code == 400 and "must be a JSON object" in r.json()["detail"], r.text
    r = await client.post("/deals/0123/resolve", json={"outcome": "applied", "note": "n"})
    assert r.status_code == 400 and "too short" in r.json()["detail"], r.text
    r = await client.post("/deals/0123456789abcdef/resolve", json={"outcome": "applied", "note": "n"})
    assert r.status_code == 404 and "no deal '0123456789abcdef'" in r.json()["detail"], r.text
    r = await client.get("/deals", params={"resolved": "1"})
    assert r.status_code == 400 and r.json()["parameter"] == "resolved", r.text


async def test_a_token_guessing_flood_is_summed_up_after_its_minute_without_secrets_or_card_numbers(
        nursery, ledger_path, caplog, mock_clock):
    # before: the refusals counted after the first line were written only when another came a minute
    # later; a flood that stopped left its count unsaid.  The summary goes through the log's scrubber
    # as every line does: no token, no card number, whatever the client put in its path.
    from engine.admin.app import REFUSAL_LOG_EVERY
    from engine.ops.logs import Scrubber, TextFormatter
    pan = "4111111111111111"
    app = AdminApp(LedgerBackend(ledger_path), TokenAuth(TOKEN), Metrics())
    port = await nursery.start(partial(serve_admin, app, "127.0.0.1", 0))
    with caplog.at_level("WARNING", logger="bsp.admin"):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as anonymous:
            wrong = {"authorization": "Bearer " + TOKEN[:-1] + "y"}
            for _ in range(50):
                assert (await anonymous.get(f"/deals/{pan}/{TOKEN}", headers=wrong)).status_code == 401
        assert len([r for r in caplog.records if r.name == "bsp.admin"]) == 1
        mock_clock.jump(REFUSAL_LOG_EVERY + 1)
        await trio.testing.wait_all_tasks_blocked()
    scrub = TextFormatter(Scrubber([TOKEN]))
    lines = [scrub.format(r) for r in caplog.records if r.name == "bsp.admin"]
    assert len(lines) == 2, lines
    assert "admin: 49 more requests refused since " in lines[1] and "last from 127.0.0.1: GET /deals/" in lines[1]
    assert lines[1].endswith(": wrong token"), lines[1]
    assert not any(pan in line or TOKEN in line for line in lines), lines
    assert "411111******1111" in lines[1]
