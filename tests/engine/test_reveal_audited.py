"""Every `--reveal` is recorded in the ledger's audit chain before anything is shown in clear (PCI DSS
10.2.1.2: who, when, what): `bsp deals show --reveal` and `bsp dead show --reveal` append the event `revealed`
on the deal's (the letter's) id, with who (--by, else the OS user), the host and the field paths shown, never
the values; `bsp audit verify` is clean after it; a reveal that cannot be recorded (a keyed chain without its
audit key) shows nothing.

Real ledgers in tmp_path, the real commands through typer's runner."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import trio
from typer.testing import CliRunner

from engine import fieldcrypt
from engine.audit import ENV_KEY, ENV_KEY_FILE
from engine.cli import app
from engine.deal import DealRecord, DeadLetter
from engine.fieldcrypt import Keyring
from engine.ledger import open_ledger
from engine.operator import os_user

PAN = "4111111111111111"
NAME = "Jane Doe"
K1 = bytes([1]) * 32
KEYS = f"k1:{base64.b64encode(K1).decode()}"
AUDIT = bytes([7]) * 32
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
TAGS = {"card.number": "pan", "card.cvv": "secret", "payer.name": "personal"}
REQUEST = {"card": {"number": PAN, "cvv": "123"}, "payer": {"name": NAME}, "amount": Decimal("120.50")}
RAW = json.dumps({"card": {"number": PAN}, "payer": {"name": NAME}}).encode()


def bsp(*args: str):
    return CliRunner().invoke(app, list(args))


async def fill(path: Path) -> dict[str, str]:
    rec = DealRecord(deal_type="CARD", route="card", config_version="v1", channel="pos", status="rejected",
                     received_at=T0, finished_at=T0, reference="R1", request=REQUEST, request_tags=TAGS,
                     reason="declined by the issuer")
    unrouted = DeadLetter(route=None, channel="iso", reason="unrouted: no route", raw=RAW, config_version="v1",
                          error_kind="unrouted", at=T0)
    async with open_ledger(path, keyring=Keyring("k1", {"k1": K1}), audit_key=AUDIT) as ledger:
        await ledger.commit(rec)
        await ledger.dead_letter(DeadLetter(route="card", channel="pos", reason="declined by the issuer", raw=RAW,
                                            config_version="v1", error_kind="rejected", id=rec.deal_id, at=T0))
        await ledger.dead_letter(unrouted)
    return {"deal": rec.deal_id, "unrouted": unrouted.id}


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, str]]:
    for var in (fieldcrypt.ENV_FILE, ENV_KEY_FILE, "BSP_ENV"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(fieldcrypt.ENV_KEYS, KEYS)
    monkeypatch.setenv(ENV_KEY, base64.b64encode(AUDIT).decode())
    path = tmp_path / "l.duckdb"
    ids = trio.run(fill, path)
    return path, ids


def events_on(path: Path, ident: str) -> list[tuple[str, dict]]:
    import duckdb
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("SELECT to_state, detail FROM deal_events WHERE deal_id = ? AND to_state = 'revealed' "
                           "ORDER BY seq", [ident]).fetchall()
    finally:
        con.close()
    return [(st, json.loads(d)) for st, d in rows]


def verify_clean(path: Path) -> None:
    res = bsp("audit", "verify", "--ledger", str(path))
    assert res.exit_code == 0, res.output


def test_deals_show_reveal_is_recorded_with_who_and_which_fields(ledger) -> None:
    path, ids = ledger
    res = bsp("deals", "show", ids["deal"], "--ledger", str(path), "--reveal", "--json")
    assert res.exit_code == 0, res.output
    assert PAN in res.output                                   # revealed
    ((_, d),) = events_on(path, ids["deal"])
    assert d["what"] == "deal" and d["via"] == "bsp deals show" and d["by"] == os_user() and d["host"]
    assert d["fields"] == ["request.card.number", "request.payer.name"]
    assert PAN not in json.dumps(d) and NAME not in json.dumps(d)
    # the next show tells it, as any event of the deal
    again = bsp("deals", "show", ids["deal"], "--ledger", str(path))
    assert again.exit_code == 0 and "-> revealed" in again.output and PAN not in again.output
    res = bsp("deals", "show", ids["deal"], "--ledger", str(path), "--reveal", "--by", "ops-alice")
    assert res.exit_code == 0, res.output
    later = events_on(path, ids["deal"])[-1][1]
    assert later["by"] == "ops-alice" and later["os_user"] == os_user()
    verify_clean(path)
    # without --reveal nothing is recorded
    assert bsp("deals", "show", ids["deal"], "--ledger", str(path)).exit_code == 0
    assert len(events_on(path, ids["deal"])) == 2


def test_dead_show_reveal_is_recorded_on_the_letter_also_without_a_deal(ledger) -> None:
    path, ids = ledger
    res = bsp("dead", "show", ids["deal"], "--ledger", str(path), "--reveal")
    assert res.exit_code == 0, res.output
    assert PAN in res.output
    ((_, d),) = events_on(path, ids["deal"])
    assert d["what"] == "dead letter" and d["via"] == "bsp dead show"
    assert d["fields"] == ["message", "deal.request.card.number", "deal.request.payer.name"]
    res = bsp("dead", "show", ids["unrouted"], "--ledger", str(path), "--reveal", "--json")
    assert res.exit_code == 0, res.output
    ((_, u),) = events_on(path, ids["unrouted"])          # an unrouted letter has no deal row: on its own id
    assert u["fields"] == ["message"] and PAN not in json.dumps(u)
    verify_clean(path)
    # a status change after a reveal is still chained as before (bsp audit verify compares the letter with it)
    purged = bsp("dead", "purge", ids["unrouted"], "--ledger", str(path), "--yes")
    assert purged.exit_code == 0, purged.output
    verify_clean(path)


def test_a_reveal_that_cannot_be_recorded_shows_nothing(ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    path, ids = ledger
    monkeypatch.delenv(ENV_KEY)                            # a keyed chain, and no audit key here
    for args in (("deals", "show", ids["deal"]), ("dead", "show", ids["deal"]), ("dead", "show", ids["unrouted"])):
        res = bsp(*args, "--ledger", str(path), "--reveal")
        assert res.exit_code == 2, res.output
        assert "recorded in the ledger's audit trail (PCI DSS 10.2) before anything is shown" in res.output
        assert "Nothing was revealed" in res.output
        assert PAN not in res.output and NAME not in res.output
    assert events_on(path, ids["deal"]) == [] and events_on(path, ids["unrouted"]) == []
    monkeypatch.setenv(ENV_KEY, base64.b64encode(AUDIT).decode())
    verify_clean(path)


def test_by_goes_with_reveal(ledger) -> None:
    path, ids = ledger
    res = bsp("deals", "show", ids["deal"], "--ledger", str(path), "--by", "ops-alice")
    assert res.exit_code == 2 and "--by names who reveals: it goes with --reveal" in res.output
