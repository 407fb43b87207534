"""``error.undone`` and ``error.flagged`` (engine.txn.outcome): what became of a failed deal's calls, told to its
``on error`` steps after the compensations ran and before the answer is built (docs/language.md, "Scope");
``expect deal ... { flagged = true }`` in route tests; ``bsp check`` knows both fields (E060 for a misspelt one,
E103 for ``flagged = "true"``).

Each case is a route test run by the real route test engine (loopback TCP, a DuckDB ledger): the route
answers ``error.code``, ``error.undone`` and ``error.flagged`` in a JSON reply."""
from __future__ import annotations

from pathlib import Path

import pytest

from dsl.load import compile_paths
from engine.registry import default_registry
from engine.routetest.runner import run_paths

ROUTE = '''format Req = json
format Rsp = json
format Post = json
format Ack = json

channel mf = tcp listen {
    address = "127.0.0.1:7990"
    framing = length2
    on error reply Rsp { code = error.code  undone = error.undone  flagged = error.flagged  left = len(error.not_undone) }
}
channel core = tcp connect {
    address = "127.0.0.1:7991"
    framing = length4
    timeout = 1s
}
channel co = tcp connect {
    address = "127.0.0.1:7992"
    framing = length4
    timeout = 1s
}

# two legs, the first compensated (its cancel judged by its own answer), a deal key
route keyed {
    receive from mf as Req when msg.op == "K"
    deal PAIR {
        ref    = msg.ref
        amount = msg.amount
        key    = msg.ref
    }
    validate {
        msg.amount > 0 else reject "13" "invalid amount"
    }
    call debit = core as Post reply Ack { op = "DEBIT"  ref = msg.ref } expect debit.status == "POSTED"
        compensate call core as Post reply Ack { op = "CANCEL"  ref = msg.ref } expect debit.status == "CANCELLED"
    call order = co as Post reply Ack { op = "ORDER"  ref = msg.ref } expect order.status == "OK"
    reply Rsp { code = "00" }
    on error reply Rsp { code = error.code  undone = error.undone  flagged = error.flagged  left = len(error.not_undone) }
}

# the same, but the cancel has no `expect`: its answer alone does not say it was accepted
route unproven {
    receive from mf as Req when msg.op == "N"
    call debit = core as Post reply Ack { op = "DEBIT"  ref = msg.ref } expect debit.status == "POSTED"
        compensate call core as Post reply Ack { op = "CANCEL"  ref = msg.ref }
    call order = co as Post reply Ack { op = "ORDER"  ref = msg.ref } expect order.status == "OK"
    reply Rsp { code = "00" }
    on error reply Rsp { code = error.code  undone = error.undone  flagged = error.flagged  left = len(error.not_undone) }
}

# a light route: two calls, nothing compensates them
route light {
    receive from mf as Req when msg.op == "L"
    call a = core as Post reply Ack { op = "A"  ref = msg.ref } expect a.status == "POSTED"
    call b = co as Post reply Ack { op = "B"  ref = msg.ref } expect b.status == "OK"
    reply Rsp { code = "00" }
    on error reply Rsp { code = error.code  undone = error.undone  flagged = error.flagged  left = len(error.not_undone) }
}
'''

# name -> (request op, ref, amount, the answers, code, undone, flagged, left: how many calls error.not_undone names)
CASES = {
    "rejected by validate: nothing made": ("K", "R1", 0, [], "13", True, False, 0),
    "the first call refused: nothing made": ("K", "R2", 5, ['core answers Ack { status = "REFUSED" }'],
                                             "05", True, False, 0),
    "the order refused, the debit cancelled": ("K", "R3", 5, [
        'core answers Ack { status = "POSTED" }', 'co answers Ack { status = "NO" }',
        'core answers Ack { status = "CANCELLED" }'], "05", True, False, 0),
    "the order unreachable, the debit cancelled": ("K", "R4", 5, [
        'core answers Ack { status = "POSTED" }', "co answers unreachable",
        'core answers Ack { status = "CANCELLED" }'], "91", True, False, 0),
    # the order has no compensation: in doubt, nothing undoes it and it may have gone through, so (`on doubt
    # flag`, the default) the debit is kept and the deal flagged (error.not_undone names the debit and the order)
    "the order in doubt (timeout), the debit kept: flagged": ("K", "R5", 5, [
        'core answers Ack { status = "POSTED" }', "co answers timeout"], "68", False, True, 2),
    "the debit in doubt (timeout), its cancel accepted": ("K", "R6", 5, [
        "core answers timeout", 'core answers Ack { status = "CANCELLED" }'], "68", False, False, 0),
    "the cancel refused: flagged": ("K", "R7", 5, [
        'core answers Ack { status = "POSTED" }', "co answers unreachable",
        'core answers Ack { status = "REFUSED" }'], "91", False, True, 1),
    "the cancel unanswered: flagged": ("K", "R8", 5, [
        'core answers Ack { status = "POSTED" }', 'co answers Ack { status = "NO" }',
        "core answers timeout"], "05", False, True, 1),
    "a cancel without expect proves nothing": ("N", "R9", 5, [
        'core answers Ack { status = "POSTED" }', "co answers unreachable",
        'core answers Ack { status = "CANCELLED" }'], "91", False, False, 1),
    "light: the first call refused": ("L", "L1", 5, ['core answers Ack { status = "NO" }'], "05", True, False, 0),
    "light: the first call unreachable": ("L", "L2", 5, ["core answers unreachable"], "91", True, False, 0),
    "light: the first call in doubt: flagged": ("L", "L3", 5, ["core answers timeout"], "68", False, True, 1),
    "light: the second call in doubt: flagged": ("L", "L5", 5, [
        'core answers Ack { status = "POSTED" }', "co answers timeout"], "68", False, True, 2),
    "light: the second call refused, the first stands": ("L", "L4", 5, [
        'core answers Ack { status = "POSTED" }', 'co answers Ack { status = "NO" }'], "05", False, False, 1),
    "unrouted: the channel's on error reply": ("Z", "U1", 5, [], "12", True, False, 0),
}


def _test(name: str, op: str, ref: str, amount: int, answers: list[str], code: str, undone: bool,
          flagged: bool, left: int) -> str:
    lines = [f'test "{name}" {{', f'    given mf sends Req {{ op = "{op}"  ref = "{ref}"  amount = {amount} }}']
    lines += [f"    given {a}" for a in answers]
    lines.append(f'    expect reply {{ code = "{code}"  undone = {str(undone).lower()}  flagged = {str(flagged).lower()}'
                 f'  left = {left} }}')
    if op in ("K", "L"):
        lines.append(f"    expect deal {'PAIR' if op == 'K' else 'light'} {{ flagged = {str(flagged).lower()} }}")
    return "\n".join(lines + ["}"])


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    d = tmp_path_factory.mktemp("outcome")
    (d / "r.route").write_text(ROUTE)
    tests = "\n\n".join(_test(name, *case) for name, case in CASES.items())
    (d / "r_test.route").write_text('use "r.route"\n\n' + tests + "\n")
    res = run_paths([d], default_registry())
    assert not [x for x in getattr(res, "diagnostics", ()) if x.severity == "error"]
    return {o.name: o for o in res.outcomes}


@pytest.mark.parametrize("name", list(CASES))
def test_on_error_sees_what_became_of_the_calls(outcomes, name):
    out = outcomes[name]
    assert out.passed, out.failures


def _diags(tmp_path: Path, on_error: str, expect: str = "") -> list[tuple[str, int, int, str, str]]:
    (tmp_path / "r.route").write_text(ROUTE.replace(
        "on error reply Rsp { code = error.code  undone = error.undone  flagged = error.flagged  left = len(error.not_undone) }\n}\n\n# the same",
        on_error + "\n}\n\n# the same", 1))
    (tmp_path / "r_test.route").write_text(
        'use "r.route"\n\ntest "t" {\n    given mf sends Req { op = "K"  ref = "X"  amount = 0 }\n'
        f"    expect reply {{ code = \"13\" }}\n{expect}}}\n")
    res = compile_paths(sorted(tmp_path.glob("*.route")), default_registry())
    return [(d.code, d.pos.line, d.pos.col, d.message, d.help) for d in res.diagnostics]


def test_check_knows_the_fields_and_a_misspelt_one_is_e060(tmp_path):
    assert _diags(tmp_path, "on error reply Rsp { code = if error.flagged or not error.undone then \"22\" "
                            "else error.code }") == []
    got = _diags(tmp_path, "on error reply Rsp { code = error.code  f = error.flaged }")
    assert len(got) == 1 and got[0][:3] == ("E060", 37, 49), got
    assert got[0][3] == "`error` has no field `flaged`" and got[0][4] == "did you mean `flagged`?", got


def test_expect_deal_flagged_takes_true_or_false_not_text(tmp_path):
    got = _diags(tmp_path, "on error reply Rsp { code = error.code }",
                 '    expect deal PAIR { flagged = "true" }\n')
    assert [g[:3] for g in got] == [("E103", 6, 34)], got
    assert got[0][3] == "a deal's field `flagged` is true or false: the text \"true\" is never equal to it", got
    assert got[0][4] == "write it without quotes: `flagged = true`", got
    got = _diags(tmp_path, "on error reply Rsp { code = error.code }", "    expect deal PAIR { flaged = true }\n")
    assert [g[0] for g in got] == ["E096"] and "did you mean `flagged`?" in got[0][4], got
