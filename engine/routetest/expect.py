"""One test's expectations, checked against what the isolated engine did (an ExchangeCtx).

Every failure message starts with the expectation's place (file:line:col) and
says what was expected and what happened.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, Callable

from dsl.diagnostics import closest
from engine.replay.diff import MISSING, flatten, same
from engine.replay.report import _show as _show_value


def _get_flat(flat: dict[str, Any], path: str, values: Any = MISSING) -> Any:
    """The value at ``path`` of a decoded message: a leaf from ``flat``, else (a list or an object the
    test expects whole, ``tags = ["a", "b"]``) the part of ``values`` the path names."""
    got = flat.get(path, MISSING)
    if got is MISSING and '["' in path:       # quoted names ("39" = ..) are plain keys once flattened
        got = flat.get(_flat_path(path), MISSING)
    if got is MISSING and values is not MISSING:
        got = _subtree(values, path)
    return got


_STEP = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


def _subtree(values: Any, path: str) -> Any:
    """``values`` followed along ``path`` (``a.b[0]["x-y"]``, as ``render_path`` writes it); MISSING
    where a step has nothing."""
    at, got = 0, values
    while at < len(path):
        m = _STEP.match(path, at)
        if m is None:
            return MISSING
        at = m.end()
        if m.group(2) is not None:
            i = int(m.group(2))
            if not isinstance(got, (list, tuple)) or i >= len(got):
                return MISSING
            got = got[i]
        else:
            key = m.group(1) if m.group(1) is not None else json.loads(f'"{m.group(3)}"')
            if not isinstance(got, dict) or key not in got:
                return MISSING
            got = got[key]
    return got


def _first_difference(want: Any, got: Any, path: str) -> tuple[str, Any, Any] | None:
    """Where a list or object expected whole first differs from the one received, element by element:
    (the element's path, expected, got); None when they are equal.  An element one side lacks is MISSING."""
    if isinstance(want, (list, tuple)) and isinstance(got, (list, tuple)):
        for i in range(max(len(want), len(got))):
            w = want[i] if i < len(want) else MISSING
            g = got[i] if i < len(got) else MISSING
            d = _first_difference(w, g, f"{path}[{i}]")
            if d is not None:
                return d
        return None
    if isinstance(want, dict) and isinstance(got, dict):
        for k in dict.fromkeys([*want, *got]):
            step = f".{k}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(k)) else f"[{json.dumps(str(k))}]"
            d = _first_difference(want.get(k, MISSING), got.get(k, MISSING), path + step)
            if d is not None:
                return d
        return None
    return None if same(want, got) else (path, want, got)


def _element_differs(path: str, want: Any, got: Any) -> str:
    """`` (first difference at index 1, `tags[1]`: expected "c", got "b")`` for a list or object expected
    whole; empty otherwise."""
    if not (isinstance(want, (list, tuple, dict)) and isinstance(got, (list, tuple, dict))):
        return ""
    d = _first_difference(want, got, path)
    if d is None or d[0] == path:           # a list against an object: the values shown say it
        return ""
    at, w, g = d
    m = re.search(r"\[(\d+)\]", at[len(path):])
    where = f"index {m.group(1)}, `{at}`" if m is not None and at[len(path):].startswith("[") else f"`{at}`"
    if w is MISSING:
        return f" (first difference at {where}: expected nothing there, got {_show(g)})"
    if g is MISSING:
        return f" (first difference at {where}: expected {_show(w)}, got nothing there)"
    return f" (first difference at {where}: expected {_show(w)}, got {_show(g)})"


def _text(v: Any) -> str:
    from dsl.compiler import _text as text
    return text(v)

DEAL_ATTRS = {"status": "status", "amount": "amount", "ref": "reference", "currency": "currency",
              "party": "party", "response_code": "response_code", "reason": "reason", "route": "route"}


def deal_field(d: Any, name: str) -> Any:
    """An ``expect deal`` field of the deal record ``d``; ``flagged``: it has the event ``flagged`` (for an
    operator: engine.txn.flagging); ``statement_break``: the kinds of its event ``statement break``, "" without
    one (a ``continuity`` step: engine/statement_chains.py)."""
    if name == "flagged":
        return any(e.to_state == "flagged" for e in d.events or ())
    if name == "statement_break":       # a `continuity` step's break: its kinds ("gap", "balance_break"), or ""
        return ", ".join(k for e in d.events or () if e.to_state == "statement break"
                         for k in ((e.detail or {}).get("kinds") or ()))
    if name.startswith("record."):      # record.NAME.FIELD: a value its `record NAME { }` step kept
        return recorded_value(d, name)
    return getattr(d, DEAL_ATTRS[name], MISSING)


def _records_kept(d: Any, e: Any, where: str) -> list[str]:
    """For ``record.NAME.FIELD`` expectations the deal has no value for: the records it did keep, and fields."""
    if not any(a.path.startswith("record.") and deal_field(d, a.path) is MISSING for a in e.fields):
        return []
    kept = [f"{(x.detail or {}).get('record')} ({', '.join(map(str, ((x.detail or {}).get('values') or {})))})"
            for x in d.events or () if x.to_state == "recorded"]
    return [f"{where}: " + ("the deal kept the records " + "; ".join(kept) if kept else
                            "the deal kept no record (no `record NAME { .. }` step ran before the deal ended)")]


_AMOUNT = re.compile(r"-?\d+\.\d+")


def recorded_value(d: Any, path: str) -> Any:
    """``record.NAME.FIELD`` of an ``expect deal``: the value the deal's ``recorded`` event of record NAME kept
    (engine/steps/record.py); an amount (kept as its exact decimal text, ``-30.00``) as a Decimal."""
    _, name, field = path.split(".", 2)
    for e in d.events or ():
        detail = e.detail or {}
        if e.to_state == "recorded" and detail.get("record") == name:
            v = (detail.get("values") or {}).get(field, MISSING)
            return Decimal(v) if isinstance(v, str) and _AMOUNT.fullmatch(v) else v
    return MISSING
DEAD_ATTRS = ("channel", "route", "error_kind", "error_code", "reason", "status")
def _show(v: Any) -> str:
    """A value as the route language writes it: `null`, `true`, `false` (a test cannot write None)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_show(x)}" for k, x in v.items()) + "}"
    return _show_value(v)


# deal types of a request no route's `deal` step recorded, and what to expect instead
_NO_ROUTE_TYPES = {
    "MALFORMED": ": the request did not decode in the receive format, so no route ran; expect deal MALFORMED { ... }",
    "UNROUTED": ": no route took the request; expect deal UNROUTED { ... }",
}


class Checker:
    def __init__(self, binder: Any, guide: Any, scope: dict[str, Any], decode: Callable[..., Any]) -> None:
        self.binder = binder
        self.guide = guide
        self.scope = scope
        self.decode = decode

    def value(self, assign: Any) -> Any:
        return self.binder.expr(assign.value)(self.scope)

    def fields(self, e: Any, get: Callable[[str], Any], what: str, contained: tuple[str, ...] = (),
               message: Any = MISSING) -> list[str]:
        """Each ``field = value`` (equal) and ``field ~ value`` (the text contains it) of ``e``; ``contained``:
        fields whose ``=`` already means "contains" (a deal's or dead letter's ``reason``); ``message``: the
        decoded reply or call, whose fields a field it lacks is told with (``_absent``)."""
        out = []
        like = set(getattr(e, "contains", ()))
        for i, a in enumerate(e.fields):
            try:
                want = self.value(a)
            except Exception as exc:   # noqa: BLE001 - the test's own expression failed: this field fails
                out.append(f"{a.pos}: {what}: field `{a.path}`: the expected value could not be evaluated: "
                           f"{_unevaluated(exc, a.pos)}")
                continue
            got = get(a.path)
            if i in like or a.path in contained:
                ok = got is not MISSING and got is not None and _text(want) in _text(got)
                how = " (within the text)"
            elif isinstance(want, (list, tuple, dict)):     # a list or object expected whole: each element
                ok = isinstance(got, dict) == isinstance(want, dict) and isinstance(got, (list, tuple, dict)) \
                    and _first_difference(want, got, a.path) is None
                how = ""
            else:
                ok, how = same(want, got), ""
            if not ok:
                why = (_absent(a.path, message, what) if got is MISSING
                       else "" if how else _element_differs(a.path, want, got) or _kinds_differ(a.path, want, got))
                out.append(f"{a.pos}: {what}: field `{a.path}`: expected {_show(want)}{how}, got {_show(got)}{why}")
        return out

    def check(self, e: Any, ctxs: Any, channel: str) -> list[str]:
        """``ctxs``: the test's exchanges, the first request's and (``twice``) the repeat's.  A reply
        expectation holds for each reply (the repeat's is checked when its bytes differ from the first's);
        calls, deals and dead letters are those of all the exchanges together."""
        first = ctxs[0]
        if e.kind in ("reply", "no_reply"):
            out = self._reply(e, first, channel, "")
            for later in ctxs[1:]:
                if later.reply != first.reply or later.extra.get("http_status") != first.extra.get("http_status"):
                    out += self._reply(e, later, channel, "the repeat: ")
            return out
        where = f"{e.pos}: expect"
        if e.kind in ("call", "no_call"):
            calls = [(c, "" if n == 0 else " of the repeat") for n, x in enumerate(ctxs) for c in x.calls_to(e.target)]
            if e.kind == "no_call":
                return [] if not calls else [f"{where} no call {e.target}: {len(calls)} call(s) were made"
                                             + _split(ctxs, e.target)]
            count = getattr(e, "count", None)
            if count is not None and len(calls) != count:
                return [f"{where} call {e.target} {_times(count)}: {e.target} was called {_times(len(calls))}"
                        + _split(ctxs, e.target) + (_why(first) if not calls else "")]
            if not calls:
                return [f"{where} call {e.target}: no call to {e.target} was made" + _why(first)]
            tried = []
            for c, of in calls:
                fmt, values = self.decode(e.target, "outbound", "out", c.request, e.format)
                others = [f for f in self.guide.candidates(e.target, "outbound", "out") if f != e.format]
                if fmt is None and others:
                    # a channel the routes call in several formats (one SWIFT gateway taking MT101 and
                    # MT103): each call is read in the one it was written in, the first route's first
                    fmt, values = self.decode(e.target, "outbound", "out", c.request, None)
                if fmt is None:
                    fails = [f"{where} call {e.target}: call #{c.seq}{of} does not decode as "
                             + " or ".join([e.format, *others] if e.format else others)]
                else:
                    flat = flatten(values)
                    fails = self.fields(e, lambda k: _get_flat(flat, k, values), f"expect call {e.target}",
                                        message=values)
                    fails += self._names(e, c)
                    if fails and count is not None and len(calls) > 1:
                        fails = [f"{f} (call #{c.seq + 1}{of})" for f in fails]
                if count is not None and fails:
                    return fails                  # each counted call must have the fields
                if not fails and count is None:
                    return []
                tried.append(fails)
            return min(tried, key=len) if tried else []
        if e.kind == "deal":
            deals = [x.deal for x in ctxs if x.deal is not None]
            if not deals:
                return [f"{where} deal {e.target}: no deal was committed to the ledger" + _why(first)]
            tried = []
            for d in deals:
                out = []
                if d.deal_type != e.target:
                    out.append(f"{where} deal {e.target}: the deal recorded is of type {d.deal_type} "
                               f"(status {deal_field(d, 'status')})" + _NO_ROUTE_TYPES.get(d.deal_type, ""))
                out += self.fields(e, lambda k, d=d: deal_field(d, k), f"expect deal {e.target}",
                                   ("reason",))
                out += _records_kept(d, e, f"{where} deal {e.target}")
                if not out:
                    return []
                tried.append(out)
            best = min(tried, key=len)
            if len(deals) > 1:        # some deal of the test must match: say which there were
                best = best + [f"{where} deal {e.target}: none of the test's {len(deals)} deals has these values; "
                               "they are: " + ", ".join(f"{d.deal_type} {d.status}" for d in deals)]
            return best
        if e.kind == "dead_letter":
            letters = [dl for x in ctxs for dl in x.dead_letters]
            if not letters:
                return [f"{where} dead letter: no dead letter was written" + _why(first)]
            best: list[str] = []
            for dl in letters:
                fails = self.fields(e, lambda k, dl=dl: getattr(dl, k, MISSING), "expect dead letter", ("reason",))
                if not fails:
                    return []
                best = best or fails
            return best
        return [f"{where}: unknown expectation {e.kind}"]

    def _names(self, e: Any, call: Any) -> list[str]:
        """``name { ref = "R1" }`` of an ``expect call``: the file name values the call gave its channel
        (``CallRecord.names``, as the route computed them; ``<none>`` for a value it did not give)."""
        if getattr(e, "names", None) is None:
            return []
        given = call.names or {}
        clause = SimpleNamespace(fields=e.names, contains=e.names_contains)
        return self.fields(clause, lambda k: given.get(k, MISSING), f"expect call {e.target} name")

    def _reply(self, e: Any, ctx: Any, channel: str, label: str) -> list[str]:
        where = f"{e.pos}: expect"
        if e.kind == "no_reply":
            return [] if ctx.reply is None else [f"{where} no reply: {label}a reply was sent: "
                                                 f"{_decoded(self, channel, ctx.reply)}"]
        if ctx.reply is None:
            return [f"{where} reply: {label}no reply was sent" + _why(ctx)]
        out = []
        status = ctx.extra.get("http_status")
        if e.status is not None and status != e.status:
            out.append(f"{where} reply {e.status}: {label}the HTTP status answered is {status}"
                       + (f": {_body(ctx.reply, 120)}" if status is not None and status >= 300 else ""))
        if not e.fields:
            return out
        fmt, values = self.decode(channel, "inbound", "out", ctx.reply, e.format)
        if fmt is None:
            return out + [f"{where} reply: {label}the reply does not decode as "
                          f"{e.format or ' or '.join(self.guide.candidates(channel, 'inbound', 'out'))}: "
                          f"{ctx.reply[:60]!r}"]
        flat = flatten(values)
        return out + self.fields(e, lambda k: _get_flat(flat, k, values),
                                 f"expect reply{' (the repeat)' if label else ''}", message=values)

    def repeat_differs(self, pos: Any, channel: str, first: Any, again: Any) -> list[str]:
        """``twice``: the repeat must get the first reply again, byte for byte (and the same HTTP status)."""
        where = f"{pos}: twice"
        out = []
        s1, s2 = first.extra.get("http_status"), again.extra.get("http_status")
        if s1 != s2:
            out.append(f"{where}: the repeat was answered HTTP status {s2}, the first request {s1}")
        a, b = first.reply, again.reply
        if a == b:
            return out
        if a is None or b is None:
            return out + [f"{where}: the repeat's reply differs from the first's: the first got "
                          + ("no reply" if a is None else f"{len(a)} bytes") + ", the repeat "
                          + ("no reply" if b is None else f"{len(b)} bytes") + _why(again)]
        k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        lo = max(0, k - 16)
        msg = (f"{where}: the repeat's reply differs from the first's from byte {k} "
               f"(first {len(a)} bytes, repeat {len(b)}): first ...{bytes(a[lo:k + 32])!r}, "
               f"repeat ...{bytes(b[lo:k + 32])!r}")
        f1, v1 = self.decode(channel, "inbound", "out", a, None)
        f2, v2 = self.decode(channel, "inbound", "out", b, None)
        if f1 is not None and f2 is not None:
            x, y = flatten(v1), flatten(v2)
            diff = [p for p in dict.fromkeys([*x, *y]) if not same(x.get(p, MISSING), y.get(p, MISSING))]
            if diff:
                msg += "; fields that differ: " + ", ".join(
                    f"`{p}` {_show(x.get(p, MISSING))} then {_show(y.get(p, MISSING))}" for p in diff[:6])
        return out + [msg + _why(again)]


def _unevaluated(exc: Exception, pos: Any) -> str:
    """Why an expected value could not be computed, with the place of the part that failed when it is
    not the field's own (``table billers (billers.csv) has no row with biller_id = 'NOPE' (at 8:48)``)."""
    why = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    at = getattr(exc, "pos", None)
    if at is not None and str(at) != str(pos):
        why = f"{why} (at {at})"
    return why + "; fix the expression in the test"


def _body(raw: Any, limit: int) -> str:
    """An HTTP answer's body as the caller reads it: its text (UTF-8; a byte that is not shown as \\xNN),
    cut at ``limit`` characters with ``...``; never Python's bytes form (b'...')."""
    text = bytes(raw).decode("utf-8", "backslashreplace")
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


def _number(v: Any) -> bool:
    return isinstance(v, (int, Decimal)) and not isinstance(v, bool)


def _absent(path: str, message: Any, what: str) -> str:
    """`` (the reply has no field `statsu`: did you mean `status`? it has ...)`` for a top-level field the
    decoded message lacks ("" when it has that field, the field is inside one, or the message is no object):
    a JSON reply has no field list, so `bsp check` cannot tell a misspelt one (E087 tells a call's)."""
    top = re.split(r"[.\[]", path, maxsplit=1)[0]
    if not isinstance(message, dict) or not message or top in message or not re.fullmatch(r"\w+", top):
        return ""
    keys = sorted(str(k) for k in message)
    close = closest(top, keys)
    listed = ", ".join(f"`{k}`" for k in keys[:12]) + (f" and {len(keys) - 12} more" if len(keys) > 12 else "")
    noun = "reply" if what.startswith("expect reply") else "call"
    return (f" (the {noun} has no field `{top}`: " + ("did you mean " + " or ".join(f"`{c}`" for c in close)
                                                      + "? " if close else "") + f"it has {listed})")


def _kinds_differ(path: str, want: Any, got: Any) -> str:
    """Why a text and a number are never equal, and how to write the value (a format that does not fix
    its fields' types, such as JSON: ``bsp check`` tells the others, E103)."""
    if isinstance(want, str) and _number(got):
        return (f" (a text is never equal to a number: write the number, `{path} = {got}`, or read a computed "
                f"text as one, `{path} = number(...)`)")
    if _number(want) and isinstance(got, str):
        return f' (a number is never equal to a text: write the text, `{path} = "{got}"`)'
    return ""


def _times(n: int) -> str:
    return {0: "0 times", 1: "once", 2: "twice"}.get(n, f"{n} times")


def _split(ctxs: Any, target: str) -> str:
    """`` (1 by the request, 1 by the repeat)`` when the test sent twice."""
    if len(ctxs) != 2 or ctxs[0].extra.get("file_sent"):     # a whole file's exchanges: no request and repeat
        return ""
    n = [len(x.calls_to(target)) for x in ctxs]
    return f" ({n[0]} by the request, {n[1]} by the repeat)"


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
