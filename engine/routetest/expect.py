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


def _get_flat(flat: dict[str, Any], path: str) -> Any:
    got = flat.get(path, MISSING)
    if got is MISSING and '["' in path:       # quoted names ("39" = ..) are plain keys once flattened
        got = flat.get(_flat_path(path), MISSING)
    return got


def _text(v: Any) -> str:
    from dsl.compiler import _text as text
    return text(v)

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

    def fields(self, e: Any, get: Callable[[str], Any], what: str, contained: tuple[str, ...] = ()) -> list[str]:
        """Each ``field = value`` (equal) and ``field ~ value`` (the text contains it) of ``e``; ``contained``:
        fields whose ``=`` already means "contains" (a deal's or dead letter's ``reason``)."""
        out = []
        like = set(getattr(e, "contains", ()))
        for i, a in enumerate(e.fields):
            want = self.value(a)
            got = get(a.path)
            if i in like or a.path in contained:
                ok = got is not MISSING and got is not None and _text(want) in _text(got)
                how = " (within the text)"
            else:
                ok, how = same(want, got), ""
            if not ok:
                out.append(f"{a.pos}: {what}: field `{a.path}`: expected {_show(want)}{how}, got {_show(got)}")
        return out

    def check(self, e: Any, ctx: Any, channel: str) -> list[str]:
        where = f"{e.pos}: expect"
        if e.kind == "no_reply":
            return [] if ctx.reply is None else [f"{where} no reply: a reply was sent: {_decoded(self, channel, ctx.reply)}"]
        if e.kind == "reply":
            if ctx.reply is None:
                return [f"{where} reply: no reply was sent" + _why(ctx)]
            out = []
            status = ctx.extra.get("http_status")
            if e.status is not None and status != e.status:
                out.append(f"{where} reply {e.status}: the HTTP status answered is {status}"
                           + (f": {bytes(ctx.reply[:120])!r}" if status is not None and status >= 300 else ""))
            if not e.fields:
                return out
            fmt, values = self.decode(channel, "inbound", "out", ctx.reply, e.format)
            if fmt is None:
                return out + [f"{where} reply: the reply does not decode as "
                              f"{e.format or ' or '.join(self.guide.candidates(channel, 'inbound', 'out'))}: "
                              f"{ctx.reply[:60]!r}"]
            flat = flatten(values)
            return out + self.fields(e, lambda k: _get_flat(flat, k), "expect reply")
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
                flat = flatten(values)
                fails = self.fields(e, lambda k: _get_flat(flat, k), f"expect call {e.target}")
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
            return out + self.fields(e, lambda k: getattr(d, DEAL_ATTRS[k], MISSING), f"expect deal {e.target}",
                                     ("reason",))
        if e.kind == "dead_letter":
            if not ctx.dead_letters:
                return [f"{where} dead letter: no dead letter was written" + _why(ctx)]
            best: list[str] = []
            for dl in ctx.dead_letters:
                fails = self.fields(e, lambda k, dl=dl: getattr(dl, k, MISSING), "expect dead letter", ("reason",))
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
