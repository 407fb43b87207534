"""The checker: every problem in a set of parsed files, all at once.

It never stops at the first problem: each check reports into ``self.diags``
and carries on.  Declarations are checked against the registry's
``ComponentSpec``s (kinds, options, field blocks, the formats' own ``check``
and ``fields`` hooks); routes are checked statement by statement with a scope
of the names bound so far.  While doing so it resolves what the lowering
needs (options converted to literals, absolute paths, table columns).
"""
from __future__ import annotations

import csv
import inspect
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dsl import ast as A
from dsl.dealamount import check_deal_amount
from dsl.configfolders import check_config_folders
from dsl.continuity import check_continuity
from dsl.statement_args import check_statement_arg
from dsl.records import check_record
from dsl.limits import check_limit
from dsl import asof, calendars, compexpect, ir
from dsl.clock import instant_text, parse_instant
from dsl.classflow import DEAL_COLUMNS, Flow, Source, format_tags, protects, tag_at, tag_at_item
from dsl.dealtypes import shared_deal_types
from dsl.allornothing import late_rules
from dsl.fileend import END_FIELDS, check_end_messages
from dsl.filekeys import unkeyed_file_routes
from dsl.diagnostics import ERROR, WARNING, Diagnostic, closest, did_you_mean
from dsl.use_hint import use_hint
from dsl.path_hint import path_help
from dsl.functions import SIGNATURES
from dsl.hookfail import hook_failure
from dsl.listen import listen_clashes
from dsl.muxkeys import mux_key_check
from dsl.peer import CERT_FIELDS, CERT_MODES, PEER_FIELDS, peer_address
from dsl.options import NOT_LITERAL, best_guess, convert, finish_options, group_atoms, literal_of
from dsl.types import (BOOL, DATE, INTEGER, NUMBER, NUMERIC, NULL, STRING, TIMESTAMP, Typer, as_number, body_fields, desc,
                       field_type, show)
from formats.classify import strictest

FIELD_TYPES = ("string", "integer", "decimal", "date")
CLASSIFICATIONS = ("pan", "secret", "personal")
# key: the business key; match: what a repeat of the key must carry unchanged, kept only as a digest
# (docs/transactions.md)
DEAL_FIELDS = ("ref", "amount", "currency", "party", "key", "match")
RESTART_POLICIES = ("complete", "compensate", "flag")
REFUSAL_POLICIES = ("keep", "free")       # `on refusal`: the deal key of a deal a counterpart refused (default keep)
DOUBT_POLICIES = ("flag", "compensate")      # `on doubt`: a call without undo left in doubt (default flag)
# channel kinds whose every call leaves something behind: never `readonly`
def _forwardable(mti: str) -> bool:
    """An MTI a `store and forward` call may send (engine.txn.reversal.is_advice, without importing the engine)."""
    return len(mti) == 4 and mti[:3] + "0" in ("0120", "0220", "0400", "0420") and mti[3] in "01"


_WRITING_KINDS = {"file.write": "writes a file", "nats.publish": "publishes a message to a stream"}
DEAL_REQUIRED = ("ref", "amount")
BUILTIN_STEPS = ("receive", "decode", "let", "validate", "deal", "call", "reply", "on")
ROOTS = ("msg", "raw", "error")
# names a receiving channel binds, and when (for the help of an unknown name)
_CHANNEL_VALUES = {
    "header": "`header` (a frame's TPDU) is bound when the route receives from a channel with header_size",
    "http": "`http` is bound when the route receives from an http listen channel",
    "timer": "`timer` is bound when the route receives from a timer channel",
    "file": "`file` (file.name, file.line, ...) is bound when the route receives from a file watch channel",
}
ERROR_FIELDS = ("code", "text", "kind", "detail", "where", "undone", "flagged", "forwarded", "not_undone")
TABLE_KINDS = ("csv",)

CATEGORY_WORD = {"format": "format", "channel": "channel", "table": "table"}
# Route tests: the fields an ``expect deal`` / ``expect dead letter`` may check.
EXPECT_DEAL_FIELDS = ("status", "amount", "ref", "currency", "party", "response_code", "reason", "route",
                      "flagged", "statement_break")
# the types of a deal's fields, for E103 (``reason`` is "contains": any text)
DEAL_FIELD_KINDS = {"status": "string", "amount": "decimal", "ref": "string", "currency": "string",
                    "party": "string", "response_code": "string", "route": "string", "flagged": BOOL,
                    "statement_break": "string"}
EXPECT_DEAD_FIELDS = ("channel", "route", "error_kind", "error_code", "reason", "status")
# Format kinds whose decoded message has exactly the top-level fields its body set (no header, envelope
# or default added): an `expect call` field no call body sets is certainly missing (E087).
EXACT_BODY_KINDS = ("json", "xml")
# receiving channel kinds a test cannot send `twice` on, and why (E088)
NO_REPEAT_KINDS = {"timer": "each tick is a new one, with its own number and time"}
# ``given CHANNEL sends ... http { ... }``: what an http listen request line may set.
# ``peer = "10.20.30.40:51234"``: the client's address the route reads as ``http.peer`` (HOST:PORT)
GIVEN_HTTP_FIELDS = ("method", "path", "params", "query", "headers", "peer")
# A record option every channel kind takes (``record = true``: capture its frames, docs/testing.md).
COMMON_CHANNEL_OPTIONS = ("record",)


@dataclass
class Binding:
    kind: str                 # msg, raw, error, let, call, step, table
    format: str | None = None
    pos: ir.Pos | None = None
    channel: str | None = None    # call: the channel it calls
    type: str | None = None       # let: the value's static type (dsl.types), None when unknown
    classified: tuple = ()        # let: the classified values it holds (dsl.classflow.Source); call: those
    #                               its file name is built from, (word, Source) (``name { ... }``)


@dataclass
class Resolved:
    formats: dict[str, ir.FormatDecl] = field(default_factory=dict)
    channels: dict[str, ir.ChannelDecl] = field(default_factory=dict)
    tables: dict[str, ir.TableDecl] = field(default_factory=dict)
    table_columns: dict[str, list[str]] = field(default_factory=dict)
    format_fields: dict[str, list[str] | None] = field(default_factory=dict)
    format_required: dict[str, list[str]] = field(default_factory=dict)   # a schema's required fields
    tests: list[ir.RouteTest] = field(default_factory=list)
    # a call's `name { ... }`, by the call's place: field -> the classification its value carries
    name_tags: dict[ir.Pos, dict[str, str]] = field(default_factory=dict)


# W006's help for a value that reached a field through a file's name (``w.file``)
_NAMED_HELP = "; or name the file from values that are not classified (the file on disk has the name in clear)"


def unknown_name_help(word: str, wanted: list[str]) -> str:
    """E104's help for a ``name { word = ... }`` whose ``{word}`` the channel's name does not have: the
    close field to write instead, or the fields it has, or the ``{word}`` to add to the name."""
    close = closest(word, wanted)
    if close:
        instead = " or ".join(f"`{c}`" for c in close)
        return f"write {instead} instead, or add {{{word}}} to the channel's name if the file is named by it"
    fields = ", ".join(f"{{{w}}}" for w in wanted)
    return f"write one of the fields the channel's name has ({fields}), or add {{{word}}} to the channel's name"


def _base_dir(pos: ir.Pos) -> Path:
    return Path(pos.file).resolve().parent


def _name_pos(a: A.AssignAst) -> ir.Pos:
    """The place of a body line's first field name (``so_reff`` of ``so_reff = book.so_ref``), for the
    caret of a diagnostic about that name; the whole line when the name is quoted or indexed."""
    p, first = a.pos, a.parts[0]
    if not isinstance(first, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", first):
        return p
    return ir.Pos(p.file, p.line, p.col, p.line, p.col + len(first))


def _path_pos(a: A.AssignAst) -> ir.Pos:
    """The place of a body line's whole target (``hdr.resp_cod``, ``lines[0].amt``) when it is written in
    plain words and indexes; else as ``_name_pos``."""
    text = A.render_path(a.parts)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*", text):
        return _name_pos(a)
    p = a.pos
    return ir.Pos(p.file, p.line, p.col, p.line, p.col + len(text))


_BODY_LITERALS = ("string", "int", "decimal", "bool")
# channel kinds that send nothing back when a route fails without an error reply (W010); an http listen
# channel answers a failure itself (problem+json), a file or queue has no sender waiting
UNANSWERED_ON_FAILURE = ("tcp.listen",)


def _echo_only(r: A.RouteAst, recv: A.Receive) -> bool:
    """A route whose only steps are replies in its receive format, each field a literal or a field of the
    request read as it is (``"11" = msg["11"]``): an ISO 8583 0800 echo.  Nothing in it fails at run time
    but the encoding of a literal (a copybook's: E112) or of the request's own decoded values."""
    if recv.format is None:
        return False
    for s in r.body:
        if isinstance(s, (A.Receive, A.OnRestart, A.OnDoubt, A.OnRefusal, A.OnErrorReply, A.OnErrorBlock)):
            continue
        if not isinstance(s, A.Reply) or (s.format is not None and s.format.name != recv.format.name):
            return False
        if not all(isinstance(a.value, ir.Lit) or _msg_read(a.value) for a in s.assigns):
            return False
    return True


def _msg_read(e: Any) -> bool:
    while isinstance(e, (ir.Attr, ir.Index)):
        if isinstance(e, ir.Index) and not isinstance(e.index, ir.Lit):
            return False
        e = e.base
    return isinstance(e, ir.Name) and e.name == "msg"


def _written(parts: tuple) -> str:
    """A path as a test writes it: ``"4"``, ``"43".name``, ``block4[2].value.amount``."""
    text = A.render_path(parts)
    if text.startswith("[") and isinstance(parts[0], str):
        first = A.render_path(parts[:1])
        text = first[1:-1] + text[len(first):]
    return text


def _call_hook(hook, decl, base_dir: Path):
    try:
        n = len(inspect.signature(hook).parameters)
    except (TypeError, ValueError):
        n = 2
    return hook(decl, base_dir) if n >= 2 else hook(decl)


def _option_named(text: str, where: dict) -> str | None:
    """The first option a kind's check message names (``option poll ...``, ``poll = 0s``) that the
    declaration sets, else the first such option's name that the message holds as a word, else None."""
    named = [g for g in re.findall(r"\boption `?(\w+)", text) + re.findall(r"\b(\w+) = ", text) if g in where]
    if not named:
        named = [g for g in re.findall(r"\w+", text) if g in where]
    return named[0] if named else None


def _option_help(spec, name: str | None) -> str | None:
    """The help line of a kind's check message that gives none: the option's own description, as for
    a value of the wrong type (E045)."""
    for opt in getattr(spec, "options", ()) if name else ():
        if opt.name == name:
            return f"{opt.name}: {opt.doc}"
    return None


class _TestChecks:
    """Route tests (``test "name" { given ... expect ... }``), checked after the routes and
    lowered here to ``ir.RouteTest`` (their defaults come from the routes they test)."""

    def _route_facts(self) -> dict[str, Any]:
        inbound: dict[str, list[A.Receive]] = {}
        calls: dict[str, list[A.CallStep | A.Compensate]] = {}     # channel -> its calls and compensations
        sent: dict[str, list[tuple[str, tuple]]] = {}   # channel -> (format, body) of each call and compensation
        replies: dict[str, list[str]] = {}
        deal_types: set[str] = {"UNROUTED", "MALFORMED", "UNAUTHENTICATED"}    # recorded when no route takes it
        keyed: set[str] = set()         # channels with a route whose deal declares a key

        def walk(body, chan: str, recv_fmt: str | None) -> None:
            for s in body:
                if isinstance(s, A.CallStep):
                    calls.setdefault(s.channel.name, []).append(s)
                    sent.setdefault(s.channel.name, []).append((s.format.name, s.assigns))
                    c = s.compensate
                    if c is not None:       # a test answers and expects a compensation's call as any other
                        calls.setdefault(c.channel.name, []).append(c)
                        sent.setdefault(c.channel.name, []).append((c.format.name, c.assigns))
                elif isinstance(s, (A.Reply, A.OnErrorReply)):
                    fmt = s.format.name if s.format is not None else recv_fmt
                    if fmt is not None and fmt not in replies.setdefault(chan, []):
                        replies[chan].append(fmt)
                elif isinstance(s, A.Deal):
                    deal_types.add(s.type.name)
                    if any(a.parts == ("key",) for a in s.assigns):
                        keyed.add(chan)
                elif isinstance(s, A.OnErrorBlock):
                    walk(s.body, chan, recv_fmt)

        for r in self.routes.values():
            recv = next((s for s in r.body if isinstance(s, A.Receive)), None)
            if recv is None:
                continue
            inbound.setdefault(recv.channel.name, []).append(recv)
            deal_types.add(r.name.name)
            walk(r.body, recv.channel.name, recv.format.name if recv.format else None)
        for name, (cat, node) in self.decls.items():
            if cat == "channel" and node.error_reply is not None:
                fmt = node.error_reply.format.name
                if fmt not in replies.setdefault(name, []):
                    replies[name].append(fmt)
        return {"inbound": inbound, "calls": calls, "replies": replies, "deal_types": deal_types, "keyed": keyed,
                "sent": sent}

    def _check_test(self, t: A.RouteTestAst) -> None:
        facts = getattr(self, "_facts", None)
        if facts is None:
            facts = self._facts = self._route_facts()
        sends = [s for s in t.body if isinstance(s, A.GivenSendAst)]
        if not sends:
            self.error("E090", f"test \"{t.name}\" sends nothing", t.name_pos,
                       "add `given CHANNEL sends FORMAT { field = value ... }`")
        for extra in sends[1:]:
            self.error("E091", f"test \"{t.name}\" sends more than once", extra.pos,
                       f"one request per test; the first is at {sends[0].pos}. To send that same request again "
                       "(a repeat), write `twice` after it: `given CHANNEL sends FORMAT { ... } twice`; "
                       "for another request, write another test")
        base = {"raw": Binding("raw")}
        base.update(self._table_scope())
        send_ir = None
        msg_fmt: str | None = None
        if sends and sends[0].path is not None:     # ``sends file "NAME.csv"``: a whole file (file watch)
            send_ir = self._test_send_file(sends[0], facts)
        elif sends:
            s = sends[0]
            chan = self.ref(s.channel, "channel")
            fmt = self.ref(s.format, "format") if s.format is not None else None
            if chan is not None:
                recvs = facts["inbound"].get(chan)
                if not recvs:
                    self.error("E092", f"no route receives from channel `{chan}`", s.channel.pos,
                               did_you_mean(chan, facts["inbound"]) or
                               "a test sends to a channel a route receives from: "
                               + (", ".join(sorted(facts["inbound"])) or "(no routes)"))
                elif s.format is None:
                    fmt = next((r.format.name for r in recvs if r.format is not None), None)
                    if fmt is None:
                        self.error("E093", f"the routes of channel `{chan}` receive raw bytes: "
                                   f"name the format of the request", s.pos,
                                   f"write `given {chan} sends FORMAT {{ ... }}`")
            self._assigns(s.assigns, dict(base), set(), fmt, "request",
                          at=s.format.pos if s.format is not None else s.pos)
            self._given_kinds(s.assigns, fmt, dict(base))
            msg_fmt = fmt
            http = None
            if s.http is not None:
                self._test_http(chan, s.http, base, "listen")
                http = lower_assigns(s.http)
            if s.repeat is not None and chan is not None and chan in self.decls:
                kind = self.decls[chan][1].kind_name
                if kind in NO_REPEAT_KINDS:
                    self.error("E088", f"channel `{chan}` ({kind.replace('.', ' ')}) never sends the same request "
                               f"again: {NO_REPEAT_KINDS[kind]}", s.repeat,
                               "remove `twice`: a repeat is tested on a channel a client sends on")
                elif chan in facts["inbound"] and chan not in facts["keyed"]:
                    self.warn("W005", f"no route receiving from channel `{chan}` declares a deal key: the repeat "
                              "runs the route's steps again instead of getting the first answer", s.repeat,
                              "give the route's `deal` step a business key (`key = msg.ref`, docs/transactions.md), "
                              "or remove `twice`")
            file = None
            if s.file is not None:
                self._test_file(chan, s.file, base)
                file = lower_assigns(s.file)
            peer = None
            if s.peer is not None:
                self._test_peer(chan, s.peer, base)
                peer = lower_assigns(s.peer)
            send_ir = ir.GivenSend(chan or s.channel.name, fmt, lower_assigns(s.assigns), pos=s.pos, http=http,
                                   twice=s.repeat is not None, file=file, peer=peer)
        scope = dict(base)
        scope["msg"] = Binding("msg", msg_fmt)
        answers: list[ir.GivenAnswer] = []
        expects: list[ir.Expectation] = []
        for s in t.body:
            if isinstance(s, A.GivenAnswerAst):
                answers.append(self._test_answer(s, facts, scope))
            elif isinstance(s, A.ExpectAst):
                expects.append(self._test_expect(s, facts, scope, send_ir))
        at = None
        if t.at is not None:
            instant, problem = parse_instant(t.at.value, bare=t.at_bare)
            if problem is not None:
                self.error("E113", f"test \"{t.name}\": `at` {problem}", t.at.pos,
                           "`at` fixes the test's clock: now() and today() read that instant, in the test and "
                           "in the routes, so a test of a date computed from today() never expires")
            else:
                at = instant_text(instant)
        if send_ir is not None:
            self.res.tests.append(ir.RouteTest(t.name, send_ir, tuple(answers), tuple(expects), pos=t.pos, at=at))

    def _unsent_fields(self, s: A.ExpectAst, chan: str, facts) -> None:
        """E087: ``expect call CHAN { opp = ... }`` where no call to CHAN sets ``opp``.  Only where that is
        certain: every call (and compensation) to CHAN encodes a format of a kind that adds no field of its
        own (EXACT_BODY_KINDS) and that shows no field list (with one, E061 names the format's fields)."""
        names: set[str] = set()
        for fmt, assigns in facts["sent"].get(chan, ()):
            decl = self.res.formats.get(fmt)
            if decl is None or decl.kind not in EXACT_BODY_KINDS or self.res.format_fields.get(fmt) is not None:
                return
            for a in assigns:
                top = a.parts[0]
                if not isinstance(top, str) or "." in top or "[" in top:
                    return                  # a quoted name that a flattened path may spell another way
                names.add(top)
        if not names:
            return
        for a in s.assigns:
            top = a.parts[0]
            if not isinstance(top, str) or "." in top or "[" in top or top in names:
                continue
            if not isinstance(a, A.LikeAst) and isinstance(a.value, A.Lit) and a.value.value == "<none>":
                continue                    # the test runner's word for a missing field: it holds
            close = closest(top, names) or sorted(n for n in names if n.startswith(top) or top.startswith(n))[:3]
            shown = sorted(names)
            listed = ", ".join(f"`{n}`" for n in shown[:12]) + (f" and {len(shown) - 12} more" if len(shown) > 12 else "")
            self.error("E087", f"no call to `{chan}` sets a field `{top}`: the test would get \"<none>\"",
                       _name_pos(a), ("did you mean " + " or ".join(f"`{c}`" for c in close) + "? " if close else "")
                       + f"the calls to `{chan}` set {listed}")

    def _call_target(self, ident: A.Ident, facts) -> tuple[str | None, list[A.CallStep | A.Compensate]]:
        chan = self.ref(ident, "channel")
        if chan is None:
            return None, []
        steps = facts["calls"].get(chan, [])
        if not steps:
            self.error("E094", f"no route calls channel `{chan}`", ident.pos,
                       did_you_mean(chan, facts["calls"]) or "channels called by the routes: "
                       + (", ".join(sorted(facts["calls"])) or "(none)"))
        return chan, steps

    def _test_answer(self, s: A.GivenAnswerAst, facts, scope) -> ir.GivenAnswer:
        chan, steps = self._call_target(s.endpoint, facts)
        fmt = self.ref(s.format, "format") if s.format is not None else None
        if s.format is None and steps:
            st = steps[0]
            fmt = (st.reply_format or st.format).name
        elif fmt is not None and steps and s.mode == "values" and s.status is None:
            wanted = list(dict.fromkeys((st.reply_format or st.format).name for st in steps))
            # a call whose format is unknown is told there (E020), not here as the test's mistake
            if fmt not in wanted and all(w in self.decls for w in wanted):
                self.error("E079", f"the calls to `{chan}` read their answer as "
                           + " or ".join(f"`{w}`" for w in wanted) + f", not `{fmt}`", s.format.pos,
                           f"write `given {chan} answers {wanted[0]} {{ ... }}` (or leave the format out: "
                           "the call's reply format is the default)")
                fmt = None      # its fields would only repeat the mistake
        if s.status is not None and chan is not None:
            kind = self.decls[chan][1].kind_name
            if "http" not in kind:
                self.error("E095", f"channel `{chan}` ({kind.replace('.', ' ')}) answers without a status",
                           s.status.pos, f"remove `{s.status.value}`: only http channels have a reply status")
        self._assigns(s.assigns, scope, set(), fmt, "answer", at=s.format.pos if s.format is not None else s.pos)
        self._given_kinds(s.assigns, fmt, scope)
        headers = None
        if s.headers is not None:
            self._test_http(chan, s.headers, scope, "call")
            headers = lower_assigns(s.headers)
        return ir.GivenAnswer(chan or s.endpoint.name, s.mode, fmt, lower_assigns(s.assigns),
                              s.status.value if s.status is not None else None,
                              s.delay.value if s.delay is not None else None, pos=s.pos, headers=headers)

    def _test_http(self, chan: str | None, assigns, scope, role: str) -> None:
        """``http { ... }`` of a send (http listen) / ``headers { ... }`` of an answer (http call)."""
        if chan is not None and assigns:
            kind = self.decls[chan][1].kind_name
            if kind != f"http.{role}":
                what = "http { ... }" if role == "listen" else "headers { ... }"
                self.error("E099", f"channel `{chan}` ({kind.replace('.', ' ')}) is not an http {role} channel: "
                           f"it has no {'request line' if role == 'listen' else 'answer headers'}",
                           assigns[0].pos, f"remove `{what}`: only http {role} channels take it")
        for a in assigns:
            if role == "listen" and str(a.parts[0]) not in GIVEN_HTTP_FIELDS:
                self.error("E099", f"an http request has no `{a.path}` to set", a.pos,
                           did_you_mean(str(a.parts[0]), GIVEN_HTTP_FIELDS)
                           or "set: " + ", ".join(GIVEN_HTTP_FIELDS) + " (params.NAME, query.NAME, "
                           'headers["NAME"])')
            elif role == "listen" and a.parts == ("peer",) and isinstance(a.value, ir.Lit) \
                    and not (a.value.type == "string" and peer_address(a.value.value)):
                self.error("E099", f"`http.peer` is the client's address, HOST:PORT: {show(a.value)} is not one",
                           a.value.pos, 'write it as the route reads it: peer = "10.20.30.40:51234"')
            self._expr(a.value, scope, set())

    def _field_kinds(self, fmt: str | None) -> dict[str, str]:
        """The types top-level fields of ``fmt`` decode to, where the format fixes them (typed fields of a
        field block, a copybook's PIC through the format kind's ``field_types`` hook)."""
        cache = self.__dict__.setdefault("_kinds", {})
        if fmt in cache:
            return cache[fmt]
        kinds = {n: t for n, fd in self._typed_fields(fmt).items() if (t := field_type(fd)) is not None}
        decl = self.res.formats.get(fmt) if fmt else None
        spec = self.registry.get("format", decl.kind) if decl is not None else None
        hook = getattr(spec, "field_types", None) if spec is not None else None
        if hook is not None and decl.pos is not None:
            try:
                kinds.update(_call_hook(hook, decl, _base_dir(decl.pos)) or {})
            except Exception:   # noqa: BLE001 - a hook that cannot tell leaves the types unknown
                pass
        cache[fmt] = kinds
        return kinds

    def _path_kind(self, fmt: str | None, parts: tuple) -> Any:
        """The ``FieldKind`` the format kind's ``field_kind`` hook gives the field at ``parts`` (an ISO 8583
        spec's field, an ISO 20022 XSD's element, a SWIFT typed field's part), or None."""
        decl = self.res.formats.get(fmt) if fmt else None
        spec = self.registry.get("format", decl.kind) if decl is not None else None
        hook = getattr(spec, "field_kind", None) if spec is not None else None
        if hook is None or decl.pos is None:
            return None
        cache = self.__dict__.setdefault("_path_kinds", {})
        key = (fmt, parts)
        if key not in cache:
            try:
                cache[key] = hook(decl, _base_dir(decl.pos), parts)
            except Exception:   # noqa: BLE001 - a hook that cannot tell leaves the kind unknown
                cache[key] = None
        return cache[key]

    def _expect_kinds(self, s: A.ExpectAst, fmt: str | None, scope, kinds: dict[str, str] | None = None,
                      owner: str | None = None) -> None:
        """E103: ``expect ... { f = value }`` where f is a number and the value text, or the other way round:
        an expected value equals a field of its own kind only (a text is never equal to a number).
        ``owner``: how to name a field (``a deal's``), else ``field `F` of format `FMT```.  The kinds are
        the format's field types (``kinds``), else what its kind's ``field_kind`` hook says of the path."""
        kinds = self._field_kinds(fmt) if kinds is None else kinds
        for a in s.assigns:
            name = str(a.parts[0])
            if isinstance(a, A.LikeAst):
                continue
            fk = None
            if len(a.parts) == 1 and name in kinds:
                ft = kinds[name]
            elif owner is None and (fk := self._path_kind(fmt, tuple(a.parts))) is not None:
                ft = fk.type
            else:
                continue
            self._kind_mismatch(a, ft, fk, scope, fmt, owner, "expect")

    def _given_kinds(self, assigns, fmt: str | None, scope) -> None:
        """E103 of a ``given`` body: a value of a kind the format's encoder refuses for its field (a number
        for an ISO 8583 ``an`` field, a text for a SWIFT amount), where the ``field_kind`` hook says so."""
        for a in assigns:
            fk = self._path_kind(fmt, tuple(a.parts))
            if fk is not None and fk.sends:
                self._kind_mismatch(a, fk.type, fk, scope, fmt, None, "given")

    def _kind_mismatch(self, a: A.AssignAst, ft: str, fk: Any, scope, fmt: str | None, owner: str | None,
                       role: str) -> None:
        t = Typer(lambda *x: None, lambda x: self._ref_type(x, scope)).infer(a.value)
        lit = a.value if isinstance(a.value, A.Lit) else None
        at = a.value.pos or a.pos
        path = _written(a.parts)
        declared = f", {fk.declared}" if fk is not None and fk.declared else ""
        what = f"{owner} field `{path}`" if owner else f"field `{path}` of format `{fmt}`"
        fails = "is never equal to it" if role == "expect" else "cannot be sent in it: the format does not encode it"
        sends = fk.sends if role == "given" else None
        if ft == BOOL and (t == STRING or t in NUMERIC):
            word = "true" if lit is not None and str(lit.value).strip().lower() in ("true", "1", "yes") else "false"
            self.error("E103", f"{what} is true or false: the {'text' if t == STRING else 'number'} "
                               f"{show(a.value)} {fails}", at, f"write it without quotes: `{path} = {word}`")
        elif ft in NUMERIC and t == STRING and not (sends and STRING in sends):
            if lit is not None and as_number(lit.value) is not None:
                fix = f"write the number without quotes: `{path} = {lit.value.strip()}`"
            elif lit is not None:
                fix = f"write the number the field holds: `{path} = 20261226`"
            else:
                fix = f"read the text as a number: `{path} = number({show(a.value)})`"
            self.error("E103", f"{what} is a number ({ft}{declared}): the text {show(a.value)} {fails}", at, fix)
        elif ft == STRING and t in NUMERIC and not (sends and (t in sends or (t == NUMBER and INTEGER in sends))):
            if fk is not None and fk.digits:
                digits = (str(lit.value).replace(".", "").lstrip("-") if lit is not None else None)
                shown = digits.zfill(fk.pad) if digits is not None else None
                fix = (f'write the digits as text, zero-padded as on the wire: `{path} = "{shown}"`'
                       if shown is not None else
                       f"write the digits as text, {f'zero-padded to {fk.pad}, ' if fk.pad else ''}as on the wire")
            elif lit is not None:
                fix = f'write it as text: `{path} = "{lit.value}"`'
            else:
                fix = (f"write the text the field holds, in quotes (\"00\" is not 0), or `{path} ~ ...` for a "
                       "part of it")
            kind = f"text ({fk.declared})" if fk is not None and fk.declared else "text"
            self.error("E103", f"{what} is {kind}: the number {show(a.value)} {fails}", at, fix)
        elif fk is not None and fk.digits and lit is not None and isinstance(lit.value, str) \
                and lit.value != "<none>" and not lit.value.isdigit():
            digits = "".join(c for c in lit.value if c.isdigit())
            fix = (f'write digits only, zero-padded as on the wire: `{path} = "{digits.zfill(fk.pad)}"`' if digits
                   else f"write digits only{f', {fk.pad} of them' if fk.pad else ''}")
            self.error("E103", f"{what} is text of digits only ({fk.declared}): the text {show(a.value)} {fails}",
                       at, fix)

    def _test_file(self, chan: str | None, assigns, scope) -> None:
        """``file { name = "X.csv" line = 3 }`` of a send: the record's place in its batch file (E102)."""
        fields = self._provided_fields(chan, "file")
        if fields is not None:      # the end-of-file message's (dsl.fileend): `file { end = true  status = "done" }`
            fields = fields + tuple(f for f in END_FIELDS if f != "trailer" and f not in fields)
        if chan is not None and chan in self.decls and "file" not in self._channel_provides(chan):
            kind = self.decls[chan][1].kind_name
            self.error("E102", f"channel `{chan}` ({kind.replace('.', ' ')}) does not take files: its routes see no "
                       "`file`", assigns[0].pos if assigns else None,
                       "remove `file { ... }`: only the routes of a file watch channel read file.name, file.line, ...")
            fields = None
        for a in assigns:
            before = self._errors()
            t = self._expr(a.value, scope, set())
            top = str(a.parts[0])
            if fields is None:
                continue
            if top == "header" and "header" in fields:
                self._test_file_header(chan, a)
                continue
            if len(a.parts) > 1 or top not in fields:
                self.error("E102", f"a file record has no `{a.path}` to set", _name_pos(a),
                           did_you_mean(top, fields) or "set: " + ", ".join(fields))
                continue
            want = (STRING if top in ("name", "status", "reason", "archived") else BOOL if top == "end"
                    else INTEGER)
            if self._errors() == before and t is not None and t != NULL and \
                    (t != want if want in (STRING, BOOL) else t not in (INTEGER, NUMBER)):
                example = ('"BATCH-20261126.csv"' if top == "name" else "true" if want == BOOL else '"done"'
                           if want == STRING else "3")
                self.error("E102", f"`file.{top}` is {desc(want)}: it cannot take {desc(t)} ({show(a.value)})",
                           a.value.pos or a.pos, f"write `{top} = {example}`")

    def _test_send_file(self, s: A.GivenSendAst, facts: dict[str, Any]) -> ir.GivenSend:
        """``given CHANNEL sends file "NAME.csv" [twice]``: the channel is a file watch a route receives from
        (E092, E102), the file is there beside the test file (E047); ``twice`` drops it again."""
        chan = self.ref(s.channel, "channel")
        if chan is not None and chan in self.decls:
            kind = self.decls[chan][1].kind_name
            if kind != "file.watch":
                self.error("E102", f"channel `{chan}` ({kind.replace('.', ' ')}) does not take files: a test sends "
                           "it a request, not a file", s.pos,
                           f"write `given {chan} sends FORMAT {{ ... }}`; `sends file` is for a file watch channel")
            elif not facts["inbound"].get(chan):
                self.error("E092", f"no route receives from channel `{chan}`", s.channel.pos,
                           "a test sends to a channel a route receives from: "
                           + (", ".join(sorted(facts["inbound"])) or "(no routes)"))
        p = Path(s.path.value)
        if not p.is_absolute():
            p = _base_dir(s.pos) / p
        p = p.resolve()
        if not p.is_file():
            self.error("E047", f"file not found: \"{s.path.value}\" (looked for {p})", s.path.pos,
                       path_help(_base_dir(s.pos), s.path.value))
        return ir.GivenSend(chan or s.channel.name, None, (), pos=s.pos, twice=s.repeat is not None, path=str(p))

    def _test_file_header(self, chan: str | None, a) -> None:
        """``file { header.company = "ACME" }``: a field of the file's header record (``file.header.FIELD``)."""
        has, fmt = self._header_format(chan)
        if not has:
            self.error("E141", f"channel `{chan}` reads no header record: its routes read `file.header` as null",
                       _name_pos(a), "remove it, or give the channel `header = FORMAT` (the format of the file's "
                       "first record) and `skip_header = 1`")
            return
        known = self.res.format_fields.get(fmt) if fmt else None
        if len(a.parts) != 2:
            self.error("E102", f"`file.{a.path}`: set the header's fields one by one, `header.FIELD = value`",
                       _name_pos(a), "fields: " + ", ".join(known) if known else None)
            return
        field_name = str(a.parts[1])
        if known is not None and field_name not in known:
            self.error("E060", f"the header's format `{fmt}` has no field `{field_name}`", _name_pos(a),
                       did_you_mean(field_name, known) or "fields: " + ", ".join(known))

    def _test_peer(self, chan: str | None, assigns, scope) -> None:
        """``peer { cn = "PARTNER-A" }`` of a send: who the channel authenticated (E110)."""
        decl = self.res.channels.get(chan) if chan else None
        mode = decl.options.get("client_cert") if decl is not None else None
        no_cert = decl is not None and not (mode in CERT_MODES or (mode is not None and not isinstance(mode, str)))
        for a in assigns:
            before = self._errors()
            t = self._expr(a.value, scope, set())
            top = str(a.parts[0])
            if len(a.parts) > 1 or top not in PEER_FIELDS:
                self.error("E110", f"a peer has no `{a.path}` to set", _name_pos(a),
                           did_you_mean(top, PEER_FIELDS) or "set: " + ", ".join(PEER_FIELDS))
                continue
            if top in CERT_FIELDS and no_cert:
                kind = decl.kind.replace(".", " ")
                self.error("E110", f"channel `{chan}` ({kind}) never has a client certificate: its routes always "
                           f"read `peer.{top}` as {'null' if top == 'cn' else 'empty'}", _name_pos(a),
                           f"remove `{top}`, or give the channel client_cert = \"required\" and `ca` if its "
                           f"clients are to authenticate with a certificate")
                continue
            want = "a list of texts" if top == "san" else "a text"
            wrong = (t is not None and t != NULL and t != STRING) if top != "san" else \
                (isinstance(a.value, A.Lit) and a.value.type != "null")
            if self._errors() == before and wrong:
                example = '["dns:partner-a.example"]' if top == "san" else \
                    ('"PARTNER-A"' if top == "cn" else '"10.1.2.3:51012"')
                self.error("E110", f"`peer.{top}` is {want}: it cannot take {show(a.value)}",
                           a.value.pos or a.pos, f"write `{top} = {example}`")

    def _test_expect(self, s: A.ExpectAst, facts, scope, send) -> ir.Expectation:
        kind = s.kind
        target: str | None = None
        fmt: str | None = None
        if kind == "reply":
            if s.target is not None:
                fmt = self.ref(s.target, "format")
            elif send is not None:
                cands = facts["replies"].get(send.channel, [])
                fmt = cands[0] if len(cands) == 1 else None
            if s.status is not None and send is not None and send.channel in self.decls:
                k = self.decls[send.channel][1].kind_name
                if k != "http.listen":
                    self.error("E095", f"channel `{send.channel}` ({k.replace('.', ' ')}) answers without a status",
                               s.status.pos, f"remove `{s.status.value}`: only http listen channels answer "
                               "with a status")
            self._assigns(s.assigns, scope, set(), fmt, "reply", typed=False)
            self._expect_kinds(s, fmt, scope)
        elif kind in ("call", "no_call"):
            target, steps = self._call_target(s.target, facts)
            if s.count is not None and s.count.value < 1:
                self.error("E089", f"`expect call {s.target.name}` counts {s.count.value} calls", s.count.pos,
                           f"write `expect no call {s.target.name}` to say it is not called")
            if steps:
                fmt = steps[0].format.name
            self._assigns(s.assigns, scope, set(), fmt, "call", typed=False)
            self._expect_kinds(s, fmt, scope)
            if steps:
                self._unsent_fields(s, target, facts)
            if s.names is not None:
                self._expect_names(target, s.names, scope)
        elif kind in ("deal", "dead_letter"):
            allowed = EXPECT_DEAL_FIELDS if kind == "deal" else EXPECT_DEAD_FIELDS
            what = "a deal" if kind == "deal" else "a dead letter"
            if kind == "deal":
                target = s.target.name
                if target not in facts["deal_types"]:
                    self.error("E097", f"no route records a deal of type `{target}`", s.target.pos,
                               did_you_mean(target, facts["deal_types"]) or "deal types: "
                               + ", ".join(sorted(facts["deal_types"])))
            for a in s.assigns:
                # record.NAME.FIELD: a value the deal's `record NAME { FIELD = .. }` step kept
                kept = kind == "deal" and len(a.parts) == 3 and a.parts[0] == "record"
                if not kept and (len(a.parts) > 1 or a.parts[0] not in allowed):
                    self.error("E096", f"{what} has no field `{a.path}` to expect", _name_pos(a),
                               did_you_mean(str(a.parts[0]), allowed) or "fields: " + ", ".join(allowed))
                self._expr(a.value, scope, set())
            if kind == "deal":
                self._expect_kinds(s, None, scope, DEAL_FIELD_KINDS, "a deal's")
        return ir.Expectation(kind, target, fmt, lower_assigns(s.assigns), pos=s.pos,
                              contains=tuple(i for i, a in enumerate(s.assigns) if isinstance(a, A.LikeAst)),
                              status=s.status.value if s.status is not None else None,
                              count=s.count.value if s.count is not None else None,
                              names=lower_assigns(s.names.assigns) if s.names is not None else None,
                              names_contains=tuple(i for i, a in enumerate(s.names.assigns if s.names else ())
                                                   if isinstance(a, A.LikeAst)))

    def _expect_names(self, chan: str | None, clause: A.NameClause, scope) -> None:
        """``expect call CHAN [{ ... }] name { word = value }``: the file name values the call gave.  Each
        a ``{word}`` of the channel's name (E104, as a call's ``name { }``), on a channel that names its
        files from the call (E105); a value is text, as the call gave it (E103 for a number)."""
        decl = self.res.channels.get(chan) if chan is not None else None
        hook, wanted = self._name_fields(decl)
        pattern = decl.options.get("name") if decl is not None else None
        if decl is not None and not wanted:
            kind = decl.kind.replace(".", " ")
            self.error("E105", f"channel `{chan}` ({kind}) takes no file name values: `name {{ ... }}` checks the "
                       f"{{word}} fields a call gave a file write channel's name", clause.pos,
                       "remove `name { ... }`" + ("" if hook is not None else
                                                  ": only file write channels name their files from the call"))
        given: dict[str, A.AssignAst] = {}
        for a in clause.assigns:
            word = a.parts[0]
            before = self._errors()
            self._expr(a.value, scope, set())
            if len(a.parts) > 1 or not isinstance(word, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", word):
                self.error("E104", f"`{a.path}` is not a file name field: a field is a plain word, as in "
                           f"{{ref}}", _name_pos(a), 'write `name { ref = "R1" }`')
                continue
            if word in given:
                self.error("E104", f"file name value `{word}` expected twice", _name_pos(a),
                           f"first expected at {given[word].pos}")
                continue
            given[word] = a
            if wanted and word not in wanted:
                self.error("E104", f"unknown file name value `{word}`: the name of channel `{chan}` ({pattern!r}) "
                           f"has no {{{word}}}", _name_pos(a), unknown_name_help(word, wanted))
            elif self._errors() == before and not isinstance(a, A.LikeAst):
                self._kind_mismatch(a, STRING, None, scope, None, "a file name's", "expect")


class Checker(_TestChecks):
    def __init__(self, registry: Any, calendar_warn_days: int | None = calendars.WARN_DAYS) -> None:
        self.registry = registry
        self.calendar_warn_days = calendar_warn_days     # W020 within so many days of a calendar's end; None: never
        self.calendars_seen: set[str] = set()
        self.calendars_dated: set[str] = set()       # effective-dated calendars whose rows were looked at (W033)
        self.diags: list[Diagnostic] = []
        self.decls: dict[str, tuple[str, Any]] = {}      # name -> (category, ast)
        self.routes: dict[str, A.RouteAst] = {}
        self.tests: list[A.RouteTestAst] = []
        self.used: set[str] = set()
        self.res = Resolved()
        self.format_tags: dict[str, dict[str, str] | None] = {}   # classified paths (None: unknown)
        self.included: frozenset[str] = frozenset()      # files a `use` names (dsl/load.py)

    # ------------------------------------------------------------ reporting
    def error(self, code: str, message: str, pos, help: str | None = None) -> None:
        self.diags.append(Diagnostic(code, ERROR, message, pos, help))

    def warn(self, code: str, message: str, pos, help: str | None = None) -> None:
        self.diags.append(Diagnostic(code, WARNING, message, pos, help))

    def _errors(self) -> int:
        return sum(1 for d in self.diags if d.is_error)

    def report(self, d: Diagnostic) -> None:
        self.diags.append(d)

    # ------------------------------------------------------------ entry
    def check(self, decls: list[A.Decl]) -> Resolved:
        for d in decls:
            self._collect(d)
        for d in decls:
            if isinstance(d, A.FormatAst) and self.decls.get(d.name.name, (None, None))[1] is d:
                self._check_format(d)
            elif isinstance(d, A.TableAst) and self.decls.get(d.name.name, (None, None))[1] is d:
                self._check_table(d)
        channels = [d for d in decls if isinstance(d, A.ChannelAst)
                    and self.decls.get(d.name.name, (None, None))[1] is d]
        for d in channels:
            self._check_channel(d)
        listen_clashes(channels, {n: c.options for n, c in self.res.channels.items()}, self.error)
        for d in decls:
            if isinstance(d, A.RouteAst):
                self._check_route(d)
        shared_deal_types(self.routes.values(), self.warn)
        unkeyed_file_routes(self.routes.values(), self.decls, self.warn)
        check_end_messages(self.routes.values(), self.decls, self.res.channels, self.res.formats, self.error,
                           self.warn)
        late_rules(self.routes.values(), self.decls, self.res.channels, self.warn)
        for t in self.tests:
            self._check_test(t)
        self._unused()
        return self.res

    def _collect(self, d: A.Decl) -> None:
        if isinstance(d, A.UseDecl):
            return
        if isinstance(d, A.RouteTestAst):
            first = next((t for t in self.tests if t.name == d.name), None)
            if first is not None:
                self.error("E098", f"test \"{d.name}\" is declared twice", d.name_pos,
                           f"first declared at {first.name_pos}; test names must be unique")
            else:
                self.tests.append(d)
            return
        if isinstance(d, A.RouteAst):
            first = self.routes.get(d.name.name)
            if first is not None:
                self.error("E023", f"route `{d.name.name}` is declared twice", d.name.pos,
                           f"first declared at {first.name.pos}; route names must be unique")
            else:
                self.routes[d.name.name] = d
            return
        cat = {A.FormatAst: "format", A.ChannelAst: "channel", A.TableAst: "table"}[type(d)]
        name = d.name.name
        if name in self.decls:
            fcat, fast = self.decls[name]
            self.error("E022", f"`{name}` is declared twice", d.name.pos,
                       f"first declared as a {fcat} at {fast.name.pos}; formats, channels and "
                       f"tables share one set of names")
            return
        if name in ROOTS:
            self.error("E022", f"`{name}` is a reserved name", d.name.pos,
                       "msg, raw and error are bound by the engine; choose another name")
            return
        self.decls[name] = (cat, d)

    # ------------------------------------------------------------ references
    def ref(self, ident: A.Ident | None, category: str) -> str | None:
        """Check a name used where a declaration of ``category`` is expected."""
        if ident is None:
            return None
        name = ident.name
        found = self.decls.get(name)
        if found is None:
            cands = [n for n, (c, _) in self.decls.items() if c == category]
            self.error("E020", f"unknown {category} `{name}`", ident.pos,
                       did_you_mean(name, cands) or use_hint(name, category, ident.pos.file)
                       or (f"declare it: `{category} {name} = ...`"))
            return None
        cat, node = found
        self.used.add(name)
        if cat != category:
            self.error("E021", f"`{name}` is a {cat}, not a {category}", ident.pos,
                       f"`{name}` is declared at {node.name.pos}")
            return None
        return name

    def _plugins_left_out(self) -> str:
        """For an unknown kind: the plugins that were installed but not loaded (the kind may be theirs)."""
        problems = getattr(self.registry, "problems", None) or ()
        if not problems:
            return ""
        return ("; not loaded, so their kinds are missing: "
                + ", ".join(f"plugin {getattr(p, 'plugin', p)}" for p in problems)
                + " (`bsp docs components` says why)")

    # ------------------------------------------------------------ formats
    def _check_format(self, d: A.FormatAst) -> None:
        kind = d.kind.name
        spec = self.registry.get("format", kind)
        owner = f"format `{d.name.name}` ({kind})"
        if spec is None:
            self.error("E040", f"unknown format kind `{kind}`", d.kind.pos,
                       (did_you_mean(kind, self.registry.names("format"))
                        or ("known format kinds: " + ", ".join(self.registry.names("format"))))
                       + self._plugins_left_out())
            return
        errors_at_start = self._errors()
        base = _base_dir(d.pos)
        suggested: set[str] = set()
        opts, where = group_atoms(spec, d.atoms, base, self.report, owner, d.pos, suggested)
        opts = finish_options(spec, opts, where, self.report, owner, d.name.pos, suggested)
        fields: list[ir.FieldDecl] = []
        names: list[str] = []          # every declared field, with a good type or not
        if d.fields is not None:
            if not spec.accepts_fields:
                self.error("E051", f"format kind `{kind}` does not take a field block", d.kind.pos,
                           "only formats such as fixed and csv declare their fields inline; "
                           "the others describe them in a file (schema, copybook, spec)")
            else:
                fields = self._fields(d, names)
        decl = ir.FormatDecl(d.name.name, kind, opts, tuple(fields), pos=d.pos)
        self.res.formats[d.name.name] = decl
        check_config_folders(self, spec, decl, where, d.pos)      # E132: a folder too large to version
        # a field whose type is wrong (E052) is still a field: reads and bodies naming it are fine
        known: list[str] | None = names or None
        if self._errors() == errors_at_start:      # hooks only see declarations that are fine so far
            if spec.check is not None:
                self._run_check_hook(spec, decl, base, d, where)
            if spec.fields is not None:
                try:
                    got = _call_hook(spec.fields, decl, base)
                    if got is not None:
                        known = list(got)
                except Exception:   # noqa: BLE001 - a hook that cannot tell leaves fields unknown
                    pass
            hook = getattr(spec, "required", None)
            if hook is not None:
                try:
                    got = _call_hook(hook, decl, base)
                    if got:
                        self.res.format_required[d.name.name] = list(got)
                except Exception:   # noqa: BLE001 - a hook that cannot tell requires nothing
                    pass
        self.res.format_fields[d.name.name] = known
        if self._errors() == errors_at_start:
            self.format_tags[d.name.name] = format_tags(spec, decl, base, _call_hook)

    def _run_check_hook(self, spec, decl, base: Path, d: A.FormatAst, where: dict | None = None) -> None:
        from formats.errors import SpecError
        try:
            errs = _call_hook(spec.check, decl, base) or []
        except SpecError as e:
            errs = [e]
        except Exception as e:  # noqa: BLE001 - report, never crash the checker
            self.error("E050", f"format `{d.name.name}`: {hook_failure(self.registry, 'format', spec.name, e)}",
                       d.kind.pos)
            return
        for e in errs:
            text = getattr(e, "message", None) or str(e)
            named = _option_named(text, where or {})
            pos = (where or {}).get(named) or d.pos
            if getattr(e, "path", None) and getattr(e, "line", None):
                pos = ir.Pos(str(e.path), e.line, e.col or 1)
            if getattr(e, "warning", False):        # the definition is used: told, not refused
                self.warn("W011", f"format `{d.name.name}`: {text}", pos, getattr(e, "hint", None))
                continue
            self.error("E050", f"format `{d.name.name}`: {text}", pos,
                       getattr(e, "hint", None) or _option_help(spec, named))

    def _fields(self, d: A.FormatAst, names: list[str]) -> list[ir.FieldDecl]:
        """The well-typed fields of a field block; ``names`` gets every field's name."""
        out: list[ir.FieldDecl] = []
        seen: dict[str, A.FieldAst] = {}
        for f in d.fields or ():
            if f.name.name in seen:
                self.error("E054", f"field `{f.name.name}` is declared twice in format `{d.name.name}`",
                           f.name.pos, f"first declared at {seen[f.name.name].name.pos}")
                continue
            seen[f.name.name] = f
            names.append(f.name.name)
            typ = f.type.name
            if typ not in FIELD_TYPES:
                self.error("E052", f"unknown field type `{typ}`", f.type.pos,
                           did_you_mean(typ, FIELD_TYPES) or "types: " + ", ".join(FIELD_TYPES))
                continue
            width = scale = pattern = None
            args = f.args or ()
            ints = [a for a in args if a.type == "int"]
            strs = [a for a in args if a.type == "string"]
            shape_ok = True
            if typ in ("string", "integer"):
                shape_ok = not strs and len(ints) <= 1
                width = ints[0].value if ints else None
                usage = f"{typ}(WIDTH) or, without a width, {typ}"
            elif typ == "decimal":
                shape_ok = not strs and len(ints) <= 2
                if len(ints) == 2:
                    width, scale = ints[0].value, ints[1].value
                elif len(ints) == 1:
                    scale = ints[0].value
                usage = "decimal(WIDTH, SCALE) or, without a width, decimal(SCALE)"
            else:
                shape_ok = len(strs) == 1 and len(ints) <= 1 and args[-1].type == "string"
                width = ints[0].value if ints else None
                pattern = strs[0].value if strs else None
                usage = 'date(WIDTH, "%Y%m%d") or, without a width, date("%Y-%m-%d")'
            if not shape_ok:
                self.error("E052", f"bad arguments for field type `{typ}` in field `{f.name.name}`",
                           f.type.pos, f"write {usage}")
                continue
            for a in ints:
                if a.value <= 0 and not (typ == "decimal" and a is ints[-1] and a.value == 0):
                    self.error("E052", f"field `{f.name.name}`: {a.value} is not a valid width or scale",
                               a.pos, "widths are whole numbers above 0")
            cls = None
            if f.classification is not None:
                cls = f.classification.name
                if cls not in CLASSIFICATIONS:
                    self.error("E053", f"unknown classification `{cls}` for field `{f.name.name}`",
                               f.classification.pos,
                               did_you_mean(cls, CLASSIFICATIONS) or "classifications: pan, secret, personal")
                    cls = None
            out.append(ir.FieldDecl(f.name.name, typ, width, scale, pattern, cls, pos=f.pos))
        return out

    # ------------------------------------------------------------ tables
    def _check_table(self, d: A.TableAst) -> None:
        if d.kind.name not in TABLE_KINDS:
            self.error("E064", f"unknown table kind `{d.kind.name}`", d.kind.pos,
                       did_you_mean(d.kind.name, TABLE_KINDS) or "tables are read from csv files: `csv \"file.csv\"`")
            return
        p = Path(d.path)
        if not p.is_absolute():
            p = _base_dir(d.pos) / p
        p = p.resolve()
        if not p.is_file():
            self.error("E047", f"file not found: \"{d.path}\" (looked for {p})", d.path_pos,
                       path_help(_base_dir(d.pos), d.path))
            return
        try:
            with open(p, newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), [])
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            self.error("E063", f"cannot read table file {p}: {e}", d.path_pos)
            return
        header = [h.strip() for h in header]
        if d.key.name not in header:
            self.error("E063", f"table `{d.name.name}`: key column `{d.key.name}` is not in {p.name}",
                       d.key.pos, did_you_mean(d.key.name, header) or "columns: " + ", ".join(header))
            return
        self.res.table_columns[d.name.name] = header
        effective = asof.check_decl(d, str(p), header, self.error)
        if d.effective is not None and effective is None:
            return
        self.res.tables[d.name.name] = ir.TableDecl(d.name.name, d.kind.name, str(p), d.key.name, {}, pos=d.pos,
                                                    effective=effective)

    # ------------------------------------------------------------ channels
    def _check_channel(self, d: A.ChannelAst) -> None:
        kind = d.kind_name
        spec = self.registry.get("channel", kind)
        owner = f"channel `{d.name.name}` ({kind.replace('.', ' ')})"
        if spec is None:
            shown = [n.replace(".", " ") for n in self.registry.names("channel")]
            self.error("E041", f"unknown channel kind `{kind.replace('.', ' ')}`", d.kind[0].pos,
                       (did_you_mean(kind.replace(".", " "), shown) or "known channel kinds: " + ", ".join(shown))
                       + self._plugins_left_out())
        opts: dict[str, Any] = {}
        where: dict[str, ir.Pos] = {}
        suggested: set[str] = set()     # options an E043 names (its E044 would only repeat it)
        base = _base_dir(d.pos)
        errors_at_start = self._errors()
        for o in d.options:
            key = o.key.name
            if spec is None:
                continue
            if key in COMMON_CHANNEL_OPTIONS and spec.option(key) is None:
                lit = literal_of(o.value)
                if key in where:
                    self.error("E049", f"option `{key}` given twice in {owner}", o.key.pos,
                               f"first given at {where[key]}")
                elif lit is None or lit[1] != "bool":
                    self.error("E045", f"option `{key}` of {owner} expects true or false", o.value.pos,
                               "write `record = true` to capture this channel's frames (bsp run --record)")
                else:
                    where[key] = o.key.pos
                    opts[key] = lit[0]
                continue
            opt = spec.option(key)
            if opt is None:
                self.error("E043", f"unknown option `{key}` for {owner}", o.key.pos,
                           did_you_mean(key, spec.option_names)
                           or ("options: " + ", ".join(spec.option_names) if spec.option_names else None))
                suggested.update(best_guess(key, spec.option_names))
                continue
            if key in where:
                self.error("E049", f"option `{key}` given twice in {owner}", o.key.pos,
                           f"first given at {where[key]}")
                continue
            where[key] = o.key.pos
            if opt.type == "expr":
                self._expr(o.value, {}, set())
                opts[key] = o.value
                continue
            lit = literal_of(o.value)
            if lit is None:
                self.error("E080", f"option `{key}` of {owner} must be a literal value", o.value.pos,
                           "channel options are fixed when the route is loaded: write a string, number, "
                           "duration, true/false or a bare word")
                continue
            value, vtype = lit
            if opt.type in ("format", "channel", "table") and vtype == "ident":
                if self.ref(A.Ident(value, o.value.pos), opt.type) is None:
                    continue
            v = convert(opt, value, vtype, o.value.pos, base, self.report, owner)
            if v is not NOT_LITERAL:
                opts[key] = v
        if spec is not None:
            errors_before = self._errors()
            finish_options(spec, opts, where, self.report, owner, d.name.pos, suggested)
            # the kind's own check sees the options only when each of them is fine so far
            if spec.check is not None and self._errors() == errors_before == errors_at_start:
                self._run_channel_check(spec, ir.ChannelDecl(d.name.name, spec.name, opts, pos=d.pos),
                                        base, where, d)
            if self._errors() == errors_at_start:
                self._control_fields(d.name.name, opts, where)
        error_reply = None
        if d.error_reply is not None:
            # peer.* as in the routes (dsl/peer.py), W008 by the channel's own options: declared before its reply
            self.res.channels[d.name.name] = ir.ChannelDecl(d.name.name, kind, opts, pos=d.pos,
                                                            option_pos=dict(where))
            # msg: the request as far as it was read (a format error: what its decoder read before the failure,
            # docs/channels.md#tcp-listen), null when nothing could be; its format is whichever route's read it
            scope = {"raw": Binding("raw"), "error": Binding("error"), "msg": Binding("msg", None),
                     "peer": Binding("channel_value", pos=d.pos, channel=d.name.name)}
            scope.update(self._table_scope())
            fmt = self.ref(d.error_reply.format, "format")
            self._assigns(d.error_reply.assigns, scope, set(), fmt, "reply", at=d.error_reply.format.pos)
            error_reply = ir.Step("reply", None, {"format": d.error_reply.format.name,
                                                  "fields": lower_assigns(d.error_reply.assigns)},
                                  pos=d.error_reply.pos)
        for extra in d.extra_error_replies:
            self.error("E033", f"channel `{d.name.name}` has more than one `on error reply`", extra.pos,
                       f"the first is at {d.error_reply.pos}")
        self.res.channels[d.name.name] = ir.ChannelDecl(d.name.name, kind, opts, error_reply, pos=d.pos,
                                                        option_pos=dict(where))

    def _run_channel_check(self, spec, decl, base: Path, where: dict, d) -> None:
        """A channel kind's own check of its options together (framing, for instance); the
        diagnostic points at the option its message names."""
        try:
            errs = _call_hook(spec.check, decl, base) or []
        except ValueError as e:  # a constructor's ChannelConfigError (built_check lets a ValueError through)
            errs = [e]
        except Exception as e:  # noqa: BLE001 - a bug in the hook: report it, never crash the checker
            self.error("E055", f"channel `{decl.name}`: {hook_failure(self.registry, 'channel', decl.kind, e)}",
                       d.name.pos)
            return
        for e in errs:
            text = getattr(e, "message", None) or str(e)
            named = _option_named(text, where)
            pos = where[named] if named else None
            self.error("E055", text, pos or d.name.pos, getattr(e, "hint", None) or _option_help(spec, named))

    # a file watch channel's options naming a field of a format another option names
    _FIELD_OPTIONS = (("trailer_count", "trailer"), ("trailer_total", "trailer"), ("header_count", "header"),
                      ("header_total", "header"), ("total_field", "total_format"))

    def _control_fields(self, chan: str, opts: dict, where: dict) -> None:
        """E055: a control-total option (``trailer_count``, ``header_total``, ``total_field`` ...) naming a field
        its format does not have, told here rather than only when ``bsp run`` binds the channel."""
        for option, fmt_option in self._FIELD_OPTIONS:
            field_name, fmt = opts.get(option), opts.get(fmt_option)
            if not isinstance(field_name, str) or not isinstance(fmt, str):
                continue
            known = self.res.format_fields.get(fmt)
            if known is not None and field_name.split(".")[0] not in known:
                self.error("E055", f"channel {chan}: option {option}: format {fmt} has no field {field_name!r}",
                           where.get(option), did_you_mean(field_name, known) or "its fields: " + ", ".join(known))

    def _channel_provides(self, name: str | None) -> tuple[str, ...]:
        """Names a channel kind adds to its routes' scope (``http`` for http listen, ``header`` for a TPDU)."""
        decl = self.res.channels.get(name) if name else None
        spec = self.registry.get("channel", decl.kind) if decl is not None else None
        provided = tuple(getattr(spec, "provides", ()) or ())
        size = decl.options.get("header_size") if decl is not None else None
        if isinstance(size, int) and not isinstance(size, bool) and size > 0 and "header" not in provided:
            provided += ("header",)          # a framing header per frame (an ISO 8583 TPDU)
        return provided

    def _provided_fields(self, chan: str | None, name: str) -> tuple[str, ...] | None:
        """The fields of a name a channel kind provides (``file`` of a file watch), None when not fixed."""
        if name == "peer":
            return PEER_FIELDS
        decl = self.res.channels.get(chan) if chan else None
        spec = self.registry.get("channel", decl.kind) if decl is not None else None
        fields = getattr(spec, "provides_fields", None) if spec is not None else None
        return tuple(fields[name]) if fields and name in fields else None

    def _header_format(self, chan: str | None) -> tuple[bool, str | None]:
        """(whether the file watch channel ``chan`` reads a header record, the header format's name)."""
        decl = self.res.channels.get(chan) if chan else None
        if decl is None or decl.kind != "file.watch":
            return True, None                  # not known here: nothing to tell
        fmt = decl.options.get("header")
        return fmt is not None, fmt if isinstance(fmt, str) else None

    def _file_header_field(self, chan: str | None, e: A.Attr) -> None:
        """``file.header.FIELD``: E141 on a channel without ``header = FORMAT`` (always null), E060 for a
        field the header's format does not have."""
        has, fmt = self._header_format(chan)
        if not has:
            self.error("E141", f"channel `{chan}` reads no header record: `file.header.{e.name}` is always null",
                       e.pos, "give the channel `header = FORMAT` (the format of the file's first record) and "
                       "`skip_header = 1` (docs/channels.md#control-totals-in-a-header-record)")
            return
        known = self.res.format_fields.get(fmt) if fmt else None
        if known is not None and e.name not in known:
            self.error("E060", f"the header's format `{fmt}` has no field `{e.name}`", e.pos,
                       did_you_mean(e.name, known) or "fields: " + ", ".join(known))

    def _peer_without_cert(self, chan: str | None, e: A.Attr) -> None:
        """W008: ``peer.cn`` / ``peer.san`` read by a route whose channel never has a client certificate."""
        decl = self.res.channels.get(chan) if chan else None
        if decl is None:
            return
        mode = decl.options.get("client_cert")
        if mode in CERT_MODES or (mode is not None and not isinstance(mode, str)):
            return                      # mutual TLS (or an option whose value is only known when it runs)
        kind = decl.kind.replace(".", " ")
        spec = self.registry.get("channel", decl.kind)
        takes = spec is not None and any(o.name == "client_cert" for o in getattr(spec, "options", ()) or ())
        why = (f"it does not ask for one (client_cert = \"{mode or 'none'}\")" if takes
               else "a request on it comes over no TLS connection of its own")
        fix = ('set `client_cert = "required"` and `ca` on the channel (docs/channels.md, mutual TLS)' if takes
               else "only tcp listen and http listen channels with client_cert = \"required\" (or \"optional\") "
                    "give peer.cn and peer.san; read who sent it from the request, or remove the read")
        self.warn("W008", f"channel `{chan}` ({kind}) never has a client certificate: `peer.{e.name}` is always "
                  f"{'null' if e.name == 'cn' else 'empty'}, since {why}", e.pos, fix)

    def _receive_as(self, chan: str | None, fmt: str | None, s: A.Receive) -> None:
        """The channel kind's ``check_receive`` hook: can its routes read what it hands them as ``fmt``?"""
        cdecl = self.res.channels.get(chan) if chan else None
        fdecl = self.res.formats.get(fmt) if fmt else None
        if cdecl is None or fdecl is None:
            return
        spec = self.registry.get("channel", cdecl.kind)
        hook = getattr(spec, "check_receive", None) if spec is not None else None
        if hook is None:
            return
        try:
            problem = hook(cdecl, fdecl)
        except Exception as e:  # noqa: BLE001 - report, never crash the checker
            problem = hook_failure(self.registry, "channel", cdecl.kind, e)
        if problem:
            text, _, hint = str(problem).partition("\n")
            self.error("E039", f"channel `{chan}` cannot hand format `{fmt}` its requests: {text}",
                       s.format.pos, hint or None)

    def _table_scope(self) -> dict[str, Binding]:
        return {n: Binding("table", pos=node.name.pos) for n, (c, node) in self.decls.items() if c == "table"}

    # ------------------------------------------------------------ routes
    def _check_route(self, r: A.RouteAst) -> None:
        scope: dict[str, Binding] = {"raw": Binding("raw")}
        scope.update(self._table_scope())
        later = self._binders(r.body)
        receives = [s for s in r.body if isinstance(s, A.Receive)]
        if not receives:
            self.error("E030", f"route `{r.name.name}` has no `receive from CHANNEL`", r.name.pos,
                       "start the route with `receive from CHANNEL [as FORMAT] [when CONDITION]`")
        on_errors: list = []
        for i, s in enumerate(r.body):
            if isinstance(s, A.Receive):
                if s is not receives[0]:
                    self.error("E031", "a route receives exactly once", s.pos,
                               f"the route's `receive` is at {receives[0].pos}")
                    continue
                if i != 0:
                    self.error("E031", "`receive` must be the first statement of the route", s.pos,
                               "move it to the top of the route")
                chan = self.ref(s.channel, "channel")
                for extra in self._channel_provides(chan):
                    scope.setdefault(extra, Binding("channel_value", pos=s.pos, channel=chan))
                # who sent it (dsl/peer.py): every route, filled by the channels that authenticate a peer
                scope.setdefault("peer", Binding("channel_value", pos=s.pos, channel=chan))
                fmt = self.ref(s.format, "format")
                if s.format is not None:
                    scope["msg"] = Binding("msg", fmt, s.pos)
                    self._receive_as(chan, fmt, s)
                if s.when is not None:
                    self._expr(s.when, scope, later, cond=True)
                continue
            if isinstance(s, (A.OnErrorReply, A.OnErrorBlock)):
                on_errors.append(s)
                continue
            if isinstance(s, A.OnRestart):
                self._on_restart(s, r)
                continue
            if isinstance(s, A.OnDoubt):
                self._on_doubt(s, r)
                continue
            if isinstance(s, A.OnRefusal):
                self._on_refusal(s, r)
                continue
            self._stmt(s, scope, later, r)
        if receives:
            self._unanswered_failure(r, receives[0], on_errors)
        if on_errors:
            for extra in on_errors[1:]:
                self.error("E033", f"route `{r.name.name}` has more than one `on error`", extra.pos,
                           f"the first is at {on_errors[0].pos}")
            escope = dict(scope)
            escope["error"] = Binding("error")
            escope.setdefault("msg", Binding("msg", None))
            oe = on_errors[0]
            if isinstance(oe, A.OnErrorReply):
                fmt = self.ref(oe.format, "format")
                self._assigns(oe.assigns, escope, set(), fmt, "reply", at=oe.format.pos)
            else:
                for s in oe.body:
                    if isinstance(s, (A.Receive, A.OnErrorReply, A.OnErrorBlock)):
                        self.error("E034", "this statement is not allowed inside `on error { }`", s.pos,
                                   "`on error { }` holds steps such as reply, let, call or deal")
                        continue
                    self._stmt(s, escope, set(), r)

    def _unanswered_failure(self, r: A.RouteAst, recv: A.Receive, on_errors: list) -> None:
        """W010: a route that replies on a tcp listen channel, with no ``on error`` reply of its own (``on error
        reply``, or a ``reply`` in ``on error { }``) and none on its channel: when a step fails the channel
        sends nothing, and the sender (a CICS transaction) waits for its own timeout.  An http listen channel
        answers a failure itself (a problem+json with the failure's status), so it is not told; nor is an
        echo route (``_echo_only``), which has nothing that fails at run time."""
        decl = self.decls.get(recv.channel.name)
        if decl is None or decl[0] != "channel" or decl[1].kind_name not in UNANSWERED_ON_FAILURE:
            return
        chan: A.ChannelAst = decl[1]
        replies = [s for s in r.body if isinstance(s, A.Reply)]
        if not replies or chan.error_reply is not None:
            return
        if on_errors and (isinstance(on_errors[0], A.OnErrorReply)
                          or any(isinstance(s, A.Reply) for s in on_errors[0].body)):
            return
        if _echo_only(r, recv):
            return
        fmt = next((s.format.name for s in replies if s.format is not None), None) \
            or (recv.format.name if recv.format is not None else "FORMAT")
        kind = chan.kind_name.replace(".", " ")
        what = "its `on error { }` block has no `reply`" if on_errors else "it has no `on error`"
        self.warn("W010", f"route `{r.name.name}` replies on channel `{recv.channel.name}` ({kind}), but {what} and "
                          f"the channel has no `on error reply`: when a step fails, nothing is sent and the sender "
                          f"waits for its own timeout", r.name.pos,
                  f"answer the failure: add `on error reply {fmt} {{ FIELD = error.code  FIELD = error.text }}` "
                  f"to the route, or the same inside `channel {recv.channel.name} = {kind} {{ ... }}` after its "
                  f"options (it then answers a failure of every route of the channel)")

    def _on_restart(self, s: A.OnRestart, r: A.RouteAst) -> None:
        first = next(x for x in r.body if isinstance(x, A.OnRestart))
        if first is not s:
            self.error("E101", f"route `{r.name.name}` has more than one `on restart`", s.pos,
                       f"the first is at {first.pos}")
        elif s.policy.name not in RESTART_POLICIES:
            self.error("E100", f"unknown restart policy `{s.policy.name}`", s.policy.pos,
                       did_you_mean(s.policy.name, RESTART_POLICIES)
                       or "write `on restart complete`, `on restart compensate` or `on restart flag`")

    def _on_refusal(self, s: A.OnRefusal, r: A.RouteAst) -> None:
        first = next(x for x in r.body if isinstance(x, A.OnRefusal))
        if first is not s:
            self.error("E115", f"route `{r.name.name}` has more than one `on refusal`", s.pos,
                       f"the first is at {first.pos}: keep one")
        elif s.policy.name not in REFUSAL_POLICIES:
            self.error("E114", f"unknown refusal policy `{s.policy.name}`", s.policy.pos,
                       did_you_mean(s.policy.name, REFUSAL_POLICIES)
                       or "write `on refusal keep` (a repeat of a refused deal gets the refusal again: the "
                          "default) or `on refusal free` (a repeat runs again: nothing of a refused call stands)")

    def _on_doubt(self, s: A.OnDoubt, r: A.RouteAst) -> None:
        first = next(x for x in r.body if isinstance(x, A.OnDoubt))
        if first is not s:
            self.error("E109", f"route `{r.name.name}` has more than one `on doubt`", s.pos,
                       f"the first is at {first.pos}: keep one")
        elif s.policy.name not in DOUBT_POLICIES:
            self.error("E108", f"unknown doubt policy `{s.policy.name}`", s.policy.pos,
                       ("`complete` is an `on restart` policy (a deal a crash left in flight): `on doubt` takes "
                        "`flag` or `compensate`" if s.policy.name == "complete" else None)
                       or did_you_mean(s.policy.name, DOUBT_POLICIES)
                       or "write `on doubt flag` (keep the calls made before a call left in doubt that nothing "
                          "can undo, and flag the deal: the default) or `on doubt compensate` (undo them)")

    def _readonly(self, call: A.CallStep) -> None:
        """``readonly`` (an enquiry): nothing to undo, and a channel that writes cannot be one (E107)."""
        if call.compensate is not None:
            self.error("E107", f"call `{call.name.name}` is `readonly`: it changes nothing at the counterpart, so "
                       f"it has nothing to compensate", call.compensate.pos,
                       "drop the `compensate call ...`, or drop `readonly` if the call does change something")
            return
        decl = self.res.channels.get(call.channel.name)
        if decl is not None and decl.kind in _WRITING_KINDS:
            self.error("E107", f"call `{call.name.name}` is `readonly`, but channel `{call.channel.name}` "
                       f"({decl.kind.replace('.', ' ')}) {_WRITING_KINDS[decl.kind]}: the call changes something",
                       call.readonly, "drop `readonly`")

    def _forward(self, call: A.CallStep, fmt: str | None) -> None:
        """``store and forward``: an ISO 8583 advice (E124) that the engine repeats until acknowledged, so no
        `readonly` and no `compensate call` (E125), and a message type it repeats as itself (E126)."""
        name = call.name.name
        decl = self.res.formats.get(fmt) if fmt else None
        if decl is not None and decl.kind != "iso8583":
            self.error("E124", f"call `{name}` is `store and forward`, but its format `{fmt}` is {decl.kind}, not "
                       f"ISO 8583: only an ISO 8583 advice (0120, 0220, 0400, 0420) is repeated until the host "
                       f"acknowledges it", call.forward,
                       "drop `store and forward`, or send the call in an `iso8583` format")
            return
        if call.readonly is not None or call.compensate is not None:
            what = "`readonly`" if call.readonly is not None else "`compensate call ...`"
            self.error("E125", f"call `{name}` is `store and forward` and has {what}: an advice left in doubt is "
                       f"repeated until the host acknowledges it, so it is neither an enquiry nor undone by "
                       f"another call", call.forward, f"drop {what}, or drop `store and forward`")
            return
        t = next((a.value for a in call.assigns if a.parts == ("t",)), None)
        if t is None:
            self.error("E126", f"call `{name}` is `store and forward` but sets no message type `t`: say which "
                       f"advice it sends (0120, 0220, 0400 or 0420)", call.forward,
                       'add `t = "0420"` (or the advice it sends) to the call\'s body')
        elif isinstance(t, A.Lit) and isinstance(t.value, str) and not _forwardable(t.value):
            self.error("E126", f"call `{name}` is `store and forward` but sends a {t.value}: only an advice or a "
                       f"reversal (0120, 0220, 0400, 0420) is repeated as itself (0121, 0221, 0401, 0421) until "
                       f"acknowledged; a {t.value} left without an answer is reversed by the engine, never repeated",
                       t.pos or call.forward, "drop `store and forward` (a 0100 / 0200 is reversed on its own), "
                       'or send the advice (`t = "0420"`)')

    def _compensate(self, call: A.CallStep, scope: dict[str, Binding], later) -> None:
        """``compensate call ...`` after ``call``: its body reads the call's answer (``call.name``, the one to
        undo); its ``expect`` judges the compensation's own answer, bound to the same name (dsl.compexpect)."""
        c = call.compensate
        assert c is not None
        self.ref(c.channel, "channel")
        fmt = self.ref(c.format, "format")
        rfmt = self.ref(c.reply_format, "format") if c.reply_format is not None else fmt
        self._assigns(c.assigns, scope, later, fmt, "call", at=c.format.pos)
        self._call_names(c.channel, None, scope, later, c.pos, compensation=True)
        if c.expect is not None:
            mine = dict(scope)
            mine[call.name.name] = Binding("call", rfmt, pos=c.pos, channel=c.channel.name)
            theirs = scope.get(call.name.name)
            if not compexpect.check(self, call, c, rfmt, theirs.format if theirs is not None else None):
                self._expr(c.expect, mine, later, cond=True)

    def _call_names(self, chan_id: A.Ident, clause: A.NameClause | None, scope, later, at: ir.Pos,
                    compensation: bool = False) -> tuple[tuple[str, Source], ...]:
        """A call's ``name { word = EXPR }``: exactly the ``{word}`` fields its channel's file name takes
        (the kind's ``call_names`` hook), each an expression of the route's scope (E104); none on a
        channel that names no file from the call (E105).  Returns the classified values the name is
        built from, ``(word, Source)``: the answer's ``file`` (the name written) carries them (W006)."""
        decl = self.res.channels.get(chan_id.name)
        hook, wanted = self._name_fields(decl)
        pattern = decl.options.get("name") if decl is not None else None
        owner = f"channel `{chan_id.name}`"
        given: dict[str, A.AssignAst] = {}
        tags: dict[str, str] = {}
        carried: list[tuple[str, Source]] = []
        if clause is not None and decl is not None and not wanted:
            kind = decl.kind.replace(".", " ")
            self.error("E105", f"{owner} ({kind}) takes no file name values: `name {{ ... }}` gives the "
                       f"{{word}} fields of a file write channel's name", clause.pos,
                       "remove `name { ... }`, or put the fields in the channel's name, e.g. "
                       "name = \"RESULT-{source}.csv\"" if hook is not None else
                       "remove `name { ... }`: only file write channels name their files from the call")
        for a in (clause.assigns if clause is not None else ()):
            word = a.parts[0]
            before = self._errors()
            self._expr(a.value, scope, later)
            if len(a.parts) > 1 or not isinstance(word, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", word):
                self.error("E104", f"`{a.path}` is not a file name field: a field is a plain word, as in "
                           f"{{ref}}", _name_pos(a), "write `name { ref = msg.ref }`")
                continue
            if word in given:
                self.error("E104", f"file name value `{word}` given twice", _name_pos(a),
                           f"first given at {given[word].pos}")
                continue
            given[word] = a
            if wanted and word not in wanted:
                self.error("E104", f"unknown file name value `{word}`: the name of {owner} ({pattern!r}) has no "
                           f"{{{word}}}", _name_pos(a), unknown_name_help(word, wanted))
            elif self._errors() == before:
                srcs = self._flow(scope).sources(a.value)
                carried.extend((word, src) for src in srcs)
                if srcs:
                    tags[word] = strictest({src.tag for src in srcs})
        missing = [w for w in wanted if w not in given]
        if missing:
            shown = ", ".join(f"{{{w}}}" for w in missing)
            typo = [b for w in missing for b in closest(w, ("date", "time", "seq", "uuid"))]
            if compensation:
                self.error("E104", f"the file name of {owner} ({pattern!r}) uses {shown}, which a compensation "
                           f"call cannot give", chan_id.pos,
                           "compensate through a channel whose name uses only {date}, {time}, {seq}, {uuid}")
            else:
                self.error("E104", f"the file name of {owner} ({pattern!r}) uses {shown}, which this call does "
                           f"not give", clause.pos if clause is not None else chan_id.pos,
                           (f"did you mean {{{typo[0]}}} (the channel fills it)? or " if typo else "")
                           + f"add `name {{ {missing[0]} = ... }}` after the call's fields, e.g. "
                           f"`name {{ {missing[0]} = msg.{missing[0]} }}`")
        if tags:
            self.res.name_tags[at] = tags
        return tuple(carried)

    def _name_fields(self, decl: ir.ChannelDecl | None) -> tuple[Any, list[str]]:
        """(the channel kind's ``call_names`` hook or None, the ``{word}`` fields each call gives)."""
        spec = self.registry.get("channel", decl.kind) if decl is not None else None
        hook = getattr(spec, "call_names", None) if spec is not None else None
        if hook is None:
            return None, []
        try:
            return hook, list(hook(decl) or [])
        except Exception:  # noqa: BLE001 - the channel's own check reports its options
            return hook, []

    def _binders(self, body) -> dict[str, ir.Pos]:
        out: dict[str, ir.Pos] = {}
        for s in body:
            if isinstance(s, (A.Let, A.CallStep)):
                out.setdefault(s.name.name, s.name.pos)
            elif isinstance(s, A.PluginStep) and s.name is not None:
                out.setdefault(s.name.name, s.name.pos)
        return out

    def _bind(self, ident: A.Ident, binding: Binding, scope: dict[str, Binding]) -> None:
        name = ident.name
        if name in ROOTS:
            self.error("E032", f"`{name}` is a reserved name", ident.pos,
                       "msg, raw and error are bound by the engine; choose another name")
            return
        if name in self.decls:
            cat, node = self.decls[name]
            self.error("E032", f"`{name}` is already the name of a {cat}", ident.pos,
                       f"declared at {node.name.pos}; choose another name")
            return
        prev = scope.get(name)
        if prev is not None and prev.pos is not None:
            self.error("E032", f"`{name}` is already bound in this route", ident.pos,
                       f"first bound at {prev.pos}; choose another name")
            return
        binding.pos = ident.pos
        scope[name] = binding

    def _stmt(self, s, scope: dict[str, Binding], later: dict, r: A.RouteAst) -> None:
        if isinstance(s, A.Decode):
            if s.source is not None:
                self._expr(s.source, scope, later)
            fmt = self.ref(s.format, "format")
            scope["msg"] = Binding("msg", fmt, s.pos)
        elif isinstance(s, A.Let):
            before = self._errors()
            t = self._expr(s.value, scope, later)
            held = tuple(self._flow(scope).sources(s.value)) if self._errors() == before else ()
            self._bind(s.name, Binding("let", type=t, classified=held), scope)
        elif isinstance(s, A.Validate):
            for rule in s.rules:
                self._expr(rule.cond, scope, later, cond=True)
                if rule.more is not None:
                    self._expr(rule.more, scope, later)
        elif isinstance(s, A.Deal):
            seen = {a.parts[0] for a in s.assigns}
            for a in s.assigns:
                if a.parts[0] not in DEAL_FIELDS or len(a.parts) > 1:
                    self.error("E035", f"unknown deal field `{a.path}`", _name_pos(a),
                               did_you_mean(str(a.parts[0]), DEAL_FIELDS)
                               or "a deal has ref, amount, currency, party, key and match")
                before = self._errors()
                t = self._expr(a.value, scope, later)
                # `match` is kept only as its digest: a classified value there is not stored (no W006)
                if (self._errors() == before and a.parts[0] in DEAL_FIELDS and a.parts[0] != "match"
                        and len(a.parts) == 1):
                    self._deal_flow(a, scope)
                if a.parts == ("amount",) and t is not None and t not in NUMERIC and t != NULL:
                    self.error("E074", f"a deal's amount is a number: it cannot take {desc(t)} "
                               f"({show(a.value)})", a.value.pos, "give it a decimal, e.g. msg.amount")
            check_deal_amount(self, s, r)          # W014: a product or quotient recorded unrounded
            if "match" in seen and "key" not in seen:
                m = next(a for a in s.assigns if a.parts[0] == "match")
                self.error("E116", f"deal `{s.type.name}` has a `match` but no `key`", _name_pos(m),
                           "`match` is what a repeat of the deal key must carry unchanged: give the deal a "
                           "`key = ...` (the business key), or remove `match`")
            missing = [f for f in DEAL_REQUIRED if f not in seen]
            if missing:
                self.error("E036", f"deal `{s.type.name}` needs {' and '.join(missing)}", s.type.pos,
                           "every deal has a reference and an amount: `ref = ...  amount = ...`")
        elif isinstance(s, A.CallStep):
            self.ref(s.channel, "channel")
            fmt = self.ref(s.format, "format")
            rfmt = self.ref(s.reply_format, "format") if s.reply_format is not None else fmt
            self._assigns(s.assigns, scope, later, fmt, "call", at=s.format.pos)
            mux_key_check(self, s, fmt)
            named = self._call_names(s.channel, s.names, scope, later, s.pos)
            self._bind(s.name, Binding("call", rfmt, channel=s.channel.name, classified=named), scope)
            if s.expect is not None:
                self._expr(s.expect, scope, later, cond=True)
            if s.compensate is not None:
                self._compensate(s, scope, later)
            if s.readonly is not None:
                self._readonly(s)
            if s.forward is not None:
                self._forward(s, fmt)
        elif isinstance(s, A.Reply):
            if s.format is not None:
                fmt = self.ref(s.format, "format")
            else:
                recv = next((x for x in r.body if isinstance(x, A.Receive)), None)
                fmt = recv.format.name if recv is not None and recv.format is not None else None
                if recv is not None and recv.format is None:
                    self.error("E038", "`reply` needs a format: this route receives raw bytes", s.pos,
                               "name it, `reply FORMAT { ... }`, or receive with `as FORMAT` "
                               "(a reply without a format uses the receive format)")
            self._assigns(s.assigns, scope, later, fmt, "reply", at=s.format.pos if s.format is not None else s.pos)
        elif isinstance(s, A.PluginStep):
            kind = s.kind.name
            spec = self.registry.get("step", kind)
            if spec is None:
                steps = [x for x in self.registry.names("step") if x not in BUILTIN_STEPS]
                close = closest(kind, steps + list(BUILTIN_STEPS))
                what = "statement" if close and close[0] in BUILTIN_STEPS else "statement or step kind"
                self.error("E042", f"unknown {what} `{kind}`", s.kind.pos,
                           (did_you_mean(kind, close)
                            or ("statements: " + ", ".join(BUILTIN_STEPS)
                                + ("; registered steps: " + ", ".join(steps) if steps else "")))
                           + self._plugins_left_out())
                for a in s.assigns:
                    self._expr(a.value, scope, later)
                if s.name is not None and s.name.name not in scope:
                    # `rpely BillPayRsp { ... }`: the second word is no step name, so
                    # binding it would only add a bogus E032; later reads of it stay quiet
                    scope[s.name.name] = Binding("step", pos=s.name.pos)
                return
            else:
                given: dict[str, ir.Pos] = {}
                suggested: set[str] = set()
                for a in s.assigns:
                    key = str(a.parts[0])
                    if spec.option(key) is None and not spec.open_options:   # a kind that declares none takes none
                        self.error("E043", f"unknown option `{key}` for step `{kind}`", a.pos,
                                   did_you_mean(key, spec.option_names)
                                   or ("options: " + ", ".join(spec.option_names) if spec.options
                                       else f"step `{kind}` takes no options"))
                        suggested.update(best_guess(key, spec.option_names))
                    given[key] = a.pos
                    self._expr(a.value, scope, later)
                for opt in spec.options:
                    if opt.required and opt.name not in given and opt.name not in suggested:
                        self.error("E044", f"step `{kind}` needs option `{opt.name}`", s.kind.pos,
                                   f"{opt.name}: {opt.doc}" if opt.doc else None)
                if kind == "limit":         # a running total (dsl/limits.py)
                    check_limit(self, s, r)
                elif kind == "continuity":  # a statement chain (dsl/continuity.py)
                    check_continuity(self, s, r)
                    for a in s.assigns:     # E135: its statement is no message of a format holding none
                        if a.parts == ("statement",):
                            check_statement_arg(f"`continuity {s.name.name if s.name else ''}`: statement",
                                                a.value, scope, self.res.formats, self.error)
                elif kind == "record":      # the route's own values kept with the deal (dsl/records.py)
                    check_record(self, s, scope)
                if spec.check is not None and not suggested:
                    self._run_step_check(spec, s)
            if s.name is not None:
                self._bind(s.name, Binding("step"), scope)

    def _run_step_check(self, spec, s: A.PluginStep) -> None:
        """A step kind's own check of its options (a list file, a threshold's range): E122 (or the ``code`` the
        error carries: E123) at the place each ``SpecError`` names (a line of a file the step reads), else at the option its message names."""
        from formats.component import StepDecl
        from formats.errors import SpecError
        given = {str(a.parts[0]): a for a in s.assigns}
        decl = StepDecl(
            kind=s.kind.name, name=s.name.name if s.name is not None else None,
            options={k: (a.value.value if isinstance(a.value, ir.Lit) else None) for k, a in given.items()},
            names={k: a.value.name for k, a in given.items() if isinstance(a.value, ir.Name)},
            exprs={k: a.value for k, a in given.items()},
            pos={k: (a.value.pos or a.pos) for k, a in given.items()},
            tables={n: t.path for n, t in self.res.tables.items()})
        try:
            errs = spec.check(decl) or []
        except SpecError as e:
            errs = [e]
        except Exception as e:  # noqa: BLE001 - a bug in the hook: report it, never crash the checker
            self.error("E122", f"step `{decl.kind}`: {hook_failure(self.registry, 'step', decl.kind, e)}", s.kind.pos)
            return
        for e in errs:
            text = getattr(e, "message", None) or str(e)
            pos = s.kind.pos
            if getattr(e, "path", None) and getattr(e, "line", None):
                pos = ir.Pos(str(e.path), e.line, e.col or 1)
            else:
                named = _option_named(text, decl.pos)
                pos = decl.pos.get(named) or pos
            # a kind may name a code of its own for a mistake of its own (the screen step's on_hit: E123)
            code = getattr(e, "code", None)
            code = code if isinstance(code, str) and len(code) == 4 and code[0] == "E" and code[1:].isdigit() \
                else "E122"
            self.error(code, f"step `{decl.kind}`: {text}", pos, getattr(e, "hint", None))

    def _assigns(self, assigns, scope, later, fmt: str | None, what: str, typed: bool = True,
                 at: ir.Pos | None = None) -> None:
        """A message body in format ``fmt``; ``typed``: it is encoded in that format (not an
        expectation), so each value must suit its record field (E074, E075) and the body must set
        the format's required fields (E076, reported at ``at``)."""
        known = self.res.format_fields.get(fmt) if fmt else None
        fields = self._typed_fields(fmt) if typed else {}
        decl = self.res.formats.get(fmt) if fmt else None
        seen: dict[str, ir.Pos] = {}
        # the literal texts the body sets (``block4[3].tag = "50K"``): what a classify step tag=50K picks
        literals = {tuple(a.parts): a.value.value for a in assigns
                    if isinstance(a.value, ir.Lit) and a.value.type == "string"}
        for a in assigns:
            top = str(a.parts[0])
            if a.path in seen:
                self.error("E037", f"`{a.path}` is set twice", a.pos, f"first set at {seen[a.path]}")
            seen[a.path] = a.pos
            if known is not None and top not in known:
                self.error("E061", f"format `{fmt}` has no field `{top}`", _name_pos(a),
                           did_you_mean(top, known) or "fields: " + ", ".join(known))
            elif typed and fmt:
                self._body_line(a, fmt)
            before = self._errors()
            t = self._expr(a.value, scope, later)
            if typed and fmt and self._errors() == before:
                self._body_flow(a, scope, fmt, what, literals)
            if len(a.parts) == 1 and top in fields:
                Typer(self.error, lambda x: None).assign(fields[top], fmt, decl.kind == "fixed", a.value, t,
                                                          a.value.pos or a.pos)
            elif typed and fmt and len(a.parts) == 1 and t in (DATE, TIMESTAMP) \
                    and self._field_kinds(fmt).get(top) in NUMERIC:
                # a copybook's PIC 9 (the kind's field_types hook): its encoder takes a number, never a date
                self.error("E074", f"field `{top}` of format `{fmt}` is a number ({self._field_kinds(fmt)[top]}): "
                           f"it cannot take {desc(t)} ({show(a.value)})", a.value.pos or a.pos,
                           f"send the number the host reads, e.g. `{top} = number(format_date({show(a.value)}, "
                           f"\"%Y%m%d\"))` for a PIC 9(8) date")
        if typed and fmt and what == "call":
            self._left_out(assigns, fmt, at or (assigns[0].pos if assigns else None))
        required = self.res.format_required.get(fmt) if typed and fmt else None
        missing = [r for r in required or () if r not in {str(a.parts[0]) for a in assigns}]
        if missing:
            shown = ", ".join(f"`{m}`" for m in missing)
            self.error("E076", f"the {what} body in format `{fmt}` does not set {shown}: its schema requires "
                       f"{'it' if len(missing) == 1 else 'them'}", at or (assigns[0].pos if assigns else None),
                       "set " + " ".join(f"{m} = ..." for m in missing) + " (every message is validated "
                       "against the schema when it is sent)")

    def _body_line(self, a: A.AssignAst, fmt: str) -> None:
        """E061 / E112 from the format kind's ``body_check`` hook (a copybook's field tree): a path naming
        no field at any depth, a literal its field cannot hold.  An expression's value is not checked."""
        check = self._body_checker(fmt)
        if check is None:
            return
        lit = a.value if isinstance(a.value, ir.Lit) and a.value.type in _BODY_LITERALS else None
        try:
            got = check(tuple(a.parts), lit.value) if lit is not None else check(tuple(a.parts))
        except Exception:   # noqa: BLE001 - a hook that cannot tell says nothing
            return
        if got is None:
            return
        if got.kind == "unknown":
            self.error("E061", f"format `{fmt}`: {got.message}", _path_pos(a), got.hint)
        else:
            at = lit.pos if lit is not None and got.kind == "misfit" else None
            self.error("E112", f"format `{fmt}`: {got.message}", at or _path_pos(a), got.hint)

    def _left_out(self, assigns, fmt: str, at) -> None:
        """W015: a call body in a copybook format that leaves out a PIC X or DISPLAY-number field (the
        hook's ``missing``, formats/copybook/bodymissing.py): the host gets LOW-VALUES or spaces there."""
        check = self._body_checker(fmt)
        find = getattr(check, "missing", None)
        if find is None:
            return
        try:
            left = find([tuple(a.parts) for a in assigns])
        except Exception:   # noqa: BLE001 - a hook that cannot tell says nothing
            return
        if not left:
            return
        shown = left[:6]
        names = ", ".join(f"`{x.path}` ({x.picture})" for x in shown) + (
            f" and {len(left) - len(shown)} more" if len(left) > len(shown) else "")
        written = [w for w in ("LOW-VALUES", "spaces") if any(x.written == w for x in left)]
        first = left[0]
        numeric = any(x.numeric for x in left)
        self.warn("W015", f"the call body in copybook format `{fmt}` leaves out {names}: the host gets "
                  f"{' or '.join(written)} there" + ("; spaces in a DISPLAY number (PIC 9) make the host "
                                                      "program abend (S0C7) or misread it" if numeric else ""), at,
                  _left_out_help(first.path if ".." not in first.path else "FIELD", first.written,
                                 any(not x.numeric for x in left), numeric))

    def _body_checker(self, fmt: str):
        cache = self.__dict__.setdefault("_body_checks", {})
        if fmt not in cache:
            decl = self.res.formats.get(fmt)
            spec = self.registry.get("format", decl.kind) if decl is not None else None
            hook = getattr(spec, "body_check", None) if spec is not None else None
            cache[fmt] = None
            if hook is not None and decl.pos is not None:
                try:
                    cache[fmt] = _call_hook(hook, decl, _base_dir(decl.pos))
                except Exception:   # noqa: BLE001 - a hook that cannot tell leaves the body unchecked
                    pass
        return cache[fmt]

    # ------------------------------------------------------------ classified values (W006)
    def _flow(self, scope: dict[str, Binding]) -> Flow:
        def root(name: str) -> Any:
            b = scope.get(name)
            if b is None:
                return None
            if b.kind == "let":
                return list(b.classified)
            if b.kind in ("msg", "call") and b.format:
                return b.format, self.format_tags.get(b.format)
            return None

        def numeric(e: ir.Expr) -> bool:
            return Typer(lambda *a: None, lambda x: self._ref_type(x, scope)).infer(e) in NUMERIC

        def named(name: str) -> tuple:
            b = scope.get(name)
            return b.classified if b is not None and b.kind == "call" else ()
        return Flow(root, numeric, named)

    def _sources(self, e: ir.Expr, scope) -> list[Source]:
        """The classified values ``e`` carries, one per place it reads them (a let holding either of
        two classified fields, ``coalesce(a.iban, a.other)``, is one source naming both)."""
        out: dict[tuple, Source] = {}
        for s in self._flow(scope).sources(e):
            k = (s.pos, s.tag, s.fmt, s.rest)
            first = out.get(k)
            if first is None:
                out[k] = s
            elif s.origin not in first.what:
                out[k] = replace(first, what=first.what.replace(first.origin, f"{first.origin} or {s.origin}", 1),
                                 origin=f"{first.origin} or {s.origin}")
        return list(out.values())

    def _body_flow(self, a: A.AssignAst, scope, fmt: str, what: str, literals: dict | None = None) -> None:
        """W006: a classified value copied into a field of ``fmt`` that does not protect it as well."""
        tags = self.format_tags.get(fmt)
        if tags is None:
            return
        path = tuple(p for p in a.parts if isinstance(p, str))
        for src in self._sources(a.value, scope):
            target = path + src.rest
            have = tag_at(target, tags)
            item = tag_at_item(tuple(a.parts) + src.rest, tags, (literals or {}).get)
            if item is not None:
                have = item if have is None else strictest([item, have])
            if protects(have, src.tag):
                continue
            field_ = ".".join(target)
            shown = "in clear" if have is None else f"masked as {have}, which shows more of it than {src.tag}"
            where = (f"the ledger stores the reply (deals.response) with the value {shown}" if what == "reply" else
                     f"what bsp keeps of the call's frames (captures, replay differences) is masked by the "
                     f"call's format, so the value may be kept {shown}")
            self.warn("W006", f"{self._src_text(src)} is copied into field `{field_}` of format `{fmt}`, which "
                      f"{'does not classify it' if have is None else f'classifies it only {have}'}: {where}",
                      src.pos or a.value.pos, self._flow_help(src, fmt, field_) + _NAMED_HELP * src.named)

    def _deal_flow(self, a: A.AssignAst, scope) -> None:
        name = str(a.parts[0])
        for src in self._sources(a.value, scope):
            help_ = "give the deal a value that is not classified (a reference of the message)"
            if src.tag == "pan":
                help_ += "; the card's BIN, substr(x, 0, 6), or its mask, mask_pan(x), are fine"
            help_ += _NAMED_HELP * src.named
            self.warn("W006", f"{self._src_text(src)} is copied into the deal's `{name}`, which the ledger "
                      f"stores as it is ({DEAL_COLUMNS[name]}): the value is kept in clear",
                      src.pos or a.value.pos, help_)

    @staticmethod
    def _src_text(src: Source) -> str:
        inside = f" (its field `{'.'.join(src.rest)}`)" if src.rest else ""
        return f"{src.what}{inside}, classified {src.tag} in format `{src.fmt}`,"

    def _flow_help(self, src: Source, fmt: str, field_: str) -> str:
        decl = self.res.formats.get(fmt)
        spec = self.registry.get("format", decl.kind) if decl is not None else None
        fd = next((f for f in decl.fields if f.name == field_), None) if decl is not None else None
        if fd is not None:
            size = f"({fd.width})" if fd.width else ""
            how = f"classify the field in format `{fmt}`: `{fd.name} {fd.type}{size} {src.tag}`"
        elif spec is not None and spec.option("classify") is not None:
            how = f"classify it in format `{fmt}`: `classify [\"{field_}:{src.tag}\"]` (add it to the list)"
        elif spec is not None and spec.accepts_fields:
            how = f"classify the field in format `{fmt}`: `{field_} string {src.tag}`"
        else:
            how = (f"classify field {field_} where format `{fmt}` ({decl.kind if decl else '?'}) declares its "
                   f"fields, e.g. `classification: {src.tag}` in its spec file")
        if src.tag == "pan":
            how += "; or copy only its mask: mask_pan(...)"
        elif src.tag == "secret":
            how += "; or do not copy a secret at all"
        return how

    # ------------------------------------------------------------ expressions
    def _expr(self, e: A.Expr, scope: dict[str, Binding], later, cond: bool = False) -> str | None:
        """Check an expression's names, then its types (dsl.types); returns its type (None: unknown).
        ``cond``: the expression is a condition (``when``, a rule, ``expect``)."""
        before = self._errors()
        self._walk(e, scope, later)
        if self._errors() != before:         # a name problem: its types would only repeat it
            return None
        typer = Typer(lambda c, m, p, h: (self.warn if c.startswith("W") else self.error)(c, m, p, h),
                      lambda x: self._ref_type(x, scope), lambda x: self._ref_zone(x, scope))
        return typer.condition(e) if cond else typer.infer(e)

    def _ref_zone(self, e: A.Expr, scope: dict[str, Binding]) -> bool | None:
        """Whether a record field read as a timestamp has a zone: its pattern reads one (``%z``) or not (a
        fixed-width or CSV time, zone-less); None for anything else."""
        if isinstance(e, A.Attr) and isinstance(e.base, A.Name):
            b = scope.get(e.base.name)
            if b is not None and b.kind in ("msg", "call") and b.format:
                fd = self._typed_fields(b.format).get(e.name)
                if fd is not None and field_type(fd) == TIMESTAMP:
                    return "%z" in (getattr(fd, "pattern", None) or "")
        return None

    def _ref_type(self, e: A.Expr, scope: dict[str, Binding]) -> str | None:
        """The type of a name or field read: a typed ``let``, a record field of msg or a call result."""
        if isinstance(e, A.Name):
            b = scope.get(e.name)
            return b.type if b is not None and b.kind == "let" else None
        if isinstance(e, A.Attr) and isinstance(e.base, A.Name):
            b = scope.get(e.base.name)
            if b is not None and b.kind in ("msg", "call") and b.format:
                return field_type(self._typed_fields(b.format).get(e.name))
        return None

    def _typed_fields(self, fmt: str | None) -> dict[str, ir.FieldDecl]:
        decl = self.res.formats.get(fmt) if fmt else None
        return dict(body_fields(decl.fields)) if decl is not None else {}

    def _walk(self, e: A.Expr, scope: dict[str, Binding], later) -> None:
        """Names, fields and calls of an expression and its parts (``_expr`` adds the types)."""
        if isinstance(e, A.Lit):
            return
        if isinstance(e, A.Name):
            self._name(e, scope, later)
        elif isinstance(e, A.Attr):
            self._attr(e, scope, later)
        elif isinstance(e, A.Index):
            self._walk(e.base, scope, later)
            self._walk(e.index, scope, later)
            if e.at is not None:
                self._walk(e.at, scope, later)
                self._as_of(e, scope)
        elif isinstance(e, A.Unary):
            self._walk(e.operand, scope, later)
        elif isinstance(e, A.Binary):
            self._walk(e.left, scope, later)
            if e.op in ("in", "not_in") and self._table_column(e.right, scope, e.op):
                return
            self._walk(e.right, scope, later)
        elif isinstance(e, A.Cond):
            for x in (e.test, e.then, e.otherwise):
                self._walk(x, scope, later)
        elif isinstance(e, A.ListExpr):
            for x in e.items:
                self._walk(x, scope, later)
        elif isinstance(e, A.Call):
            self._call(e, scope, later)

    def _as_of(self, e: A.Index, scope) -> None:
        """``T[KEY at DATE]``: T a table declared ``effective from`` (E148)."""
        b = e.base
        table = b.name if isinstance(b, A.Name) and scope.get(b.name, Binding("x")).kind == "table" else None
        if table is None and isinstance(b, A.Name) and b.name not in scope:
            return              # an unknown name: told already (E024 ...)
        decl = self.res.tables.get(table) if table is not None else None
        asof.check_index(e, table, decl.effective if decl is not None else None, decl is not None, self.error)

    def _table_column(self, e: A.Expr, scope, op: str) -> bool:
        """``x in billers.biller_id`` (a column, as SQL would have it): E065 saying ``x in billers``
        tests the key column. True when told."""
        if not (isinstance(e, A.Attr) and isinstance(e.base, A.Name)):
            return False
        b = scope.get(e.base.name)
        if b is None or b.kind != "table":
            return False
        t = e.base.name
        decl = self.res.tables.get(t)
        key = f" ({decl.key})" if decl is not None else ""
        word = "not in" if op == "not_in" else "in"
        self.error("E065", f"`{t}` is a table: `x {word} {t}` tests its key column{key}", e.pos,
                   f"write `... {word} {t}`: the table itself, no column; a cell of a row is read with "
                   f"`{t}[KEY].{e.name}`")
        return True

    def _name(self, e: A.Name, scope, later) -> bool:
        n = e.name
        if n in scope:
            if scope[n].kind == "table":
                self.used.add(n)
            return True
        if n in later:
            self.error("E025", f"`{n}` is used before its step", e.pos,
                       f"`{n}` is bound at {later[n]}; move this use after it")
        elif n == "msg":
            self.error("E026", "`msg` is not decoded yet", e.pos,
                       "add `as FORMAT` to `receive`, or a `decode as FORMAT` step before this")
        elif n == "error":
            self.error("E027", "`error` exists only inside `on error`", e.pos,
                       "use error.code, error.text and error.kind in an `on error` reply or block")
        elif n in self.decls:
            cat, node = self.decls[n]
            self.used.add(n)
            self.error("E021", f"`{n}` is a {cat}, not a value", e.pos,
                       f"declared at {node.name.pos}; only tables, msg, raw, error, lets and call "
                       f"results can be read in expressions")
        else:
            cands = list(scope) + list(ROOTS)
            hint = did_you_mean(n, cands) or "names in scope: " + ", ".join(sorted(scope))
            if n in _CHANNEL_VALUES:
                hint = f"{_CHANNEL_VALUES[n]}; {hint}"
            self.error("E024", f"unknown name `{n}`", e.pos, hint)
        return False

    def _attr(self, e: A.Attr, scope, later) -> None:
        base = e.base
        if isinstance(base, A.Name):
            if not self._name(base, scope, later):
                return
            b = scope[base.name]
            if b.kind == "table":
                self.error("E065", f"`{base.name}` is a table: read a row with `{base.name}[KEY].{e.name}`",
                           e.pos, f"or use lookup({base.name}, KEY, \"{e.name}\")")
                return
            if b.kind == "channel_value":
                known = self._provided_fields(b.channel, base.name)
                if known is not None and base.name == "file":
                    # the end-of-file message's (dsl.fileend): read on any file watch channel (W029 says
                    # when it sends none), listed where it does
                    known = known + tuple(f for f in END_FIELDS if f not in known)
                    chan_decl = self.res.channels.get(b.channel) if b.channel else None
                    if chan_decl is None or chan_decl.options.get("end_message") is not True:
                        known = known if e.name in known else known[:len(known) - len(END_FIELDS)]
                if known is not None and e.name not in known:
                    decl = self.res.channels.get(b.channel) if b.channel else None
                    gives = (f"channel `{b.channel}` ({decl.kind.replace('.', ' ')}) gives " if decl is not None
                             else "routes read ") + ", ".join(f"{base.name}.{k}" for k in known)
                    self.error("E060", f"`{base.name}` has no field `{e.name}`", e.pos,
                               "; ".join(filter(None, (did_you_mean(e.name, known), gives))))
                elif base.name == "peer" and e.name in CERT_FIELDS:
                    self._peer_without_cert(b.channel, e)
                return
            if b.kind == "error" and e.name not in ERROR_FIELDS:
                self.error("E060", f"`error` has no field `{e.name}`", e.pos,
                           did_you_mean(e.name, ERROR_FIELDS) or "error has " + ", ".join(ERROR_FIELDS))
                return
            if b.kind in ("msg", "call") and b.format:
                known = self.res.format_fields.get(b.format)
                if known is not None and e.name not in known:
                    self.error("E060", f"format `{b.format}` has no field `{e.name}`", e.pos,
                               did_you_mean(e.name, known) or "fields: " + ", ".join(known))
            return
        if isinstance(base, A.Attr) and base.name == "header" and isinstance(base.base, A.Name) \
                and scope.get(base.base.name, Binding("x")).kind == "channel_value" and base.base.name == "file":
            self._walk(base, scope, later)
            self._file_header_field(scope[base.base.name].channel, e)
            return
        if isinstance(base, A.Index) and isinstance(base.base, A.Name) \
                and scope.get(base.base.name, Binding("x")).kind == "table":
            self._walk(base, scope, later)
            cols = self.res.table_columns.get(base.base.name)
            if cols is not None and e.name not in cols:
                self.error("E062", f"table `{base.base.name}` has no column `{e.name}`", e.pos,
                           did_you_mean(e.name, cols) or "columns: " + ", ".join(cols))
            return
        self._walk(base, scope, later)

    def _call(self, e: A.Call, scope, later) -> None:
        sig = SIGNATURES.get(e.func)
        if sig is None:
            self.error("E070", f"unknown function `{e.func}`", e.pos,
                       did_you_mean(e.func, SIGNATURES) or "functions: " + ", ".join(sorted(SIGNATURES)))
            for a in e.args:
                self._walk(a, scope, later)
            return
        n = len(e.args)
        if n < sig.min_args or (sig.max_args is not None and n > sig.max_args):
            want = (f"{sig.min_args}" if sig.min_args == sig.max_args else
                    f"{sig.min_args} to {sig.max_args}" if sig.max_args is not None else
                    f"at least {sig.min_args}")
            self.error("E071", f"{e.func}() takes {want} argument{'' if sig.min_args == sig.max_args == 1 else 's'}, "
                       f"got {n}", e.pos, f"usage: {sig.usage(e.func)}")
        for i, a in enumerate(e.args):
            want = sig.types[i] if i < len(sig.types) else "any"
            if want in (calendars.CALENDAR, calendars.CUTOFF) and self._calendar_arg(e, want, a, scope, later):
                continue
            if want == "table":
                if isinstance(a, A.Name) and scope.get(a.name, Binding("x")).kind == "table":
                    self.used.add(a.name)
                    if i + 2 < len(e.args) + 1 and len(e.args) > 2 and isinstance(e.args[2], A.Lit) \
                            and e.args[2].type == "string":
                        cols = self.res.table_columns.get(a.name)
                        if cols is not None and e.args[2].value not in cols:
                            self.error("E062", f"table `{a.name}` has no column `{e.args[2].value}`",
                                       e.args[2].pos, did_you_mean(e.args[2].value, cols)
                                       or "columns: " + ", ".join(cols))
                    continue
                self.error("E072", f"{e.func}(): argument 1 must be a table name", a.pos,
                           f"usage: {sig.usage(e.func)}")
                continue
            if want == "call":
                self._call_arg(e, sig, a, scope, later)
                continue
            self._walk(a, scope, later)
            if i == 0 and e.func in ("statement_check", "statement_kind"):    # E135 (dsl/statement_args.py)
                check_statement_arg(f"{e.func}()", a, scope, self.res.formats, self.error)
            if i in sig.constant and not (isinstance(a, A.Lit) and a.type != "null"):
                self.error("E077", f"{e.func}(): argument {i + 1} ({sig.params[i]}) must be a string literal "
                           f"(\"...\"), not {'null' if isinstance(a, A.Lit) else show(a)}", a.pos,
                           f"write the {sig.params[i]} itself in quotes, e.g. env(\"BRANCH_CODE\"): a name a message "
                           f"gives could be any variable, a key or a token among them" if e.func == "env" else
                           f"write the {sig.params[i]} itself in quotes, e.g. matches(msg.ref, \"[A-Z]{{3}}\\\\d{{8}}\"): "
                           f"bsp check compiles and vets it, which it cannot do for a value known only when a "
                           f"message comes")
                continue
            if isinstance(a, A.Lit):
                ok = {"string": ("string",), "int": ("int",), "number": ("int", "decimal"),
                      "date": ("date", "timestamp"), "timestamp": ("timestamp",)}.get(want)
                if ok is not None and a.type not in ok and a.type != "null":
                    self.error("E072", f"{e.func}(): argument {i + 1} ({sig.params[i]}) must be "
                               f"{ {'string': 'a string', 'int': 'a whole number', 'number': 'a number', 'date': 'a date', 'timestamp': 'a timestamp'}[want]}, "
                               f"got {_lit_desc(a)}", a.pos, f"usage: {sig.usage(e.func)}")
                elif sig.literal is not None and i < len(sig.params):
                    problem = sig.literal(i, a.value)
                    if problem is None and e.func == "env" and i == 0:
                        problem = self._channel_secret_env(a.value)
                    if problem:
                        self.error(sig.literal_code, f"{e.func}(): argument {i + 1} ({sig.params[i]}) {problem}",
                                   a.pos, f"usage: {sig.usage(e.func)}" if sig.literal_code == "E072" else
                                   ENV_SECRET_HELP if sig.literal_code == "E151" else
                                   PATTERN_SYNTAX if problem.startswith("is not a valid") else PATTERN_HELP)

    def _channel_secret_env(self, name: Any) -> str | None:
        """Why ``env(name)`` reads a variable a channel of the program reads a secret from (an option
        ``..._env``, an http call header ``"Name:env:VARIABLE"``), or None (E151)."""
        for cat, node in self.decls.values():
            if not isinstance(node, A.ChannelAst):
                continue
            for o in node.options:
                lit = literal_of(o.value)
                values = lit[0] if lit is not None and isinstance(lit[0], list) else [lit[0]] if lit else []
                for v in values:
                    if not isinstance(v, str):
                        continue
                    if (o.key.name.endswith("_env") and v == name) or \
                            (o.key.name == "headers" and v.partition(":")[2] == f"env:{name}"):
                        return (f"names {name}, which channel {node.name.name} reads a secret from (option "
                                f"{o.key.name}): a route never reads it (its value would reach a reply, the "
                                f"ledger or a log)")
        return None

    def _calendar_arg(self, e: A.Call, want: str, a, scope, later) -> bool:
        """A calendar argument (E067, E068) or a cut-off literal (E069) of dsl/calendars.py's functions;
        False: check it as any other argument."""
        if want == calendars.CUTOFF:
            if isinstance(a, A.Lit) and a.type != "null":
                calendars.check_cutoff_literal(e.func, a, self.error)
                return True
            return False
        tables = [n for n, (c, _) in self.decls.items() if c == "table"]
        name = calendars.check_calendar_arg(
            e.func, a, lambda n: scope.get(n, Binding("x")).kind == "table", tables,
            lambda n: self.res.tables[n].path if n in self.res.tables else None, self.error)
        if name is not None:
            self.used.add(name)
            self._calendar_coverage(name)
            if name in self.res.tables:
                calendars.check_dated(e.func, a, self.res.tables[name], self.calendars_dated, self.error, self.warn)
        elif not isinstance(a, A.Name):
            self._walk(a, scope, later)
        return True

    def _calendar_coverage(self, name: str) -> None:
        """W020, once per calendar table, at its file in the declaration: it runs out (a year it does not list
        starts) within ``calendar_warn_days`` of today (the engine's clock, ``bsp run --at``'s day)."""
        if self.calendar_warn_days is None or name in self.calendars_seen or name not in self.res.tables:
            return
        self.calendars_seen.add(name)
        path = self.res.tables[name].path
        years = calendars.file_years(path)
        decl = self.decls.get(name, (None, None))[1]
        if not years or not isinstance(decl, A.TableAst):
            return
        from dsl.clock import now
        said = calendars.coverage_warning(name, path, years, now().astimezone().date(), self.calendar_warn_days)
        if said is not None:
            self.warn("W020", said[0], decl.path_pos, said[1])

    def _call_arg(self, e: A.Call, sig, a, scope, later) -> None:
        """``http_status(NAME)``: NAME is a call result whose channel answers with a status."""
        if not isinstance(a, A.Name) or (a.name in scope and scope[a.name].kind != "call"):
            calls = sorted(n for n, b in scope.items() if b.kind == "call")
            self.error("E072", f"{e.func}(): the argument must be the name of a `call` step", a.pos,
                       f"usage: {sig.usage(e.func)}" + (f"; calls in scope: {', '.join(calls)}" if calls else ""))
            return
        if not self._name(a, scope, later):
            return
        chan = scope[a.name].channel
        decl = self.decls.get(chan) if chan else None
        if decl is not None and decl[0] == "channel" and "http" not in decl[1].kind_name:
            kind = decl[1].kind_name.replace(".", " ")
            self.error("E072", f"{e.func}(): call `{a.name}` goes to channel `{chan}` ({kind}), which answers "
                       f"without an HTTP status", a.pos, "only an http call channel's answers have a status")

    # ------------------------------------------------------------ unused
    def _unused(self) -> None:
        # a declaration suggested by a "did you mean" is probably meant to be used: no noise
        suggested = set()
        for d in self.diags:
            if d.is_error and d.help and d.help.startswith("did you mean"):
                suggested.update(re.findall(r"`([^`]+)`", d.help))
        # a file that declares formats and nothing else, and that no `use` includes, is a layout library for the
        # tools that read files through a declared format (`bsp decode/encode --route F --name N`, `bsp reconcile
        # --type totals --route F`): its formats are there to be named on a command line, not by a route
        other = {node.name.pos.file for cat, node in self.decls.values() if cat != "format"}
        other |= {r.pos.file for r in self.routes.values()} | {t.pos.file for t in self.tests} | set(self.included)
        for name, (cat, node) in self.decls.items():
            if name in self.used or name in suggested:
                continue
            if cat == "format" and node.name.pos.file not in other:
                continue
            code = {"format": "W001", "table": "W002", "channel": "W003"}[cat]
            self.warn(code, f"{cat} `{name}` is never used", node.name.pos,
                      "remove it, or use it in a route")


ENV_SECRET_HELP = ("give the route its setting in a variable of its own (env(\"BRANCH_CODE\")); a key or a token "
                   "stays with the engine, which scrubs it from every log line")
PATTERN_HELP = ("matches() takes a pattern bsp can run safely: no backreference, lookahead or lookbehind, no "
                "repeat or `|` inside a repeated part, repeats of known length ({1,35} rather than +) beyond two, "
                "a long fixed part before varying repeats rather than after them; "
                "docs/language.md#regular-expressions")
PATTERN_SYNTAX = ("the pattern is Python's regular expression syntax (re); the position counts characters of the "
                  "pattern as the route string reads it (\\\\ is one); docs/language.md#regular-expressions")


def _lit_desc(a: A.Lit) -> str:
    if a.type == "string":
        return f'the string "{a.value}"'
    if a.type in ("date", "timestamp"):
        return f"the {a.type} {show(a)}"
    return f"{a.type} {a.value}"


def _left_out_help(path: str, written: str, text: bool, numeric: bool) -> str:
    """W015's help: how to send a field empty on purpose (``null`` keeps today's bytes: tested)."""
    out = f"set each field the host reads; to send one empty on purpose, say so: `{path} = null` sends " \
          f"the bytes sent now ({written})"
    if text:
        out += ', `= ""` writes spaces into a PIC X field'
    if numeric:
        out += ", `= 0` writes zeros into a PIC 9 field"
    return out


def lower_assigns(assigns) -> tuple[ir.Assign, ...]:
    return tuple(ir.Assign(a.path, a.value, pos=a.pos) for a in assigns)
