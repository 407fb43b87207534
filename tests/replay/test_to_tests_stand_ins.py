"""`bsp replay --to-tests` masks classified values, but a route that checks one (the standing orders route
checks the debtor IBAN's check digits with iban_valid) would reject a masked IBAN (`D***`) where it took the
recorded one, and fail its own generated test.  An IBAN or card number is written as a made-up one of the
same shape instead (formats.pseudonym): the same country and length with valid check digits, a Luhn-valid
card number with its BIN; the same real value gets the same stand-in within one output, and the real
values appear nowhere in it."""
from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
import trio

from dsl.functions import f_iban_valid
from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.registry import default_registry
from engine.replay.capture import Capture
from engine.replay.guide import FormatGuide
from engine.replay.profile import Profile
from engine.replay.tap import recording
from engine.replay.totests import write_tests
from engine.routetest.runner import run_paths
from engine.runtime import Switchboard
from engine.runtime.binder import Binder
from engine.sim.framed import FramedServer
from formats.pseudonym import Pseudonyms, iban_form, luhn_ok

REPO = Path(__file__).resolve().parents[2]
ROUTE = REPO / "routes" / "standing_orders" / "standing_orders.route"
HEADER = "utility_id,mandate_ref,debtor_name,debtor_iban,amount,currency,due_date,bill_ref"
REAL = ("DE89370400440532013000", "GB29NWBK60161331926819", "gb29 nwbk 6016 1331 9268 19")


def _batch() -> bytes:
    due = (date.today() + timedelta(days=30)).isoformat()
    lines = [HEADER,
             f"UT000001,M-1,ANNA PAYER,{REAL[0]},12.50,EUR,{due},B-1",            # debited
             f"UT000002,M-2,BERT PAYER,{REAL[1]},20.00,EUR,{due},B-2",            # debited
             f"UT000001,M-3,CARL PAYER,{REAL[2]},30.00,EUR,{due},B-3",            # paper form: debited
             f"UT000003,M-4,DORA PAYER,{REAL[0]},40.00,EUR,{due},B-4",            # the first IBAN again
             f"UT000001,M-5,EMIL PAYER,DE00370400440532013000,10.00,EUR,{due},B-5"]   # check digits wrong
    return ("\n".join(lines) + "\n").encode()


class _Mainframe(FramedServer):
    framing = "length2"

    def __init__(self, req: object, rsp: object) -> None:
        self.req, self.rsp = req, rsp

    def reply_frame(self, payload: bytes) -> bytes:
        r = self.req.decode(payload)
        return self.rsp.encode({"trace_no": r["mandate_ref"][-16:], "resp_code": "00", "host_ref": "HOST1",
                                "amount": r["amount"], "currency": r["currency"], "message_text": "debited"})


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("so")
    inbox, outbox = tmp / "inbox", tmp / "outbox"
    inbox.mkdir()
    outbox.mkdir()
    registry = default_registry()
    program = compile_paths([ROUTE], registry).program
    binder = Binder(program, registry)
    host = _Mainframe(binder.codec("SoCollReq"), binder.codec("MfRsp"))
    path = tmp / "so.duckdb"
    with recording(program, registry, path) as (rreg, _rec):
        async def main() -> None:
            async with open_ledger(tmp / "ledger.duckdb", audit_key=None, keyring=None) as ledger:
                async with trio.open_nursery() as nursery:
                    port = await nursery.start(host.serve)
                    sb = Switchboard(program, rreg, ledger=ledger, overrides={
                        "so_batch_in": {"dir": str(inbox)}, "so_result_out": {"dir": str(outbox)},
                        "so_mainframe": {"address": f"127.0.0.1:{port}"}})
                    await nursery.start(sb.run)
                    (inbox / "SO-1.csv").write_bytes(_batch())
                    with trio.fail_after(20):
                        while not any((inbox / d / "SO-1.csv").exists() for d in ("done", "error")):
                            await trio.sleep(0.05)
                    sb.drain()
                    nursery.cancel_scope.cancel()

        trio.run(main)
    results = "".join(p.read_text() for p in outbox.iterdir() if p.is_file())
    assert results.count("ACCEPTED") == 4, results
    return path


def _write(capture: Path, out: Path) -> Path:
    registry = default_registry()
    program = compile_paths([ROUTE], registry).program
    res = write_tests(Capture(capture), program, FormatGuide(program, Binder(program, registry).codec), out,
                      [ROUTE], Profile())
    assert res.written == 5, res.skipped
    return res.path


def test_generated_tests_of_a_route_that_checks_ibans_pass_without_the_real_ibans(capture: Path,
                                                                                   tmp_path: Path) -> None:
    path = _write(capture, tmp_path / "gen")
    text = path.read_text()
    for real in (*REAL, "GB29NWBK60161331926819".lower(), "DE00370400440532013000"[4:], "370400440532013000",
                 "NWBK60161331926819", "ANNA PAYER"):
        assert real not in text, real
    assert "made-up ones of the same shape" in text
    ran = run_paths([path], default_registry())
    assert not ran.broken, [d.message for b in ran.broken for d in b.diagnostics]
    assert len(ran.outcomes) == 5 and all(o.passed for o in ran.outcomes), \
        [f for o in ran.outcomes for f in o.failures]


def test_the_stand_ins_keep_the_shape_and_each_real_value_gets_one(capture: Path, tmp_path: Path) -> None:
    text = _write(capture, tmp_path / "gen").read_text()
    sent = {}
    for t in text.split("given so_batch_in sends")[1:]:
        sent[t.split('mandate_ref = "')[1].split('"')[0]] = t.split('debtor_iban = "')[1].split('"')[0]
    assert sorted(sent) == ["M-1", "M-2", "M-3", "M-4", "M-5"], text
    first, second, paper, again, wrong = (sent[f"M-{n}"] for n in range(1, 6))
    assert again == first                                  # the same real IBAN, the same stand-in
    assert len({first, second}) == 2
    assert first[:2] == "DE" and len(first) == 22 and f_iban_valid(first)
    assert second[:2] == "GB" and len(second) == 22 and f_iban_valid(second)
    # laid out as written (lower case, spaces), and valid once normalised as the route does
    assert paper.startswith("gb") and paper.count(" ") == 5 and f_iban_valid(paper.replace(" ", "").upper())
    assert wrong == "D***"                                 # not a valid IBAN: masked as before
    # the paper form is the second IBAN: its electronic form gets the second's stand-in
    assert paper.replace(" ", "").upper() == second
    called = {t.split('debtor_iban = "')[1].split('"')[0] for t in text.split("expect call so_mainframe")[1:]}
    assert called == {first, second}


def test_stand_ins_of_ibans_and_card_numbers() -> None:
    p = Pseudonyms(key=b"k" * 32)
    extra = p.add({"DE89 3704 0044 0532 0130 00": "personal", "4111111111111111": "pan",
                   "4012888888881881": "personal", "4111111111111111x": "pan", "5500000000000004": "secret"})
    assert extra == {"DE89370400440532013000": "personal"}
    m = p.mapping
    fake = m["DE89370400440532013000"]
    assert iban_form(fake) == fake and fake[:2] == "DE" and len(fake) == 22 and fake != "DE89370400440532013000"
    assert m["DE89 3704 0044 0532 0130 00"] == " ".join(fake[i:i + 4] for i in range(0, 22, 4))
    pan = m["4111111111111111"]
    assert pan != "4111111111111111" and pan[:6] == "411111" and pan[-4:] == "1111" and luhn_ok(pan)
    personal = m["4012888888881881"]
    assert personal[0] == "4" and len(personal) == 16 and luhn_ok(personal)
    assert "4111111111111111x" not in m and "5500000000000004" not in m      # no shape; a secret
    again = Pseudonyms(key=b"k" * 32)
    again.add({"4111111111111111": "pan"})
    assert again.mapping["4111111111111111"] == pan                        # deterministic under one key
