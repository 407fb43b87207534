"""`bsp report` / `bsp reconcile` in real subprocesses, on real ledgers: an open-ended period, CSV on
standard output naming the tables it leaves out, --out checked before the work, terminal tables that never
crop a figure (a real pseudo-terminal 100 columns wide; a pipe), and the nightly script of docs/reports.md."""
from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest
import trio

from engine.deal import DealRecord
from engine.journal import open_ledger_sync
from test_reconcile_scope import N, _fill, csv_lines

REPO = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ledger") / "bsp.duckdb"
    trio.run(_fill, path)
    return path


def bsp(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


def on_terminal(args: list[str], cwd: Path, cols: int) -> str:
    """Run bsp with its standard output on a pseudo-terminal `cols` wide; what it showed, without colours."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, cols, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", *args], cwd=cwd, stdout=slave,
                            stderr=subprocess.PIPE, env={**env, "PYTHONPATH": str(REPO), "TERM": "xterm"})
    os.close(slave)
    out = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:          # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return ANSI.sub("", out.decode()).replace("\r", "")


@pytest.mark.parametrize("name, extra", [("daily-summary", ()), ("rejections", ()),
                                         ("counterparty-statement", ("--party", "EL0001"))])
def test_an_open_ended_period(ledger: Path, tmp_path: Path, name: str, extra: tuple) -> None:
    res = bsp("report", name, "--ledger", str(ledger), "--from", "2026-11-26", "--to", "9999-12-31",
              "--format", "csv", "--out", "r.csv", *extra, cwd=tmp_path)
    assert res.returncode == 0, res
    assert "Traceback" not in res.stderr
    text = (tmp_path / "r.csv").read_text()
    if name == "daily-summary":
        assert f"2026-11-26,BILL_PAYMENT,CNY,{N},{N},0,0,0,109.6200," in text
    if name == "counterparty-statement":
        assert text.rstrip().splitlines()[-1].split(",")[8] == "109.6200"     # closing running total


def test_csv_on_standard_output_says_which_tables_it_left_out(ledger: Path, tmp_path: Path) -> None:
    res = bsp("report", "daily-summary", "--ledger", str(ledger), "--from", "2026-11-26", "--format", "csv",
              cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("day,deal_type,currency,"), res
    assert res.stderr.startswith("note: standard output holds the summary table only; the other table(s), "
                                 "totals, are written with --out FILE.csv"), res.stderr


def test_reconcile_out_is_checked_before_the_work(ledger: Path, tmp_path: Path) -> None:
    (tmp_path / "el.csv").write_text(csv_lines())
    res = bsp("reconcile", "--ledger", str(ledger), "--against", "el.csv", "--type", "csv", "--format", "html",
              "--out", "nope/form.html", cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == "", res          # no form printed, then refused
    assert res.stderr.startswith("error: --out nope/form.html: the folder nope does not exist")
    assert not (tmp_path / "nope").exists()
    res = bsp("reconcile", "--ledger", str(ledger), "--against", "el.csv", "--type", "csv", "-q",
              "--out", "form.xlsx", cwd=tmp_path)                  # the format from the name
    assert res.returncode == 0 and "wrote form.xlsx" in res.stderr, res
    assert (tmp_path / "form.xlsx").stat().st_size > 0
    res = bsp("reconcile", "--ledger", str(ledger), "--against", "el.csv", "--type", "csv", "-q",
              "--out", "form.txt", cwd=tmp_path)
    assert res.returncode == 2 and "--out form.txt: give the format with --format" in res.stderr, res


def test_a_narrow_terminal_shows_every_figure(ledger: Path, tmp_path: Path) -> None:
    shown = on_terminal(["report", "daily-summary", "--ledger", str(ledger), "--from", "2026-11-26"],
                        tmp_path, 100)
    assert max(len(line) for line in shown.splitlines()) <= 100
    for label, value in [("day", "2026-11-26"), ("committed amount", "109.62"), ("amount, all deals", "109.62"),
                         ("success rate", "100.00 %"), ("p50 ms", "4.0"), ("p99 ms", "4.0")]:
        assert re.search(rf"^ *{re.escape(label)} +{re.escape(value)}(?!\S)", shown, re.M), (label, shown)
    wide = on_terminal(["report", "daily-summary", "--ledger", str(ledger), "--from", "2026-11-26"], tmp_path, 220)
    assert re.search(r"│ 2026-11-26 │ BILL_PAYMENT +│ CNY +│ +14 │", wide), wide     # across when it fits


def test_piped_tables_are_whole(ledger: Path, tmp_path: Path) -> None:
    (tmp_path / "cur.csv").write_text(csv_lines(replace=("000000000005,5.33,CNY", "000000000005,33.33,EUR")))
    res = bsp("reconcile", "--ledger", str(ledger), "--against", "cur.csv", "--type", "csv", cwd=tmp_path)
    assert res.returncode == 1, res
    assert "┃ ledger total ┃ statement total ┃" in res.stdout
    eur = next(line for line in res.stdout.splitlines() if line.startswith("│ EUR "))
    assert eur.rstrip().endswith("│           33.33 │"), eur


async def _journaled(path: Path, *days: date) -> None:
    async with open_ledger_sync(path, "journal") as ledger:       # as `bsp run` keeps it: with its .journal
        for day, i in ((day, i) for day in days for i in range(3)):
            t = datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=9, minutes=i)
            await ledger.commit(DealRecord(
                deal_type="PAYMENT", route="payments", config_version="v1", channel="front", status="committed",
                received_at=t, finished_at=t, reference=f"R{i}", amount=Decimal("10.05"), currency="EUR",
                party="ACME"))


ECHO_ROUTE = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route echo {
    receive from front as Req
    deal ECHO { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Req { ref = msg.ref }
}
"""


async def test_the_nightly_script_of_the_docs_runs(nursery, tmp_path: Path) -> None:
    """The script of docs/reports.md, as cron would run it, against a running engine (in this process: the
    ledger is locked to the script's bsp commands) that holds yesterday's deals."""
    from dsl.load import compile_paths
    from engine.admin.auth import write_token
    from engine.ops.serve import AdminOptions, OpsOptions, run_live
    from engine.registry import default_registry

    page = (REPO / "docs" / "reports.md").read_text()
    script = next(m.group(1) for m in re.finditer(r"^ *```sh\n(.*?)^ *```", page, re.M | re.S)
                  if "nightly-report.sh" in m.group(1))
    home, reports = tmp_path / "opt-bsp", tmp_path / "srv-reports"
    (home / "var").mkdir(parents=True)
    reports.mkdir()
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    # the script takes its own "yesterday" (`date -u -d yesterday`): today's deals too, for a run across midnight
    await _journaled(home / "var" / "bsp.duckdb", yesterday, yesterday + timedelta(days=1))
    route = tmp_path / "echo.route"
    route.write_text(ECHO_ROUTE)
    registry = default_registry()
    program = compile_paths([route], registry).program
    token = write_token(tmp_path / "admin.token")
    ready: list = []
    ops = OpsOptions(admin=AdminOptions(listen="127.0.0.1:0", token=token), hooks=[ready.append])
    nursery.start_soon(partial(run_live, program, registry, ledger_path=home / "var" / "bsp.duckdb",
                               load=lambda: ([route], {}), grace=2.0, ops=ops))
    with trio.fail_after(30):
        while not ready:
            await trio.sleep(0.01)
    engine = ready[0]
    body = "\n".join(ln.strip() for ln in script.splitlines())
    body = (body.replace("/opt/bsp", str(home)).replace("/srv/reports", str(reports))
            .replace("http://127.0.0.1:7080", f"http://127.0.0.1:{engine.admin_port}")
            .replace("/etc/bsp/admin.token", str(tmp_path / "admin.token")))
    path = tmp_path / "nightly-report.sh"
    path.write_text(body + "\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    res = await trio.to_thread.run_sync(partial(subprocess.run, ["sh", str(path)], capture_output=True, text=True,
                                                timeout=120, env=env))
    engine.drain()
    assert res.returncode == 0, res
    if not (reports / f"daily-{yesterday}.html").exists():      # midnight (UTC) passed before the script's `date`
        yesterday += timedelta(days=1)
    page = (reports / f"daily-{yesterday}.html").read_text()
    assert "30.15" in page and f"the engine at http://127.0.0.1:{engine.admin_port}" in res.stdout
    assert (reports / f"rejections-{yesterday}.csv").is_file()
    assert [p.name for p in reports.iterdir() if ".duckdb" in p.name] == []      # the snapshot was removed


def test_report_and_reconcile_take_the_ledger_of_a_deployment_file(ledger: Path, tmp_path: Path) -> None:
    """As bsp deals and bsp dead list: --deployment FILE [--env] gives the ledger; --ledger still wins."""
    (tmp_path / "r.route").write_text("")
    (tmp_path / "platform.yaml").write_text(f"routes: [r.route]\nledger: {ledger}\n"
                                            "environments:\n  uat:\n    ledger: uat.duckdb\n")
    env_free = {k: v for k, v in os.environ.items() if k != "BSP_ENV"}
    res = subprocess.run([sys.executable, "-m", "engine.cli", "report", "daily-summary", "--deployment",
                          "platform.yaml", "--from", "2026-11-26", "--format", "csv"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, env={**env_free, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0 and f"2026-11-26,BILL_PAYMENT,CNY,{N},{N}," in res.stdout, res
    res = bsp("report", "daily-summary", "--deployment", "platform.yaml", "--env", "uat", "--from", "2026-11-26",
              cwd=tmp_path)
    assert res.returncode == 2 and "uat.duckdb" in res.stderr, res
    (tmp_path / "el.csv").write_text(csv_lines())
    res = bsp("reconcile", "--deployment", "platform.yaml", "--against", "el.csv", "--type", "csv", "-q",
              cwd=tmp_path)
    assert res.returncode == 0, res
    res = bsp("reconcile", "--deployment", "platform.yaml", "--env", "uat", "--ledger", str(ledger),
              "--against", "el.csv", "--type", "csv", "-q", cwd=tmp_path)
    assert res.returncode == 0, res


@pytest.mark.parametrize("fmt", ["html", "table"])
def test_a_period_without_deals_says_which_days_the_ledger_holds(ledger: Path, tmp_path: Path, fmt: str) -> None:
    """The README's first report, `--from` a day the newcomer's ledger has no deal of, wrote an empty page and
    said only `wrote FILE`: it now says the period is empty and which days hold the deals."""
    res = bsp("report", "daily-summary", "--ledger", str(ledger), "--from", "2026-03-01", "--format", fmt,
              cwd=tmp_path)
    assert res.returncode == 0, res
    assert (f"note: no deals in 2026-03-01 (UTC, midnight to midnight) in {ledger}: the report is empty; its "
            f"deals are on 2026-11-26: give those days with --from/--to (or --from today)") in res.stderr, res.stderr
    if fmt == "html":
        assert (tmp_path / "daily-summary_2026-03-01_2026-03-01.html").is_file()


def test_a_period_with_deals_and_no_rejections_has_no_note(ledger: Path, tmp_path: Path) -> None:
    """An empty rejections report of a day that has deals is an answer (none were rejected), not a wrong day."""
    res = bsp("report", "rejections", "--ledger", str(ledger), "--from", "2026-11-26", "--format", "csv",
              "--out", "r.csv", cwd=tmp_path)
    assert res.returncode == 0 and "note: no deals" not in res.stderr, res
