"""The demo's count of lost requests finds a malformed frame's deal row also when the engine writes with a field
keyring, which stores the frame's bytes encrypted (engine.fieldcrypt.protect_raw): until 2026-11-28 ``bsp demo``
with ``BSP_FIELD_KEYS`` set reported every malformed request as lost ("no deal row") and exited 1."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import trio

from engine.deal import DealRecord
from engine.fieldcrypt import keyring_from_list
from engine.ledger import open_ledger
from engine.sim.ledger_count import SentRequest, count_lost, ledger_rows

KEYRING = keyring_from_list("k1:" + base64.b64encode(bytes(range(32))).decode(), "test")


def test_a_malformed_frame_stored_encrypted_is_found_with_the_keyring(tmp_path) -> None:
    path = tmp_path / "bsp.duckdb"
    since = datetime.now(timezone.utc) - timedelta(seconds=1)

    async def fill() -> None:
        async with open_ledger(path, keyring=KEYRING) as ledger:
            at = datetime.now(timezone.utc)
            await ledger.commit(DealRecord(deal_type="MALFORMED", route="(malformed)", config_version="v1",
                                           channel="mainframe", status="rejected", received_at=at, finished_at=at,
                                           request=b"GARBAGE000000000034", reason="malformed: short frame"))

    trio.run(fill)
    sent = [SentRequest("bill_payment", "mainframe", "000000000034", replied=True)]
    keys, dups = ledger_rows(path, "v1", since)
    assert not keys                                    # stored encrypted: nothing to read without the keyring
    keys, dups = ledger_rows(path, "v1", since, keyring=KEYRING)
    acc = count_lost(sent, keys, duplicates=dups)
    assert (acc.lost, acc.in_ledger) == (0, 1), acc
