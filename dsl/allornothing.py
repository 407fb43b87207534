"""W030: a ``validate`` that ``all_or_nothing`` does not check before the file runs.

A ``file watch`` channel with ``all_or_nothing = true`` checks every record of a file before any runs: its
route's leading ``let``, ``deal`` and ``validate`` steps (``engine.runtime.precheck``), up to the route's
first step of any other kind (a call, a decode, a plugin step).  A ``validate`` after that step is checked
only when its record runs: a record that fails it fails alone, the others of its file having run, which
is not what the channel promises.  The checker warns at that ``validate``, once per route.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from dsl import ast as A
from dsl.fileend import end_route

Warn = Callable[..., None]     # (code, message, pos, help)

# the statements that are no step (the route's policies, its `on error`): the check passes over them
_NOT_STEPS = (A.Receive, A.OnRestart, A.OnDoubt, A.OnRefusal, A.OnErrorReply, A.OnErrorBlock)
_CHECKED = (A.Let, A.Deal, A.Validate)


def late_rules(routes: Iterable[A.RouteAst], decls: dict[str, tuple[str, Any]], channels: dict[str, Any],
               warn: Warn) -> None:
    for r in routes:
        recv = next((s for s in r.body if isinstance(s, A.Receive)), None)
        if recv is None or end_route(r) is not None:
            continue
        decl = decls.get(recv.channel.name)
        if decl is None or decl[0] != "channel" or decl[1].kind_name != "file.watch":
            continue
        chan = channels.get(recv.channel.name)
        if (getattr(chan, "options", None) or {}).get("all_or_nothing") is not True:
            continue
        steps = [s for s in r.body if not isinstance(s, _NOT_STEPS)]
        stop = next((s for s in steps if not isinstance(s, _CHECKED)), None)
        if stop is None:
            continue
        late = next((s for s in steps[steps.index(stop) + 1:] if isinstance(s, A.Validate)), None)
        if late is None:
            continue
        warn("W030", f"route `{r.name.name}` receives from channel `{recv.channel.name}` with all_or_nothing = "
                     f"true, but this validate comes after its {_what(stop)} (line {stop.pos.line}): its rules are "
                     f"checked only when a record runs, not before the file does, so a record that fails them "
                     f"fails alone while the others of its file run",
             late.pos,
             "move the rules before the route's first call (let, deal and validate steps before it are checked "
             "for every record before any runs: docs/channels.md#all-or-nothing-all_or_nothing)")


def _what(step: Any) -> str:
    if isinstance(step, A.CallStep):
        return f"call `{step.name.name}`"
    if isinstance(step, A.Decode):
        return "decode"
    if isinstance(step, A.Reply):
        return "reply"
    if isinstance(step, A.PluginStep):
        return f"step `{step.kind.name}`"
    return "first step that is not let, deal or validate"
