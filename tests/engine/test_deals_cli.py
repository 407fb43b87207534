"""``bsp deals`` against a real ledger file written by the real ledger."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import trio
import typer
from typer.testing import CliRunner

from engine.commands.deals import parse_when, register
from engine.deal import DealRecord
from engine.ledger import open_ledger

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:  # a group, so the command is invoked by name as in bsp
        pass

    register(app)
    return app


async def fill(path: Path) -> None:
    # ages count from now, when the fixture runs, not from the module's import: in a full run the test comes
    # minutes after collection, and `--until 5m` then took the deal made "1 minute" before import
    now = datetime.now(timezone.utc).replace(microsecond=0)
    async with open_ledger(path) as ledger:
        specs = [
            # age, type, status, code, amount, currency, party
            (timedelta(days=3), "BILL_PAYMENT", "committed", "00", Decimal("12345678901234.56"), "CNY", "EL01"),
            (timedelta(hours=5), "BILL_PAYMENT", "rejected", "13", Decimal("0.01"), "USD", "EL02"),
            (timedelta(minutes=10), "BILL_ENQUIRY", "committed", "00", None, None, None),
            (timedelta(minutes=1), "BILL_PAYMENT", "failed", "91", Decimal("120.50"), "cny", "el01"),
        ]
        for i, (age, typ, status, code, amount, cur, party) in enumerate(specs):
            t = now - age
            await ledger.commit(DealRecord(
                deal_type=typ, route="bill_payment", config_version="v1", channel="mainframe",
                status=status, received_at=t, finished_at=t + timedelta(milliseconds=5),
                reference=f"T{i}", amount=amount, currency=cur, party=party, response_code=code,
                request={"amount": amount}))


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    path = tmp_path / "bsp.duckdb"
    trio.run(fill, path)    # sync tests (CliRunner), so the fixture runs its own trio loop
    return path


def run(*args: str):
    return CliRunner().invoke(make_app(), ["deals", *args])


def flat(text: str) -> str:
    """Error text without rich's panel borders and line wrapping."""
    return re.sub(r"[\s│]+", " ", text)


def json_rows(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_json_lines_with_exact_money(ledger_file: Path) -> None:
    res = run("--ledger", str(ledger_file), "--json")
    assert res.exit_code == 0, res.output
    rows = json_rows(res.stdout)
    assert [r["reference"] for r in rows] == ["T3", "T2", "T1", "T0"]      # newest first
    assert rows[-1]["amount"] == "12345678901234.56"
    assert rows[-1]["request"] == {"amount": "12345678901234.56"}
    assert rows[1]["amount"] is None
    assert rows[0]["received_at"].endswith("Z")


def test_table_shows_exact_amounts(ledger_file: Path) -> None:
    res = run("--ledger", str(ledger_file))
    assert res.exit_code == 0, res.output
    assert "12345678901234.56" in res.stdout and "120.50" in res.stdout and "0.01" in res.stdout
    assert "BILL_ENQUIRY" in res.stdout


@pytest.mark.parametrize("args, refs", [
    (["--type", "BILL_ENQUIRY"], ["T2"]),
    (["--status", "rejected"], ["T1"]),
    (["--ref", "T0"], ["T0"]),
    (["--since", "1h"], ["T3", "T2"]),
    (["--since", "30m", "--until", "5m"], ["T2"]),
    (["--until", "1d"], ["T0"]),
    (["--limit", "1"], ["T3"]),
    (["--type", "BILL_PAYMENT", "--since", "2d"], ["T3", "T1"]),
    # a clerk chasing a totals break: one currency's deals, in any case (ISO 4217 codes have no case) ...
    (["--currency", "CNY"], ["T3", "T0"]),
    (["--currency", "usd"], ["T1"]),
    (["--currency", "EUR"], []),
    # ... and one party's: exactly the stored text (as counterparty-statement matches it), no prefix, case kept
    (["--party", "EL01"], ["T0"]),
    (["--party", "el01"], ["T3"]),
    (["--party", "EL0"], []),
    (["--currency", "CNY", "--party", "EL02"], []),
    (["--currency", "usd", "--party", "EL02", "--status", "rejected"], ["T1"]),
])
def test_filters(ledger_file: Path, args: list[str], refs: list[str]) -> None:
    res = run("--ledger", str(ledger_file), "--json", *args)
    assert res.exit_code == 0, res.output
    assert [r["reference"] for r in json_rows(res.stdout)] == refs


def test_iso_since(ledger_file: Path) -> None:
    since = (NOW - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%S")
    res = run("--ledger", str(ledger_file), "--json", "--since", since)
    assert [r["reference"] for r in json_rows(res.stdout)] == ["T3", "T2", "T1"]


def test_missing_ledger_is_a_usage_error(tmp_path: Path) -> None:
    res = run("--ledger", str(tmp_path / "none.duckdb"))
    assert res.exit_code == 2
    assert "none.duckdb: no ledger file" in res.stderr and "--ledger" in res.stderr


def test_the_ledger_of_a_deployment_file(ledger_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `--deployment platform.yaml [--env NAME]` works for the listing as for `bsp deals show`: the file's
    # ledger (relative to the file, as bsp run takes it); --ledger still wins
    monkeypatch.delenv("BSP_ENV", raising=False)
    monkeypatch.chdir(tmp_path.parent)
    (tmp_path / "r.route").write_text("")
    deployment = tmp_path / "platform.yaml"
    deployment.write_text(f"routes: [r.route]\nledger: {ledger_file.name}\n"
                          "environments:\n  uat:\n    ledger: uat.duckdb\n")
    res = run("--deployment", str(deployment), "--json")
    assert res.exit_code == 0, res.output
    assert [r["reference"] for r in json_rows(res.stdout)] == ["T3", "T2", "T1", "T0"]
    res = run("--deployment", str(deployment), "--env", "uat")
    assert res.exit_code == 2 and f"{tmp_path / 'uat.duckdb'}: no ledger file" in res.stderr, res.output
    res = run("--deployment", str(deployment), "--env", "uat", "--ledger", str(ledger_file), "--ref", "T1")
    assert res.exit_code == 0 and "T1" in res.stdout, res.output
    res = run("--env", "uat")
    assert res.exit_code == 2 and "--deployment platform.yaml" in flat(res.output)


def test_bad_time_is_a_usage_error(ledger_file: Path) -> None:
    res = run("--ledger", str(ledger_file), "--since", "yesterday")
    assert res.exit_code == 2
    assert "'yesterday' is not a time" in flat(res.output) and "30m" in flat(res.output)


def test_bad_status_is_a_usage_error(ledger_file: Path) -> None:
    res = run("--ledger", str(ledger_file), "--status", "ok")
    assert res.exit_code == 2
    assert "use one of committed, rejected, failed" in flat(res.output)


@pytest.mark.parametrize("option", ["--currency", "--party"])
def test_an_empty_currency_or_party_is_a_usage_error(ledger_file: Path, option: str) -> None:
    res = run("--ledger", str(ledger_file), option, " ")
    assert res.exit_code == 2
    assert option in flat(res.output) and "is empty" in flat(res.output)


def test_parse_when_forms() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    assert parse_when("90m", now=now) == now - timedelta(minutes=90)
    assert parse_when("2d", now=now) == datetime(2026, 2, 27, 12, 0, tzinfo=timezone.utc)
    assert parse_when("1w", now=now) == datetime(2026, 2, 22, 12, 0, tzinfo=timezone.utc)
    assert parse_when("2026-02-01", now=now) == datetime(2026, 2, 1, tzinfo=timezone.utc)
    assert parse_when("2026-02-01T08:00+08:00", now=now) == datetime(2026, 2, 1, 0, 0, tzinfo=timezone.utc)


def test_json_without_limit_streams_the_rows(ledger_file: Path, monkeypatch) -> None:
    """`--limit 0 --json` on millions of deals: rows reach the output as they are fetched (a generator
    reading FETCH_ROWS at a time), never as one list of every deal."""
    import inspect

    import engine.commands.deals as deals_mod
    import engine.ledger_query as lq

    monkeypatch.setattr(lq, "FETCH_ROWS", 1)
    seen: list[object] = []
    real = deals_mod._render_json

    def spy(rows):
        seen.append(rows)
        real(rows)
    monkeypatch.setattr(deals_mod, "_render_json", spy)
    res = run("--ledger", str(ledger_file), "--json", "--limit", "0")
    assert res.exit_code == 0, res.output
    assert len(res.output.splitlines()) == 4
    assert seen and not isinstance(seen[0], list)
    assert inspect.isgenerator(lq.iter_deals(ledger_file, limit=None))
    assert [d["deal_id"] for d in lq.iter_deals(ledger_file, limit=None)] == \
        [d["deal_id"] for d in lq.query_deals(ledger_file, limit=None)]


async def _hostile(path: Path) -> None:
    async with open_ledger(path) as ledger:
        for i, text in enumerate(["[/]", "[link=http://evil]click[/link]", "\x1b]0;pwned\x07\x1b[31mRED"]):
            t = NOW - timedelta(minutes=i)
            await ledger.commit(DealRecord(
                deal_type="BILL_PAYMENT", route="bill_payment", config_version="v1", channel="mainframe",
                status="committed", received_at=t, finished_at=t, reference=text, party=text,
                amount=Decimal("1.00"), currency="EUR", reason=text))


def test_a_reference_is_shown_as_text_never_as_markup_or_terminal_control(tmp_path: Path) -> None:
    path = tmp_path / "bsp.duckdb"
    trio.run(_hostile, path)
    res = CliRunner().invoke(make_app(), ["deals", "--ledger", str(path), "--limit", "0"], terminal_width=250)
    assert res.exit_code == 0, res.output          # "[/]" once crashed rich with a MarkupError traceback
    assert "[/]" in res.output and "[link=http://evil]click[/link]" in res.output
    assert "\x1b" not in res.output and "\\x1b]0;pwned\\x07\\x1b[31mRED" in res.output
    lines = [json.loads(x) for x in run("--ledger", str(path), "--json", "--limit", "0").output.splitlines()]
    deal_id = next(x["deal_id"] for x in lines if "\x1b" in x["reference"])
    story = run("show", deal_id, "--ledger", str(path))
    assert story.exit_code == 0 and "\x1b" not in story.output and "reference \\x1b]0;pwned" in story.output
    assert {x["reference"] for x in lines} == {"[/]", "[link=http://evil]click[/link]", "\x1b]0;pwned\x07\x1b[31mRED"}
    assert {x["amount"] for x in lines} == {"1.00"}          # --json: exact, as text, control characters escaped


async def _two_versions(path: Path) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    async with open_ledger(path) as ledger:
        for i, version in enumerate(("3f2a09c1d7e6b5a4", "8c41d0e2a9b37f15")):      # a reload between them
            t = now - timedelta(minutes=2 - i)
            await ledger.commit(DealRecord(
                deal_type="BILL_PAYMENT", route="bill_payment", config_version=version, channel="mainframe",
                status="committed", received_at=t, finished_at=t + timedelta(milliseconds=5),
                reference=f"V{i}", amount=Decimal("1.00"), currency="CNY", party=None, response_code="00",
                request={}))


def test_deals_across_a_reload_show_the_configuration_that_served_each(tmp_path: Path, ledger_file: Path) -> None:
    path = tmp_path / "two.duckdb"
    trio.run(_two_versions, path)
    res = CliRunner().invoke(make_app(), ["deals", "--ledger", str(path)], terminal_width=250)
    assert res.exit_code == 0, res.output
    head, = [line for line in res.stdout.splitlines() if "deal id" in line]
    assert "config" in head
    rows = {line.split("│")[5].strip(): line for line in res.stdout.splitlines() if "│ V" in line}
    assert "8c41d0e2a9b37f15" in rows["V1"] and "3f2a09c1d7e6b5a4" in rows["V0"], rows
    one = CliRunner().invoke(make_app(), ["deals", "--ledger", str(ledger_file)], terminal_width=250)
    assert "config" not in one.stdout             # one version: no column (bsp deals show names it)
