"""`bsp dead show` masks a letter by default (PCI DSS 3.4.1: at most the first 6 / last 4 digits of a PAN on
display): the message's bytes are withheld, the letter's deal's request shown as the ledger keeps it (classified
fields masked); `--reveal` shows them, with the field keyring for a sealed letter; a retry still gets the bytes."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import trio
import typer
from typer.testing import CliRunner

from engine import fieldcrypt
from engine.commands.dead import register
from engine.deadletter import raw_bytes
from engine.deal import DealRecord, DeadLetter
from engine.fieldcrypt import Keyring
from engine.ledger import open_ledger
from engine.ledger_query import query_dead_letters

PAN = "4111111111111111"
MASK = "411111******1111"
NAME = "Jane Doe"
K1 = bytes([1]) * 32
KEYS = f"k1:{base64.b64encode(K1).decode()}"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
TAGS = {"card.number": "pan", "card.cvv": "secret", "payer.name": "personal"}
REQUEST = {"card": {"number": PAN, "cvv": "123"}, "payer": {"name": NAME}, "amount": Decimal("120.50")}
RAW = json.dumps({"card": {"number": PAN, "cvv": "123"}, "payer": {"name": NAME}, "amount": "120.50"}).encode()
EBCDIC = "0200".encode("cp037") + PAN.encode("cp037") + b"\x00\x01"      # binary: shown as a hex dump


def cli(*args: str):
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    register(app)
    return CliRunner().invoke(app, ["dead", *args])


async def fill(path: Path, keyring: Keyring | None) -> dict[str, str]:
    rec = DealRecord(deal_type="CARD", route="card", config_version="v1", channel="pos", status="rejected",
                     received_at=T0, finished_at=T0, reference="R1", request=REQUEST, request_tags=TAGS,
                     reason="declined by the issuer")
    async with open_ledger(path, keyring=keyring, audit_key=None) as ledger:
        await ledger.commit(rec)
        await ledger.dead_letter(DeadLetter(route="card", channel="pos", reason="declined by the issuer", raw=RAW,
                                            config_version="v1", error_kind="rejected", id=rec.deal_id, at=T0))
        binary = DeadLetter(route=None, channel="iso", reason="unrouted: no route for MTI 0200", raw=EBCDIC,
                            config_version="v1", error_kind="unrouted", at=T0)
        await ledger.dead_letter(binary)
        # a request that did not decode: its deal keeps the bytes (as hex; sealed with a keyring, else in clear)
        bad = DealRecord(deal_type="CARD", route="card", config_version="v1", channel="pos", status="rejected",
                         received_at=T0, finished_at=T0, request=EBCDIC, response_code="30",
                         reason="malformed: byte 4: not JSON")
        await ledger.commit(bad)
        await ledger.dead_letter(DeadLetter(route="card", channel="pos", reason="malformed: byte 4: not JSON",
                                            raw=EBCDIC, config_version="v1", error_kind="malformed", id=bad.deal_id,
                                            at=T0))
    return {"deal": rec.deal_id, "binary": binary.id, "malformed": bad.deal_id}


def clear(text: str) -> None:
    for secret in (PAN, NAME, PAN.encode("cp037").hex(), " ".join(f"{b:02x}" for b in PAN.encode("cp037")[:8])):
        assert secret not in text, secret


@pytest.mark.parametrize("sealed", [True, False], ids=["sealed", "no-keyring"])
def test_dead_show_masks_by_default_and_reveals_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           sealed: bool) -> None:
    monkeypatch.delenv(fieldcrypt.ENV_FILE, raising=False)
    monkeypatch.setenv(fieldcrypt.ENV_KEYS, KEYS)          # the operator holds the keyring: still masked
    path = tmp_path / "l.duckdb"
    ids = trio.run(fill, path, Keyring("k1", {"k1": K1}) if sealed else None)
    for lid in ids.values():
        for extra in ((), ("--json",)):
            res = cli("show", lid, "--ledger", str(path), *extra)
            assert res.exit_code == 0, res.output
            clear(res.output)
            assert "--reveal shows them" in res.output
    res = cli("show", ids["deal"], "--ledger", str(path))
    assert MASK in res.output and "deal request" in res.output and '"cvv": "***"' in res.output
    got = json.loads(cli("show", ids["deal"], "--ledger", str(path), "--json").stdout)
    assert got["raw"] is None and got["deal_request"]["amount"] == "120.50"
    assert got["raw_withheld"].startswith("sealed with field key 'k1'" if sealed else f"{len(RAW)} bytes")
    for lid in (ids["binary"], ids["malformed"]):      # no deal, or one that keeps the same bytes: nothing more
        assert "deal_request" not in json.loads(cli("show", lid, "--ledger", str(path), "--json").stdout)
    # `bsp dead list` never showed the message; it still does not
    res = cli("list", "--ledger", str(path), "--json")
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 3
    clear(res.output)
    # --reveal: the bytes as received, decrypted with the keyring when sealed, and the deal's fields decrypted
    res = cli("show", ids["deal"], "--ledger", str(path), "--reveal")
    assert res.exit_code == 0 and PAN in res.output and NAME in res.output, res.output
    res = cli("show", ids["binary"], "--ledger", str(path), "--reveal", "--json")
    assert json.loads(res.stdout)["raw"] == EBCDIC.hex()
    res = cli("show", ids["binary"], "--ledger", str(path), "--reveal")
    assert "binary: offset, hex, ASCII" in res.output
    # without the keyring a sealed letter is not revealed (as `bsp deals show --reveal`); a clear one is
    monkeypatch.delenv(fieldcrypt.ENV_KEYS)
    res = cli("show", ids["binary"], "--ledger", str(path), "--reveal")
    if sealed:
        assert res.exit_code == 2, res.output
        assert "--reveal of dead letter" in res.output and "needs the field keyring" in res.output
        clear(res.output)
    else:
        assert res.exit_code == 0 and EBCDIC.hex()[:8] in res.output.replace(" ", "")
    # a retry still gets the message as received
    letter = query_dead_letters(path, ids=[ids["deal"]], with_raw=True)[0]
    assert raw_bytes(letter, Keyring("k1", {"k1": K1}) if sealed else None) == RAW
