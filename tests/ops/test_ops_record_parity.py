"""`bsp run --record` (and channels with `record = true`) wrap each listening channel's handler in a
recording tap (engine.replay.tap.TapHandler).  Recording must not change what the engine does: an http
listen still answers a rejected deal 422 and records a refused signature, a file watch still sends a
file with bad records to error/, a NATS consumer still acks/naks each message by its own deal, and a
route still sees each frame's TPDU header.  The tap used to hide the dispatcher from the channels
(every outcome 'unknown': 200 for a rejected deal, bad files to done/) and to hand every frame of a
batch the whole batch's headers and outcome list.

Real engine (LiveEngine, as `bsp run`), real sockets on 127.0.0.1 (port 0), real DuckDB files."""
from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path

import httpx
import pytest
import trio

from engine.ledger_query import query_dead_letters
from engine.registry import default_registry
from engine.replay.capture import Capture
from engine.replay.session import replay_file
from engine.replay.tap import recording
from opskit import compile_file, live, rows

SECRET = "record-partner-secret-17"

HTTP_ROUTE = '''
format Pay = json
format Ack = json

channel api = http listen {
    address    = "127.0.0.1:0"
    path       = "/payments/{id}"
    signature_header  = "X-Signature"
    signature_key_env = "BSP_TEST_RECORD_PARTNER_KEY"
}

route pay {
    receive from api as Pay
    validate {
        msg.amount > 0   else reject "13" "amount must be positive"
    }
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    reply Ack { status = "OK"  ref = msg.ref }
}
'''

FILE_ROUTE = '''
format Pay = json

channel inbox = file watch {
    dir     = "%s"
    pattern = "*.jsonl"
    rescan  = 50ms
}

route pay {
    receive from inbox as Pay
    validate {
        msg.amount > 0 else reject "13" "invalid amount"
    }
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
}
'''


@pytest.fixture(autouse=True)
def partner_key(monkeypatch) -> None:
    monkeypatch.setenv("BSP_TEST_RECORD_PARTNER_KEY", SECRET)


def signed(body: bytes) -> dict[str, str]:
    return {"content-type": "application/json",
            "X-Signature": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}


async def test_http_listen_under_record_answers_each_outcome_and_records_refusals(tmp_path: Path) -> None:
    route = tmp_path / "api.route"
    route.write_text(HTTP_ROUTE)
    registry = default_registry()
    program = compile_file(route, registry)
    ledger, capture = tmp_path / "l.duckdb", tmp_path / "cap.duckdb"
    with recording(program, registry, capture) as (reg, rec):
        assert rec is not None
        async with live([route], ledger, registry=reg) as eng:
            url = f"http://127.0.0.1:{eng.current.channels['api'].port}/payments/1"
            async with httpx.AsyncClient(timeout=10) as c:
                good = b'{"ref": "G1", "amount": 10}'
                r = await c.post(url, content=good, headers=signed(good))
                assert r.status_code == 200 and r.json() == {"status": "OK", "ref": "G1"}, r.text
                bad = b'{"ref": "R1", "amount": -1}'
                r = await c.post(url, content=bad, headers=signed(bad))
                assert r.status_code == 422, (r.status_code, r.text)
                assert r.json()["code"] == "13" and r.json()["deal_status"] == "rejected"
                forged = b'{"ref": "U1", "amount": 99}'
                r = await c.post(url, content=forged, headers={**signed(b"other"), "content-type": "application/json"})
                assert r.status_code == 401, (r.status_code, r.text)
    got = rows(ledger, "SELECT deal_type, status, response_code FROM deals ORDER BY received_at")
    assert got == [("PAYMENT", "committed", None), ("pay", "rejected", "13"),
                   ("UNAUTHENTICATED", "rejected", "63")], got
    letters = query_dead_letters(ledger, with_raw=True)
    assert sorted((bytes(x["raw"]), x["error_kind"]) for x in letters) == sorted(
        [(bad, "rejected"), (forged, "unauthenticated")]), letters
    cap = Capture(capture)
    got = [(ex.request.raw, ex.request.deal_status, (ex.request.error or "").split(":")[:2]) for ex in cap.exchanges]
    # the refused request is in the capture too, with its body and why the channel refused it (it used
    # to be in the ledger and the dead letters only: the refusal path gave the tap no request bytes)
    assert got == [(good, "committed", [""]), (bad, "rejected", [""]),
                   (forged, "rejected", ["refused", " unauthenticated"])], got
    assert all(ex.request.config_version == eng.version for ex in cap.exchanges)
    # a replay refuses it again through the candidate (it cannot check a signature: no headers are
    # recorded), so the unchanged configuration replays with no difference
    report = await trio.to_thread.run_sync(lambda: replay_file(capture, [route], default_registry()))
    assert report.diff.exchanges == 3 and report.diff.differences == [], [(d.recorded, d.produced) for d in report.diff.differences]


async def test_file_watch_under_record_sends_a_file_with_bad_records_to_error(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    route = tmp_path / "files.route"
    route.write_text(FILE_ROUTE % inbox)
    registry = default_registry()
    program = compile_file(route, registry)
    ledger = tmp_path / "l.duckdb"
    with recording(program, registry, tmp_path / "cap.duckdb") as (reg, _):
        async with live([route], ledger, registry=reg):
            tmp = inbox / ".bad.tmp"
            tmp.write_bytes(b'{"ref": "B1", "amount": 5}\n{"ref": "B2", "amount": \n{"ref": "B3", "amount": -1}\n'
                            b'{"ref": "B4", "amount": 7}\n')
            os.replace(tmp, inbox / "bad.jsonl")
            with trio.fail_after(10):
                while (inbox / "bad.jsonl").exists():
                    await trio.sleep(0.02)
    assert (inbox / "error" / "bad.jsonl").exists(), sorted(p.name for p in inbox.rglob("*"))
    reason = (inbox / "error" / "bad.jsonl.reason.txt").read_text()
    assert "2 problem(s) in 4 record(s)" in reason, reason
    assert "record 2, byte offset 27: rejected (malformed" in reason, reason
    assert "record 3, byte offset 52: rejected (rejected, code 13): invalid amount" in reason, reason
    # recorded, the records go one by one through the tap: each still knows its place in the file
    assert re.search(r"record 2, byte offset 27: .*: line 2, byte 51: invalid JSON", reason), reason
    refs = rows(ledger, "SELECT reference, status FROM deals WHERE reference IS NOT NULL ORDER BY reference")
    assert refs == [("B1", "committed"), ("B4", "committed")], refs


TPDU_ROUTE = '''
format Req = json

channel pos = tcp listen {
    address      = "127.0.0.1:0"
    framing      = length2
    header_size  = 5
    header_reply = swap
}

route acquirer_a {
    receive from pos as Req when header.dest == "0003"
    deal PURCHASE { ref = msg.ref  amount = msg.amount  currency = "CNY" }
    reply Req { route = "a"  ref = msg.ref  terminal_nii = header.src }
}

route acquirer_b {
    receive from pos as Req when header.dest == "0004"
    deal PURCHASE { ref = msg.ref  amount = msg.amount  currency = "CNY" }
    reply Req { route = "b"  ref = msg.ref  terminal_nii = header.src }
}
'''


async def test_each_frame_of_a_batch_keeps_its_own_tpdu_under_record(tmp_path: Path) -> None:
    """Three requests in one write are one batch; the tap dispatches them one by one and used to give
    each the batch's three headers, which the dispatcher then ignored (header.dest unknown: unrouted)."""
    import orjson
    from formats.framing import make_framer

    route = tmp_path / "pos.route"
    route.write_text(TPDU_ROUTE)
    registry = default_registry()
    program = compile_file(route, registry)
    ledger = tmp_path / "l.duckdb"
    a, b = bytes.fromhex("6000030011"), bytes.fromhex("6000040012")
    with recording(program, registry, tmp_path / "cap.duckdb") as (reg, _):
        async with live([route], ledger, registry=reg) as eng:
            stream = await trio.open_tcp_stream("127.0.0.1", eng.current.channels["pos"].port)
            await stream.send_all(b"".join(make_framer("length2", header_size=5, header=t).frame(
                orjson.dumps({"ref": f"R{i}", "amount": 10})) for i, t in enumerate([a, b, a])))
            rx = make_framer("length2", header_size=5)
            got: list[bytes] = []
            with trio.fail_after(10):
                while len(got) < 3:
                    got.extend(rx.feed(await stream.receive_some(65536)))
            await stream.aclose()
    bodies = [orjson.loads(g) for g in got]
    assert [(h.hex(), x["route"], x["terminal_nii"]) for h, x in zip(rx.headers, bodies)] == [
        ("6000110003", "a", "0011"), ("6000120004", "b", "0012"), ("6000110003", "a", "0011")], bodies
    assert sorted(r[0] for r in rows(ledger, "SELECT route FROM deals")) == ["acquirer_a", "acquirer_a", "acquirer_b"]
