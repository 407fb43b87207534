"""E135 (dsl/statement_args.py): ``bsp check`` refuses statement_check / statement_kind / a `continuity` step given
the message of a format that holds no bank statement (swift mt103, iso20022 pain.001, a fixed record), at the
argument; a statement's format (swift mt940 / mt950 / of any type, camt.053, json) passes.  Compiled against the
registry the service routes use (swift and iso20022 formats, the continuity step)."""
from __future__ import annotations

import pytest

from dsl.load import compile_source
from engine.sim.services.registry import services_registry


def _diags(fmt: str, body: str) -> list:
    src = (f"channel mf = memory\nformat In = {fmt}\nformat Ack = json\n"
           f"route r {{\n    receive from mf as In\n{body}    reply Ack {{ code = \"00\" }}\n}}\n")
    res = compile_source(src, services_registry())
    return [d for d in res.diagnostics if d.is_error]


@pytest.mark.parametrize("fmt, holds", [
    ("swift mt103", "swift mt103: an MT103 (Single Customer Credit Transfer)"),
    ("swift mt202", "swift mt202: an MT202 (General Financial Institution Transfer)"),
    ("iso20022 pain.001.001.03 validate false", "iso20022 pain.001.001.03"),
    ("iso8583 iso8583_1987_ascii", "iso8583: an ISO 8583 message"),
])
def test_a_statement_function_given_a_message_that_holds_none_is_refused_at_the_argument(fmt: str, holds: str):
    (d,) = _diags(fmt, "    let chk = statement_check(msg)\n    let k = 1\n")
    assert (d.code, d.pos.line, d.pos.col) == ("E135", 6, 31)
    assert d.message.startswith(f"statement_check(): `msg` is of format `In` ({holds}), which holds no bank "
                                f"statement: it reads an MT940 (customer statement), MT942")
    (d,) = [d for d in _diags(fmt, "    let kind = statement_kind(msg.block4)\n") if d.code == "E135"]
    assert (d.code, d.pos.col) == ("E135", 31) and "`msg.block4` is of format `In`" in d.message


def test_the_continuity_step_given_an_mt103_is_refused_at_its_statement():
    body = ("    deal STMT { ref = msg.block4[0].value  amount = 0  key = msg.block4[0].value }\n"
            "    continuity statements {\n        key       = \"M0001\"\n        statement = msg.block4\n    }\n")
    (d,) = _diags("swift mt103", body)
    assert (d.code, d.pos.line, d.pos.col) == ("E135", 9, 21)
    assert d.message.startswith("`continuity statements`: statement: `msg.block4` is of format `In` (swift mt103")
    assert _diags("swift mt950", body) == [] and _diags("swift mt940", body) == []


@pytest.mark.parametrize("fmt", ["swift mt940", "swift mt942", "swift mt950", "swift",
                                 "iso20022 camt.053.001.02 validate false",
                                 "iso20022 camt.052.001.02 validate false", "json"])
def test_a_statements_format_passes(fmt: str):
    assert _diags(fmt, "    let chk = statement_check(msg)\n") == []
