"""The HTML report rendered by a real headless Chromium: key figures and SVG charts are in the DOM.

Skips (installs nothing) when /usr/bin/chromium is absent: ``apt-get install chromium``.
Chromium runs with networking features off and a throw-away profile.
"""
from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import trio

from engine.deal import DealRecord
from engine.ledger import open_ledger
from engine.reports import build_report, period, write

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no /usr/bin/chromium: `apt-get install -y chromium` "
                                                          "to run the headless-browser check of the HTML report")

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)


async def fill(path: Path) -> None:
    async with open_ledger(path) as ledger:
        for i in range(40):
            typ = ("BILL_PAYMENT", "TRANSFER", "TOPUP")[i % 3]
            status = "committed" if i % 8 else ("rejected" if i % 16 else "failed")
            cur = "CNY" if typ != "TRANSFER" else "USD"
            at = T0 + timedelta(minutes=i)
            await ledger.commit(DealRecord(
                deal_type=typ, route=typ.lower(), config_version="v1", channel="mainframe", status=status,
                received_at=at, finished_at=at + timedelta(milliseconds=5 + i), reference=f"R{i}",
                amount=Decimal("100.25") + i, currency=cur, party="EL01",
                response_code="00" if status == "committed" else "91", reason=None if status == "committed" else "timeout"))


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=90)


def test_chromium_renders_figures_and_charts(tmp_path: Path) -> None:
    ledger = tmp_path / "bsp.duckdb"
    trio.run(fill, ledger)
    rep = build_report("daily-summary", ledger, period("2026-03-02"))
    (page,) = write(rep, "html", tmp_path / "daily.html")
    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    # totals: 40 deals, 35 committed (every 8th is not) -> 87.50 %
    assert '<dd data-figure="deals">40</dd>' in html
    assert '<dd data-figure="success rate">87.50 %</dd>' in html
    cny = sum(Decimal("100.25") + i for i in range(40) if i % 3 != 1 and i % 8)
    assert f'<dd data-figure="committed CNY">{cny:,.2f}</dd>' in html
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"') == 3
    assert html.count('<rect class="bar"') == 3 + 2 + 9      # lines, currencies, 3 percentiles x 3 lines
    assert 'data-col="success_rate">' in html
    shot = tmp_path / "daily.png"
    r = chromium(f"--screenshot={shot}", "--window-size=1280,1100", "--hide-scrollbars", page.as_uri(),
                 profile=tmp_path / "profile2")
    assert r.returncode == 0 and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
