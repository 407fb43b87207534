"""One test's expectations, checked against what the isolated engine did (an ExchangeCtx).

Every failure message starts with the expectation's place (file:line:col) and
says what was expected and what happened.
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable

from engine.replay.diff import MISSING, flatten, same
from engine.replay.report import _show

DEAL_ATTRS = {"status": "status", "amount": "amount", "ref": "reference", "currency": "currency",
              "party": "party", "response_code": "response_code", "reason": "reason", "route": "route"}
DEAD_ATTRS = ("channel", "route", "error_kind", "error_code", "reason", "status")


class Checker:
    def __init__(self, binder: Any, guide: Any, scope: dict[str, Any], decode: Callable[..., Any]) -> None:
        self.binder = binder
        self.guide = guide
        self.scope = scope
        self.decode = decode

    def value(self, assign: Any) -> Any:
        return self.binder.expr(assign.value)(self.scope)

    def fields(self, fields: Any, actual: dict[str, Any], what: str) -> list[str]:
        out = []
        for a in fields:
            want = self.value(a)
            got = actual.get(a.path, MISSING)
            if got is MISSING and '["' in a.path:       # quoted names ("39" = ..) are plain keys once flattened
                got = actual.get(_flat_path(a.path), MISSING)
            if not same(want, got):
                out.append(f"{a.pos}: {what}: field `{a.path}`: expected {_show(want)}, got {_show(got)}")
        return out

    def check(self, e: Any, ctx: Any, channel: str) -> list[str]:
        where = f"{e.pos}: expect"
        if e.kind == "no_reply":
            return [] if ctx.reply is None else [f"{where} no reply: a reply was sent: {_decoded(self, channel, ctx.reply)}"]
        if e.kind == "reply":
            if ctx.reply is None:
                return [f"{where} reply: no reply was sent" + _why(ctx)]
            fmt, values = self.decode(channel, "inbound", "out", ctx.reply, e.format)
            if fmt is None:
                return [f"{where} reply: the reply does not decode as "
                        f"{e.format or ' or '.join(self.guide.candidates(channel, 'inbound', 'out'))}: {ctx.reply[:60]!r}"]
            return self.fields(e.fields, flatten(values), "expect reply")
        if e.kind in ("call", "no_call"):
            calls = ctx.calls_to(e.target)
            if e.kind == "no_call":
                return [] if not calls else [f"{where} no call {e.target}: {len(calls)} call(s) were made"]
            if not calls:
                return [f"{where} call {e.target}: no call to {e.target} was made" + _why(ctx)]
            tried = []
            for c in calls:
                fmt, values = self.decode(e.target, "outbound", "out", c.request, e.format)
                if fmt is None:
                    tried.append([f"{where} call {e.target}: call #{c.seq} does not decode as {e.format}"])
                    continue
                fails = self.fields(e.fields, flatten(values), f"expect call {e.target}")
                if not fails:
                    return []
                tried.append(fails)
            return min(tried, key=len)
        if e.kind == "deal":
            d = ctx.deal
            if d is None:
                return [f"{where} deal {e.target}: no deal was committed to the ledger" + _why(ctx)]
            out = []
            if d.deal_type != e.target:
                out.append(f"{where} deal {e.target}: the deal committed is of type {d.deal_type}")
            for a in e.fields:
                want = self.value(a)
                got = getattr(d, DEAL_ATTRS[a.path], MISSING)
                ok = (isinstance(want, str) and isinstance(got, str) and want in got) if a.path == "reason" \
                    else same(want, got)
                if not ok:
                    out.append(f"{a.pos}: expect deal {e.target}: field `{a.path}`: expected {_show(want)}"
                               f"{' (within the text)' if a.path == 'reason' else ''}, got {_show(got)}")
            return out
        if e.kind == "dead_letter":
            if not ctx.dead_letters:
                return [f"{where} dead letter: no dead letter was written" + _why(ctx)]
            best: list[str] = []
            for dl in ctx.dead_letters:
                fails = []
                for a in e.fields:
                    want = self.value(a)
                    got = getattr(dl, a.path, MISSING)
                    ok = (isinstance(want, str) and isinstance(got, str) and want in got) if a.path == "reason" \
                        else same(want, got)
                    if not ok:
                        fails.append(f"{a.pos}: expect dead letter: field `{a.path}`: expected {_show(want)}, "
                                     f"got {_show(got)}")
                if not fails:
                    return []
                best = best or fails
            return best
        return [f"{where}: unknown expectation {e.kind}"]


_QUOTED = re.compile(r'\["((?:[^"\\]|\\.)*)"\]')


def _flat_path(path: str) -> str:
    """``["39"]`` -> ``39``, ``meta["x-trace"]`` -> ``meta.x-trace`` (the names ``flatten`` gives)."""
    return _QUOTED.sub(lambda m: "." + json.loads(f'"{m.group(1)}"'), path).lstrip(".")


def _decoded(chk: Checker, channel: str, raw: bytes) -> str:
    fmt, values = chk.decode(channel, "inbound", "out", raw, None)
    return f"{fmt} {values}" if fmt else repr(raw[:60])


def _why(ctx: Any) -> str:
    d = ctx.deal
    if d is not None and getattr(d, "reason", None):
        return f" (the deal {d.status}: {d.reason})"
    return ""
