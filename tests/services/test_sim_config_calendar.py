"""``bsp sim traffic --config`` dates its requests by the configuration's own calendar: a deployment whose
calendar file differs from the shipped one (an extra closing, an effective-dated change) gets orders dated as
its engine reckons.  Before, the simulators read the shipped routes' calendars (routes/common/...) whatever
the configuration; a configuration that declares no such table still gets the shipped one, said once.  The
configuration's calendars are read at start-up, not while traffic runs."""
from __future__ import annotations

import random
import shutil
import socket
import threading
from datetime import date, datetime, timezone
from pathlib import Path

from typer.testing import CliRunner

from engine.cli import app
from engine.sim.services import common, remittance
from engine.sim.services.catalog import ROUTES_DIR
from engine.sim.services.common import CNY_HOLIDAYS, SimCalendars, business_day, dealing_day, using_calendars
from engine.sim.services.standalone import load_target
from formats.framing import LengthPrefixFramer

AT = "2026-11-25T02:00:00+00:00"        # Wednesday 10:00 in Shanghai: the shipped calendar deals that day
EXTRA = "2026-11-25,holiday,Exchanges closed (this deployment's calendar)\n"


def _deployment(tmp_path: Path) -> Path:
    """fund_subscription's routes with a calendar of their own: 25 November 2026 closed."""
    routes = tmp_path / "routes"
    for folder in ("common", "fund_subscription"):
        shutil.copytree(ROUTES_DIR / folder, routes / folder)
    csv = routes / "common" / "calendars" / "cn_exchange.csv"
    csv.write_text(csv.read_text(encoding="utf-8") + EXTRA, encoding="utf-8")
    return routes / "fund_subscription"


def _engine_stand_in(codec_in, codec_out, got: list[dict]) -> tuple[socket.socket, threading.Thread]:
    """A listener on a free loopback port that reads one request (2-byte length prefix), keeps it decoded
    and answers 00, as the engine's fsub_mainframe channel would."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            framer = LengthPrefixFramer(2)
            while not got:
                data = conn.recv(65536)
                if not data:
                    return
                for frame in framer.feed(data):
                    req = codec_in.decode(frame)
                    got.append(req)
                    conn.sendall(framer.frame(codec_out.encode(
                        {"trace_no": str(req.get("trace_no") or "")[-16:], "resp_code": "00", "host_ref": "H1",
                         "amount": req.get("amount"), "currency": "CNY", "message_text": "done"})))
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return srv, thread


def test_sim_traffic_dates_the_orders_by_the_configurations_calendar(tmp_path: Path) -> None:
    config = _deployment(tmp_path)
    target = load_target(["fund_subscription"], [config])
    got: list[dict] = []
    srv, thread = _engine_stand_in(target.codec("FundSubReq"), target.codec("MfRsp"), got)
    with srv:
        port = srv.getsockname()[1]
        r = CliRunner().invoke(app, ["sim", "traffic", "fund_subscription", "--config", str(config), "--count", "1",
                                     "--mix", "good", "--connections", "1", "--at", AT,
                                     "--to", f"127.0.0.1:{port}"], catch_exceptions=False)
        thread.join(30)
    assert got, r.output
    # the shipped calendar deals on the 25th; this deployment's is closed that day: its next dealing day
    assert dealing_day(at=datetime.fromisoformat(AT)) == 20261125
    assert int(got[0]["trade_date"]) == 20261126, (got[0], r.output)
    assert "declares no table" not in r.output


def test_a_configuration_without_the_table_gets_the_shipped_calendar_said_once(tmp_path: Path) -> None:
    (tmp_path / "other.route").write_text('table holidays = csv "h.csv" key date\n', encoding="utf-8")
    (tmp_path / "h.csv").write_text("date,kind\n2026-11-25,holiday\n", encoding="utf-8")
    said: list[str] = []
    cals = SimCalendars({}, "other.route", say=said.append)
    with using_calendars(cals):
        days = [dealing_day(at=datetime(2026, 11, 25, 2, tzinfo=timezone.utc)) for _ in range(3)]
        assert business_day(date(2026, 4, 3)) == date(2026, 4, 7)      # the shipped TARGET2: Easter closed
    assert days == [20261125] * 3
    assert cals.notes == said and len(said) == 2, said
    assert said[0].startswith("note: other.route declares no table cn_exchange: ")
    assert "routes/common/dealing_days.route" in said[0] and "table target2" in said[1]


def test_the_configurations_calendars_are_read_at_start_up() -> None:
    """Entering ``using_calendars`` (as bsp sim traffic and bsp demo do before any traffic) reads the
    configuration's calendar tables; a remittance made afterwards compiles no route file and reads no CSV.
    Before, its calendar compiled remittance.route (~0.5 s) at the first remittance made, in mid-traffic."""
    target = load_target(["remittance"], [ROUTES_DIR / "remittance"])
    common._declaration.cache_clear()
    common._TABLES.clear()
    with using_calendars(target.calendars):
        loaded = set(common._TABLES)
        assert {k[1] for k in loaded} == {CNY_HOLIDAYS.table}
        req = remittance.make("good", 1, random.Random(0), "AAAAA")
        assert common._declaration.cache_info().misses == 0
        assert set(common._TABLES) == loaded
    assert req.values["value_date"] >= 20260101
