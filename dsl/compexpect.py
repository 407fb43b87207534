"""What a compensation's ``expect`` reads, checked at compile time (E106).

``call d = debit ... expect d.status == "OK"  compensate call debit as J reply J { op = "cancel" ... }
expect d.status == "OK"``: inside the compensation's ``expect``, ``d`` is the **compensation's own answer**
(decoded with its ``reply`` format, or its request format when it names none); in the compensation's
body ``{ ... }`` (built before it leaves) ``d`` is still the call's answer, the one to undo, and so it is
everywhere else (``on error``).  A compensation that answers and whose ``expect`` holds on that answer is
what proves a call undone, and only such a deal frees its key (``engine/txn/keyhold.py``).

Until 2026-11-26 ``d`` in a compensation's ``expect`` was the call's answer: the check held whatever the
counterpart answered to the cancel.  Two ``expect``s can no longer mean what they meant, and are E106:

* one that does not read the compensation's answer at all (``expect msg.force == false``): it cannot tell
  a cancel accepted from one refused;
* one that reads a field the compensation's answer has not but the call's answer has (``d.conf`` where the
  cancel's reply format has no ``conf``): it was written for the call's answer.

Any other field the compensation's answer format does not have is E060, as for a call.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Iterator

from dsl import ast as A


def parts(e: A.Expr) -> Iterator[A.Expr]:
    """``e`` and every expression inside it."""
    yield e
    for f in fields(e):
        v = getattr(e, f.name)
        for x in (v if isinstance(v, tuple) else (v,)):
            if isinstance(x, A.Expr):
                yield from parts(x)


def check(checker: Any, call: A.CallStep, comp: A.Compensate, answer_format: str | None,
          call_format: str | None) -> bool:
    """E106 for the compensation's ``expect`` of ``call``; True when it reported one (the expect is then
    not checked further, so the analyst sees one diagnostic per cause)."""
    name, expect = call.name.name, comp.expect
    if expect is None:
        return False
    known = checker.res.format_fields.get(answer_format) if answer_format else None
    reads = [x for x in parts(expect) if isinstance(x, A.Name) and x.name == name]
    if not reads:
        checker.error("E106", f"the `expect` of the compensation of call `{name}` does not read its answer "
                      f"`{name}`: it cannot tell a cancel the counterpart accepted from one it refused",
                      expect.pos, f"in a compensation's `expect`, `{name}` is the compensation's own answer: "
                      f"e.g. expect {name}.{known[0] if known else 'status'} == \"OK\"")
        return True
    theirs = checker.res.format_fields.get(call_format) if call_format else None
    if known is None or answer_format == call_format:
        return False
    bad = False
    for x in parts(expect):
        if (isinstance(x, A.Attr) and isinstance(x.base, A.Name) and x.base.name == name
                and x.name not in known and theirs is not None and x.name in theirs):
            checker.error("E106", f"`{name}.{x.name}` in the `expect` of the compensation of call `{name}`: "
                          f"there `{name}` is the compensation's answer (format `{answer_format}`), which has "
                          f"no field `{x.name}`; the call's answer (format `{call_format}`) has it",
                          x.pos, f"a compensation's `expect` judges the compensation's own answer, not the "
                          f"call's (docs/transactions.md): check a field of `{answer_format}` ("
                          + ", ".join(known) + ")")
            bad = True
    return bad
