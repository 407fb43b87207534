"""An http listen channel's answer is a status and a body: the capture keeps the status each request was
answered with (frames.status), and a replay compares the candidate's with it (reply field `(status)`).

Until 2026-11-27 a capture held bodies only: a candidate whose `status_map` answered a refused claim 200
instead of 422 (the insurer's system then books a refusal as paid) replayed PASS, 0 differences."""
from __future__ import annotations

from pathlib import Path

import duckdb
import httpx
import trio

from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.registry import default_registry
from engine.replay.capture import Capture
from engine.replay.session import replay_file
from engine.replay.tap import recording
from engine.runtime import Switchboard

ROUTE = '''
format Pay = json
format Ack = json

channel api = http listen {
    address = "127.0.0.1:0"
    path    = "/payments"
    %s
}

route pay {
    receive from api as Pay
    validate {
        msg.amount > 0 else reject "13" "invalid amount"
    }
    deal PAYMENT { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    reply Ack { status = "OK"  ref = msg.ref }
    on error reply Ack { status = "REFUSED"  ref = msg.ref }
}
'''


def config(d: Path, extra: str = "") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "pay.route").write_text(ROUTE % extra)
    return d


def record(tmp: Path, conf: Path, masked: bool = False) -> Path:
    registry = default_registry()
    res = compile_paths([conf / "pay.route"], registry)
    assert res.program is not None, res.diagnostics
    program = res.program
    capture = tmp / "http.duckdb"
    statuses: list[int] = []
    with recording(program, registry, capture, mask=masked) as (rreg, _rec):
        async def main() -> None:
            async with open_ledger(tmp / "ledger.duckdb", audit_key=None, keyring=None) as ledger:
                sb = Switchboard(program, rreg, ledger=ledger)
                async with trio.open_nursery() as nursery:
                    await nursery.start(sb.run)
                    url = f"http://127.0.0.1:{sb.channel('api').port}/payments"
                    async with httpx.AsyncClient() as c:
                        for body in ({"ref": "P1", "amount": 10}, {"ref": "P2", "amount": 0}):
                            statuses.append((await c.post(url, json=body)).status_code)
                    sb.drain()

        trio.run(main)
    assert statuses == [200, 422]
    return capture


def test_the_capture_keeps_the_http_status_and_a_replay_compares_it(tmp_path: Path) -> None:
    recorded = config(tmp_path / "recorded")
    capture = record(tmp_path, recorded)
    with duckdb.connect(str(capture), read_only=True) as con:
        rows = con.execute("SELECT status FROM frames WHERE role = 'inbound' AND direction = 'in' "
                           "ORDER BY t_ms").fetchall()
    assert rows == [(200,), (422,)], rows
    assert {ex.request.status for ex in Capture(capture).exchanges} == {200, 422}

    same = replay_file(capture, [recorded], default_registry())
    assert same.diff.exchanges == 2 and same.diff.identical == 2, [vars(d) for d in same.diff.differences]

    # the candidate answers a refusal 200: the same body, the same deal, another status
    candidate = config(tmp_path / "candidate", 'status_map = ["rejected:200"]')
    rep = replay_file(capture, [candidate], default_registry())
    diffs = [(d.what, d.channel, d.field, d.recorded, d.produced) for d in rep.diff.unexpected]
    assert diffs == [("reply", "api", "(status)", "422", "200")], diffs
    assert not rep.passed


def test_a_capture_of_before_the_column_replays_without_comparing_statuses(tmp_path: Path) -> None:
    recorded = config(tmp_path / "recorded")
    capture = record(tmp_path, recorded)
    with duckdb.connect(str(capture)) as con:
        con.execute("ALTER TABLE frames DROP COLUMN status")
    candidate = config(tmp_path / "candidate", 'status_map = ["rejected:200"]')
    rep = replay_file(capture, [candidate], default_registry())
    assert rep.diff.identical == 2 and not rep.diff.differences


def test_to_tests_expects_the_recorded_status(tmp_path: Path) -> None:
    """--to-tests writes the status each request was answered with (`expect reply 422 Ack { ... }`), so the
    generated tests pin it as the replay does; they pass against the recorded configuration."""
    from engine.replay.guide import FormatGuide
    from engine.replay.profile import Profile
    from engine.replay.totests import write_tests
    from engine.routetest.runner import run_paths
    from engine.runtime.binder import Binder

    recorded = config(tmp_path / "recorded")
    capture = record(tmp_path, recorded)
    registry = default_registry()
    program = compile_paths([recorded / "pay.route"], registry).program
    res = write_tests(Capture(capture), program, FormatGuide(program, Binder(program, registry).codec),
                      recorded, [recorded / "pay.route"], Profile(), mask=False)
    text = res.path.read_text()
    assert text.count("expect reply 200 Ack {") == 1 and text.count("expect reply 422 Ack {") == 1, text
    ran = run_paths([res.path], registry)
    assert not ran.broken and len(ran.outcomes) == 2 and all(o.passed for o in ran.outcomes), \
        [f for o in ran.outcomes for f in o.failures]
