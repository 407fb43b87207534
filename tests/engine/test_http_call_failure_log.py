"""An `http call` counterpart that is down is logged once, then once a minute while it stays down, then once
when it answers again: not a warning per call (200 calls in an outage were 200 warning lines, a flood that
hid everything else in the log). Calls it answers but refuses (a status not taken) are no outage: a warning
at most once a minute, the next counting those between. Every call still fails with its own reason."""
from __future__ import annotations

import functools
import logging

import pytest
import trio

from engine.channels.failure_log import OUTAGE, FailureLog
from engine.channels.http_call import HttpConnector
from engine.http import Response, Router, serve_http
from engine.resilience import FAILURE_KINDS


def warnings(caplog, name: str = "bsp.channel.http") -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name and r.levelno >= logging.WARNING]


def test_outage_kinds_are_the_resilience_failure_kinds() -> None:
    assert OUTAGE == FAILURE_KINDS


def test_a_streak_is_said_when_it_starts_changes_kind_lasts_a_minute_and_ends(caplog) -> None:
    now = [1_000_000.0]
    fl = FailureLog(logging.getLogger("t.fl"), "b", every=60, clock=lambda: now[0], peer="b.example:443")
    caplog.set_level(logging.DEBUG, "t.fl")
    for _ in range(50):
        fl.failure("unreachable", "channel b: cannot connect")
        now[0] += 1
    fl.failure("timeout", "channel b: no answer within 2s")        # another reason: said at once
    now[0] += 20
    fl.failure("unreachable", "channel b: cannot connect")         # 20 s after the last warning: at debug
    now[0] += 40
    fl.failure("unreachable", "channel b: cannot connect")         # 60 s after it: a reminder
    fl.answered()
    fl.answered()                                                   # nothing more to say
    said = warnings(caplog, "t.fl")
    # each start line is the failure's own text, tagged for grep (engine/outage_log.py)
    assert said[:2] == ["channel b: cannot connect [outage start: b.example:443 since 1970-01-12T13:46:40Z]",
                        "channel b: no answer within 2s [outage start: b.example:443 since 1970-01-12T13:46:40Z]"]
    assert said[2].startswith("channel b: still failing: 2 call(s) in the last 60s, 53 since ")
    assert "(unreachable 52, timeout 1)" in said[2]
    assert said[2].endswith(" [outage reminder: b.example:443 down 110.0s]")
    assert said[3].startswith("channel b: answers again: a call was answered after 53 failed call(s) since ")
    assert said[3].endswith(" [outage end: b.example:443 down 110.0s, 53 call(s) failed]")
    assert len(said) == 4
    assert sum(r.levelno == logging.DEBUG for r in caplog.records if r.name == "t.fl") == 50


def test_refused_answers_are_said_once_a_minute_and_end_an_outage(caplog) -> None:
    now = [1_000_000.0]
    fl = FailureLog(logging.getLogger("t.fr"), "b", every=60, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, "t.fr")
    fl.failure("timeout", "channel b: no answer")
    fl.failure("refused", "channel b: answered 422")          # it answers: the outage is over
    for _ in range(30):
        now[0] += 1
        fl.failure("refused", "channel b: answered 422")
    now[0] += 31
    fl.failure("refused", "channel b: answered 500")
    said = warnings(caplog, "t.fr")
    assert said[0].startswith("channel b: no answer [outage start: ")
    assert said[1].startswith("channel b: answers again: a call was answered after 1 failed call(s)")
    assert said[2] == "channel b: answered 422"
    assert said[3] == "channel b: answered 500 (30 more answered and refused in the last 61s, logged at debug)"
    assert len(said) == 4


async def test_a_counterpart_down_then_back_is_three_lines_not_one_per_call(caplog, held_port, nursery) -> None:
    caplog.set_level(logging.INFO, "bsp.channel.http")
    port = held_port.port
    c = HttpConnector("biller", {"url": f"http://127.0.0.1:{port}/payments", "connect_timeout": 1})
    await nursery.start(c.run)
    results = await c.request_many([b'{"reference": "D%d"}' % i for i in range(40)], 30)   # a hang guard (refused at once)
    assert [r.kind for r in results] == ["unreachable"] * 40         # each call still fails with its reason
    assert len(warnings(caplog)) == 1                                # was 40

    router = Router()

    @router.route("POST", "/payments")
    async def pay(request):
        if request.json()["reference"] == "R1":
            return Response.problem(503, "maintenance")
        return Response.json({"status": "OK"})

    held_port.release()
    await nursery.start(functools.partial(serve_http, router, "127.0.0.1", port))
    (ok,) = await c.request_many([b'{"reference": "B1"}'], 30)     # not 5 s: a loaded machine
    assert not hasattr(ok, "kind")
    (refused,) = await c.request_many([b'{"reference": "R1"}'], 30)
    assert refused.kind == "refused"
    said = warnings(caplog)
    assert said[1].startswith("channel biller: answers again: a call was answered after 40 failed call(s) since ")
    assert "(unreachable 40)" in said[1]
    assert "503" in said[2] and len(said) == 3
    assert c.errors == {"unreachable": 40, "refused": 1}


@pytest.mark.parametrize("kind", sorted(OUTAGE))
def test_each_outage_kind_starts_a_streak(kind, caplog) -> None:
    fl = FailureLog(logging.getLogger("t.k"), "b", clock=lambda: 0.0)
    caplog.set_level(logging.WARNING, "t.k")
    for _ in range(3):
        fl.failure(kind, f"{kind}!")
    fl.answered()
    assert [m.split(":")[0].split(" [")[0] for m in warnings(caplog, "t.k")] == [f"{kind}!", "channel b"]


def test_quiet_kinds_are_counted_but_left_to_whoever_says_them(caplog) -> None:
    now = [0.0]
    fl = FailureLog(logging.getLogger("t.q"), "b", clock=lambda: now[0], quiet=frozenset({"timeout"}))
    caplog.set_level(logging.WARNING, "t.q")
    for _ in range(3):
        now[0] += 100
        fl.failure("timeout", "no answer")             # CallHealth says it: no line here, no reminder
    fl.answered()
    assert warnings(caplog, "t.q") == []
    fl.failure("timeout", "no answer")
    fl.failure("unreachable", "cannot connect")        # a loud kind in the streak: its end is said
    fl.answered()
    said = warnings(caplog, "t.q")
    assert said[0].startswith("cannot connect [outage start: ") and "after 2 failed call(s)" in said[1] and "(timeout 1, unreachable 1)" in said[1]


async def test_http_call_timeouts_are_not_said_twice(caplog, nursery) -> None:
    caplog.set_level(logging.WARNING)
    router = Router()

    @router.route("POST", "/payments")
    async def slow(request):
        await trio.sleep(30)
        return Response.json({})

    port = await nursery.start(functools.partial(serve_http, router, "127.0.0.1", 0))
    c = HttpConnector("biller", {"url": f"http://127.0.0.1:{port}/payments"})
    await nursery.start(c.run)
    results = await c.request_many([b'{}', b'{}'], 0.2)
    assert [r.kind for r in results] == ["timeout", "timeout"]
    assert warnings(caplog) == []            # engine/ops/health.CallHealth logs a streak of timeouts, once
