"""Lowering: checked AST -> ``dsl.ir.Program``.

Runs only when the checker found no error, so it may assume every name
resolves.  Declarations were already resolved by the checker (options
converted, paths absolute); this module turns routes into ``Route``/``Step``.
"""
from __future__ import annotations

import hashlib

from dsl import ast as A
from dsl import ir
from dsl.checker import Resolved, lower_assigns
from dsl.respcode import response_code_field


def program_version(sources: dict[str, str]) -> str:
    h = hashlib.sha256()
    for path, text in sorted(sources.items()):
        h.update(path.encode("utf-8"))
        h.update(b"\0")
        h.update(text.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def lower_step(s, name_tags: dict | None = None) -> ir.Step:
    if isinstance(s, A.Decode):
        src = s.source if s.source is not None else ir.Name("raw", pos=s.pos)
        return ir.Step("decode", None, {"format": s.format.name, "source": src}, pos=s.pos)
    if isinstance(s, A.Let):
        return ir.Step("let", s.name.name, {"value": s.value}, pos=s.pos)
    if isinstance(s, A.Validate):
        rules = tuple(ir.Rule(r.cond, r.code, r.text, pos=r.pos, more=r.more) for r in s.rules)
        return ir.Step("validate", None, {"rules": rules}, pos=s.pos)
    if isinstance(s, A.Deal):
        return ir.Step("deal", None, {"type": s.type.name, "fields": lower_assigns(s.assigns)}, pos=s.pos)
    if isinstance(s, A.CallStep):
        return ir.Step("call", s.name.name, {
            "channel": s.channel.name,
            "format": s.format.name,
            "reply_format": s.reply_format.name if s.reply_format is not None else None,
            "fields": lower_assigns(s.assigns),
            "expect": s.expect,
            "timeout": s.timeout.value if s.timeout is not None else None,
            # only when declared, so the IR of routes without one reads as before
            **({"readonly": True} if s.readonly is not None else {}),
            **({"forward": True} if s.forward is not None else {}),
            **({"compensate": _lower_compensate(s.compensate)} if s.compensate is not None else {}),
            # `name { ref = ... }`: the values of a file write's name, and the classification each carries
            **({"names": lower_assigns(s.names.assigns),
                "name_tags": dict((name_tags or {}).get(s.pos, {}))} if s.names is not None else {}),
        }, pos=s.pos)
    if isinstance(s, (A.Reply, A.OnErrorReply)):
        return ir.Step("reply", None, {"format": s.format.name if s.format is not None else None,
                                       "fields": lower_assigns(s.assigns)}, pos=s.pos)
    if isinstance(s, A.PluginStep):
        return ir.Step(s.kind.name, s.name.name if s.name else None,
                       {"fields": lower_assigns(s.assigns)}, pos=s.pos)
    raise TypeError(f"cannot lower {type(s).__name__}")


def _lower_compensate(c: A.Compensate) -> ir.Step:
    return ir.Step("call", None, {
        "channel": c.channel.name,
        "format": c.format.name,
        "reply_format": c.reply_format.name if c.reply_format is not None else None,
        "fields": lower_assigns(c.assigns),
        "expect": c.expect,
        "timeout": c.timeout.value if c.timeout is not None else None,
    }, pos=c.pos)


def lower_route(r: A.RouteAst, name_tags: dict | None = None,
                channels: dict[str, ir.ChannelDecl] | None = None,
                formats: dict[str, ir.FormatDecl] | None = None) -> ir.Route:
    recv = next(s for s in r.body if isinstance(s, A.Receive))
    steps = []
    on_error: tuple[ir.Step, ...] = ()
    on_restart = None
    on_doubt = None
    on_refusal = None
    for s in r.body:
        if isinstance(s, A.Receive):
            continue
        if isinstance(s, A.OnRestart):
            on_restart = on_restart or s.policy.name
            continue
        if isinstance(s, A.OnDoubt):
            on_doubt = on_doubt or s.policy.name
            continue
        if isinstance(s, A.OnRefusal):
            on_refusal = on_refusal or s.policy.name
            continue
        if isinstance(s, A.OnErrorReply):
            on_error = (lower_step(s, name_tags),)
        elif isinstance(s, A.OnErrorBlock):
            on_error = tuple(lower_step(x, name_tags) for x in s.body)
        else:
            steps.append(lower_step(s, name_tags))
    fmt = recv.format.name if recv.format else None
    chan = (channels or {}).get(recv.channel.name)
    code = response_code_field(steps, on_error, fmt, chan.error_reply if chan is not None else None, formats)
    return ir.Route(r.name.name, recv.channel.name, fmt,
                    recv.when, tuple(steps), on_error, pos=r.pos, on_restart=on_restart,
                    on_doubt=on_doubt or "flag", on_refusal=on_refusal or "keep", response_code=code)


def lower(decls: list[A.Decl], res: Resolved, sources: dict[str, str]) -> ir.Program:
    routes = tuple(lower_route(d, res.name_tags, res.channels, res.formats) for d in decls
                   if isinstance(d, A.RouteAst))
    return ir.Program(
        version=program_version(sources),
        sources=dict(sources),
        formats=dict(res.formats),
        channels=dict(res.channels),
        tables=dict(res.tables),
        routes=routes,
        tests=tuple(res.tests),
    )
