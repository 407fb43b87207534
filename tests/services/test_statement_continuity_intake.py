"""Statement continuity at intake (the `continuity` step of the account consolidation routes): a statement that
does not follow on is posted all the same (00) and its deal carries an event ``statement break``; the chain is
kept across an engine restart and a ``bsp ledger archive`` (real engine, real codecs, one DuckDB ledger file)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import duckdb
import orjson
import trio

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.reconcile.continuity import head_mt940
from engine.sim.services.account_consolidation import SERVICES
from engine.sim.services.catalog import route_files
from engine.sim.services.harness import running_services
from engine.sim.services.registry import services_registry
from engine.statement_chains import Chains, existing_chains
from formats.framing import make_framer
from tests.services.test_statement_continuity_ledger import ACCOUNT, D, mt940

DAY = dt.timedelta(days=1)


async def _run(ledger_path: Path, statements: list[dict], audit_key: bytes | None = None,
               pipelined: bool = False, files: list[Path] | None = None) -> tuple[list[dict], dict]:
    """One engine run on ``ledger_path``: the statements each on its own connection (or all on one, written at
    once: ``pipelined``); the acks and the engine's chains as `bsp status` shows them."""
    registry = services_registry()
    program = compile_paths(files or route_files("account_consolidation"), registry).program
    acks = []
    async with open_ledger(ledger_path, audit_key=audit_key) as ledger:
        async with running_services(program, registry, ledger, SERVICES) as rig:
            codec = rig.switchboard.ctx.codec("Mt940")
            groups = [statements] if pipelined else [[s] for s in statements]
            for group in groups:
                framer = make_framer("length4")
                stream = await trio.open_tcp_stream("127.0.0.1", rig.port("ac_swift"))
                async with stream:
                    await stream.send_all(b"".join(framer.frame(codec.encode(v)) for v in group))
                    replies: list[bytes] = []
                    with trio.fail_after(30):
                        while len(replies) < len(group):
                            replies += framer.feed(await stream.receive_some(65536))
                acks += [orjson.loads(r) for r in replies]
            view = existing_chains(ledger).view()
    return acks, view


def _events(ledger: Path, state: str) -> dict[str, dict]:
    """reference -> the detail of its deal's event ``state``."""
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        rows = con.execute("SELECT d.reference, e.detail FROM deal_events e JOIN deals d ON d.deal_id = e.deal_id "
                           "WHERE e.to_state = ?", [state]).fetchall()
    finally:
        con.close()
    return {ref: orjson.loads(detail) for ref, detail in rows}


async def test_a_break_after_a_restart_is_posted_and_named_on_its_deal(tmp_path):
    ledger = tmp_path / "bsp.duckdb"
    acks, view = await _run(ledger, [
        mt940("STA0101", "00101/001", "1000.00", ["250.50", "-0.50"], "1250.00", D),
        mt940("STA0102", "00102/001", "1250.00", ["-50.00"], "1200.00", D + DAY),
    ])
    assert [a["code"] for a in acks] == ["00", "00"]
    assert (view["statements"], view["breaks"]) == (2, 0)
    # a new engine on the same ledger file: 104 (103 never came) opening 1.00 off what 102 closed with
    acks, view = await _run(ledger, [
        mt940("STA0104", "00104/001", "1201.00", ["9.00"], "1210.00", D + 3 * DAY),
        mt940("STA0105", "00105/001", "1210.00", [], "1210.00", D + 4 * DAY),
    ])
    assert [a["code"] for a in acks] == ["00", "00"]          # posted all the same: never refused for a break
    assert (view["chains"], view["statements"], view["breaks"], view["breaks_by_kind"]) == (1, 2, 1, {"gap": 1})
    breaks = _events(ledger, "statement break")
    assert list(breaks) == ["STA0104"]
    b = breaks["STA0104"]
    assert (b["chain"], b["key"], b["kinds"]) == ("statements", "M0002", ["gap", "balance_break"])
    assert b["previous"] == {"statement": "102/1", "reference": "STA0102", "closing": "1200.00", "currency": "EUR",
                             "day": "2026-11-24"}
    assert b["statement"] == {"statement": "104/1", "reference": "STA0104", "opening": "1201.00",
                              "closing": "1210.00", "currency": "EUR", "day": "2026-11-26"}
    assert "statement(s) 103 missing between statement 102/1 (STA0102) and statement 104/1 (STA0104)" in b["note"]
    assert "(difference +1.00)" in b["note"]
    assert set(_events(ledger, "statement link")) == {"STA0101", "STA0102", "STA0104", "STA0105"}
    # the clerk's list: bsp deals --statement-breaks (the ledger file, after the engine stopped)
    from typer.testing import CliRunner
    from engine.cli import app
    result = CliRunner().invoke(app, ["deals", "--ledger", str(ledger), "--statement-breaks", "--json"])
    assert result.exit_code == 0, result.output
    assert [orjson.loads(line)["reference"] for line in result.stdout.splitlines()] == ["STA0104"]
    # the personal account number is in no event: the member number names the account
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM deal_events WHERE detail LIKE ?", [f"%{ACCOUNT}%"]).fetchone() == (0,)
    finally:
        con.close()


async def test_a_late_statement_in_one_batch_with_the_next_makes_no_break(tmp_path):
    """104 and 103 written at once on one connection, after 102: judged together in their order, both follow on."""
    ledger = tmp_path / "bsp.duckdb"
    await _run(ledger, [mt940("STA0102", "00102/001", "1000.00", [], "1000.00", D)])
    acks, view = await _run(ledger, [
        mt940("STA0104", "00104/001", "1005.00", ["-5.00"], "1000.00", D + 2 * DAY),
        mt940("STA0103", "00103/001", "1000.00", ["5.00"], "1005.00", D + DAY),
    ], pipelined=True)
    assert [a["code"] for a in acks] == ["00", "00"]
    assert _events(ledger, "statement break") == {}
    assert (view["statements"], view["breaks"]) == (2, 0)


async def test_the_chain_goes_on_across_an_archive(tmp_path):
    """101 and 102 are moved out by `bsp ledger archive`; a new engine then gets 104: 103 is missing."""
    from engine.ledger_archive import prepare

    key = bytes(range(32))
    ledger = tmp_path / "bsp.duckdb"
    await _run(ledger, [mt940("STA0101", "00101/001", "1000.00", [], "1000.00", D),
                        mt940("STA0102", "00102/001", "1000.00", ["-1.00"], "999.00", D + DAY)], audit_key=key)
    job = prepare(ledger, tmp_path / "arc-1.duckdb", dt.datetime.now(dt.timezone.utc), key)
    try:
        assert not job.refusals, job.refusals
        job.run()
    finally:
        job.close()
    (tmp_path / "arc-1.duckdb").rename(tmp_path / "elsewhere.duckdb")     # the engine needs no archive file
    acks, _ = await _run(ledger, [mt940("STA0104", "00104/001", "999.00", [], "999.00", D + 3 * DAY)],
                         audit_key=key)
    assert [a["code"] for a in acks] == ["00"]
    b = _events(ledger, "statement break")["STA0104"]
    assert b["kinds"] == ["gap"] and b["previous"]["statement"] == "102/1" and b["previous"]["closing"] == "999.00"


def _head(number: str, opening: str, closing: str, day: dt.date):
    return head_mt940(mt940("S" + number, number, opening, [str(Decimal(closing) - Decimal(opening))], closing,
                            day)["block4"], place="test", account="")


def test_judge_orders_one_batch_and_settles_by_outcome():
    c = Chains()
    (first,) = c.judge("s", [("M1", _head("1", "0.00", "10.00", D))])
    assert first.finding.status == "first"
    c.settle([first], True)
    # 3 before 2 in one batch: ordered by number, both follow on
    three, two = c.judge("s", [("M1", _head("3", "20.00", "30.00", D + 2 * DAY)),
                               ("M1", _head("2", "10.00", "20.00", D + DAY))])
    assert (three.finding.status, two.finding.status) == ("ok", "ok")
    assert three.previous.statement() == "2" and two.previous.statement() == "1"
    # while they run, 4 of another batch is judged against the pending 3
    (four,) = c.judge("s", [("M1", _head("4", "30.00", "31.00", D + 3 * DAY))])
    assert four.finding.status == "ok"
    c.settle([two], True)
    c.settle([three], False)            # 3 failed at the host: the chain stays at 2
    c.settle([four], True)              # 4 committed: the chain is at 4 (the later statement)
    assert c.confirmed[("s", "M1")].statement() == "4"
    (five,) = c.judge("s", [("M1", _head("6", "31.00", "31.00", D + 5 * DAY))])
    assert five.broken and five.finding.status == "gap" and not c.pending.get(("s", "M2"))


def test_a_break_is_counted_in_the_metrics_and_shown_by_bsp_status_table():
    from rich.console import Console

    from engine.commands.top import render
    from engine.deal import DealEvent, DealRecord
    from engine.metrics import Metrics
    from engine.ops.observe import Observer

    at = dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.timezone.utc)
    obs = Observer(Metrics())
    brk = DealEvent(at, None, "statement break", {"kinds": ["gap"]})
    recs = [DealRecord("STATEMENT_MT940", "statement_mt940", "v1", "ac_swift", "committed", at, at,
                       events=[DealEvent(at, None, "statement link", {})] + extra) for extra in ([brk], [])]
    obs.deals(recs, [None, None])
    assert obs.metrics.value("bsp_route_statement_breaks_total", {"route": "statement_mt940"}) == 1
    assert obs.routes["statement_mt940"].as_dict()["statement_breaks"] == 1
    console = Console(width=250, record=True)
    console.print(render({"statement_chains": {"chains": 1, "statements": 5, "breaks": 2, "pending": 0,
                                               "breaks_by_kind": {"balance_break": 1, "gap": 1}}}, None, 0, {}))
    assert ("statement breaks since start: 2 of 5 statements (balance break 1, gap 1): posted all the same; "
            "bsp deals --statement-breaks --live lists them") in console.export_text()


async def test_a_statement_row_written_again_from_the_log_keeps_its_link(tmp_path):
    """A crash between the transaction log's ``end`` of committed statement 102 and its ledger row: the restart
    writes the row from the log with its ``statement link``, and 104 is then judged against 102 (103 missing),
    not as the account's first statement."""
    from engine.txn.log import TxnLog, log_path

    ledger = tmp_path / "bsp.duckdb"
    link = {"chain": "statements", "key": "M0002", "number": 102, "page": 1, "opening": "1250.00",
            "opening_tag": ":60F:", "closing": "1200.00", "closing_tag": ":62F:", "currency": "EUR",
            "day": "2026-11-24", "last_page": None, "reference": "STA0102"}
    log = TxnLog(log_path(ledger))
    log.append([{"t": "end", "id": "0" * 31 + "1", "key": "statement_mt940|M0002/STA0102/20261124",
                 "status": "committed", "code": "00", "reason": None, "reply": b'{"code":"00"}'.hex(),
                 "route": "statement_mt940", "channel": "ac_swift", "version": "v0",
                 "at": "2026-11-24T08:00:00+00:00", "type": "STATEMENT_MT940", "ref": "STA0102", "amount": "1200.00",
                 "currency": "EUR", "party": "COBADEFF", "fin": 0.0, "links": [["statement link", link]]}])
    log.close()
    acks, _ = await _run(ledger, [mt940("STA0104", "00104/001", "1200.00", [], "1200.00", D + 3 * DAY)])
    assert [a["code"] for a in acks] == ["00"]
    assert set(_events(ledger, "statement link")) == {"STA0102", "STA0104"}
    b = _events(ledger, "statement break")["STA0104"]
    assert b["kinds"] == ["gap"] and b["previous"]["statement"] == "102/1"


async def test_a_statement_recovery_completes_after_a_crash_is_judged_and_linked(tmp_path):
    """A route with `on restart complete`: statement 103 was in flight at a crash (its `begin` logged, no call
    made); the restart runs it on and posts it, its `continuity` step judging it again: 103 gets its link, so
    104 after it follows on (without the step run again, 104 would show 103 missing)."""
    import shutil

    from engine.runtime.binder import Binder
    from engine.txn.log import TxnLog, log_path

    for folder in ("account_consolidation", "common"):
        shutil.copytree(Path("routes") / folder, tmp_path / folder)
    route = tmp_path / "account_consolidation" / "account_consolidation.route"
    text = route.read_text()
    route.write_text(text.replace("    receive from ac_swift as Mt940\n", "    receive from ac_swift as Mt940\n"
                                  "    on restart complete\n", 1))
    files = route_files("account_consolidation")
    files = [tmp_path / "account_consolidation" / Path(f).name for f in files]
    ledger = tmp_path / "bsp.duckdb"
    await _run(ledger, [mt940("STA0102", "00102/001", "1000.00", [], "1000.00", D)], files=files)
    registry = services_registry()
    codec = Binder(compile_paths(files, registry).program, registry).codec("Mt940")
    raw = codec.encode(mt940("STA0103", "00103/001", "1000.00", [], "1000.00", D + DAY))
    log = TxnLog(log_path(ledger))
    log.append([{"t": "begin", "id": "0" * 31 + "3", "route": "statement_mt940", "channel": "ac_swift",
                 "key": "statement_mt940|M0002/STA0103/20261124", "at": "2026-11-24T08:00:00+00:00",
                 "logged": 0.0, "raw": bytes(raw).hex()}])
    log.close()
    acks, _ = await _run(ledger, [mt940("STA0104", "00104/001", "1000.00", [], "1000.00", D + 2 * DAY)],
                         files=files)
    assert [a["code"] for a in acks] == ["00"]
    assert set(_events(ledger, "statement link")) == {"STA0102", "STA0103", "STA0104"}
    assert _events(ledger, "statement break") == {}
