"""routes/fund_consolidation over real sockets: a downward sweep whose pool's header account is held at
this bank (pools.csv header_bic BSPBCNSHXXX) is no MT101 addressed to ourselves. The mainframe is asked
to debit the header account (POOL-POST FP01) and the member's bank is paid by an MT103 through the SWIFT
gateway; an MT103 the gateway NAKs reverses the debit (FP02, with the debit's host reference).

The MT103 is the one the engine wrote with the project's SWIFT writer (formats/swift), as the gateway's
simulator read it with the strict MT103 parser: written again it reads back to the same values and the
same text (a round trip), its fields have the corpus's form (prowide's MT103 RJE batches, when the corpus
is beside the repository), and its tags come in the order the corpus's MT103s have them."""
from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.sim.services import fund_consolidation
from engine.sim.services.catalog import route_files
from engine.sim.services.harness import running_services
from engine.sim.services.model import run_tag, trace
from engine.sim.services.registry import services_registry
from formats.framing import make_framer
from formats.swift import SwiftCodec
from formats.swift.fin import parse_fin, split_rje, write_fin

SERVICE = fund_consolidation.SERVICE
CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "swift" / "prowide_mt103_rje_batches"


def _sweep(kind: str, pool: str = "POOL0002") -> dict[str, Any]:
    return {"txn_code": "FC01", "trace_no": trace("FC", 1, kind, run=run_tag()), "pool_id": pool,
            "member_acct": "40005678", "member_bank": "BANKUS33XXX", "direction": "D",
            "amount": Decimal("2500.00"), "currency": "USD", "value_date": 20261125}


async def _run(values: dict[str, Any], tmp_path: Path, times: int = 1) -> tuple[list[dict[str, Any]], Any]:
    registry = services_registry()
    program = compile_paths(route_files(SERVICE.name), registry).program
    async with open_ledger(tmp_path / "ledger.duckdb", audit_key=None) as ledger:
        async with running_services(program, registry, ledger, [SERVICE]) as rig:
            codec, reply_codec = rig.switchboard.ctx.codec("SweepReq"), rig.switchboard.ctx.codec("MfRsp")
            tx, rx = make_framer("length2"), make_framer("length2")
            replies: list[bytes] = []
            stream = await trio.open_tcp_stream("127.0.0.1", rig.port(SERVICE.inbound))
            async with stream:
                with trio.fail_after(60):
                    for i in range(times):
                        await stream.send_all(tx.frame(codec.encode(values)))
                        while len(replies) < i + 1:
                            data = await stream.receive_some(65536)
                            assert data, "the engine closed the connection"
                            replies += rx.feed(data)
            assert len(set(replies)) == 1, "a repeat must get the first reply, byte for byte"
            return [reply_codec.decode(r) for r in replies], rig


async def test_a_downward_sweep_from_a_header_held_here_is_debited_then_paid_by_a_valid_mt103(tmp_path):
    values = _sweep("good")
    [reply], rig = await _run(values, tmp_path)
    posting, gateway = rig.sims["fc_posting"], rig.sims["fc_swift"]
    assert reply["resp_code"] == "00" and reply["message_text"] == "MT103 sweep D ACME GROUP USD POOL", reply
    assert [(p["txn_code"], p["debit_acct"], p["amount"], p["currency"]) for p in posting.seen] == [
        ("FP01", "31009876543210", Decimal("2500.00"), "USD")]
    assert gateway.bad_requests == 0 and len(gateway.seen) == 1
    mt103 = gateway.seen[0]
    assert mt103["block2"]["type"] == "103" and mt103["block2"]["receiver"] == "BANKUS33XXXX"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", mt103["block3"]["121"])
    # the round trip: written by formats.swift, read back by its strict MT103 codec, the same values and text
    text = write_fin(mt103)
    again = SwiftCodec("mt103").decode(text.encode("ascii"))
    assert again == mt103
    assert write_fin(again) == text
    ref = values["trace_no"]
    block4 = text[text.index("{4:"):]
    for line in (f":20:{ref}", ":23B:CRED", ":32A:261125USD2500,00", ":50K:/31009876543210\r\nACME GROUP USD POOL",
                 ":59:/40005678\r\nACME GROUP USD POOL", f":70:/ROC/{ref}\r\nCASH POOL SWEEP POOL0002", ":71A:OUR"):
        assert f"\r\n{line}\r\n" in block4, (line, block4)
    assert reply["host_ref"].startswith("261125BSPBCNSHAXXX")


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"conformance corpus not found at {CORPUS}")
def test_the_cover_mt103s_tags_come_in_the_corpus_order_and_form():
    """Each MT103 of prowide's RJE batch that has them carries 20, 23B, 32A, 50K, 59, 70, 71A in the order the
    route writes them; its 32A has the form YYMMDD + currency + amount with a decimal comma, as ours."""
    ours = ["20", "23B", "32A", "50K", "59", "70", "71A"]
    seen = 0
    for raw in split_rje((CORPUS / "input" / "MT103-out-ack.rje").read_text()):
        values, _ = parse_fin(raw, strict=False)
        tags = [f["tag"] for f in values["block4"]]
        if all(t in tags for t in ours):
            assert [t for t in tags if t in ours] == ours, tags
            seen += 1
        m = re.search(r"\n:32A:(\d{6})([A-Z]{3})(\d+,\d*)\r?\n", raw)
        assert m, raw[:200]
    assert seen > 0


async def test_an_mt103_the_gateway_naks_reverses_the_debit_once_and_a_repeat_makes_nothing(tmp_path):
    values = _sweep("failing")
    replies, rig = await _run(values, tmp_path, times=2)
    posting, gateway = rig.sims["fc_posting"], rig.sims["fc_swift"]
    assert [r["resp_code"] for r in replies] == ["05", "05"]
    assert [p["txn_code"] for p in posting.seen] == ["FP01", "FP02"]
    assert posting.seen[1]["orig_host_ref"].startswith("HOST")        # the debit's host reference, as answered
    ref = values["trace_no"]
    assert posting.calls == {ref: 1, f"{ref} reversal": 1} and gateway.calls == {ref: 1}


async def test_a_downward_sweep_from_a_header_held_elsewhere_stays_an_mt101_to_that_bank(tmp_path):
    values = {**_sweep("good", pool="POOL0004"), "currency": "EUR"}
    [reply], rig = await _run(values, tmp_path)
    assert reply["resp_code"] == "00" and reply["message_text"] == "MT101 sweep D INITECH EUR POOL", reply
    assert rig.sims["fc_posting"].requests == 0
    [mt101] = rig.sims["fc_swift"].seen
    assert mt101["block2"]["type"] == "101" and mt101["block2"]["receiver"] == "COBADEFFXXXX"
