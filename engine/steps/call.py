"""``call NAME = CHANNEL as FORMAT reply FORMAT { ... } expect EXPR``: ask a counterpart.

Works on a whole batch: every request of the batch is encoded, sent with one
``request_many`` (one write on the channel's persistent connection), and each
reply is decoded and bound to NAME in its own exchange.
"""
from __future__ import annotations

from typing import Any

import orjson

from dsl.eval_error import InputError
from engine.channels.base import ChannelError
from engine.channels.file_names import NameValues, problem, shown_values, text_of
from engine.runtime.exchange import StepFailure
from engine.runtime.stepfail import input_failure
from engine.steps.call_results import contract_problem, fail_in_doubt, label_for
from engine.steps.base import where as where_of
from engine.txn.approval import approves
from formats.classify import mask_digit_runs, safe_error_text, tags_of
from formats.component import ComponentSpec, OptionSpec
from formats.errors import FormatError
from formats.mac import MacError


class Answer(dict):
    """A decoded answer over HTTP: the values, and what ``http_status(NAME)`` and
    ``http_header(NAME, "name")`` read."""

    __slots__ = ("http_status", "http_headers")


def refusal_code(iso: bool, answer: Any) -> str | None:
    """The code of a call the counterpart refused (its ``expect`` false): an ISO 8583 answer's own DE 39 when it
    carries one that is not an approval (``25`` unable to locate the original, ``51`` insufficient funds), so
    that ``error.code`` and the deal's ``response_code`` are the host's code, the one an ISO 8583 route passes
    to its front end; None otherwise (the engine's ``05``)."""
    if not iso or not isinstance(answer, dict):
        return None
    code = answer.get("39")
    code = str(code).strip() if code is not None else ""
    return code if code and not approves(code) else None


class CallStep:
    batch = True
    # a call of a route whose `when` reads file.end (set by ``BoundRoute``): on a retry of a failed end message,
    # the calls that went through before are not made again (engine/channels/file_end_calls.py)
    end_route = False

    def __init__(self, step: Any, ctx: Any, route: Any) -> None:
        o = step.options
        self.where = where_of(step)
        self.name = step.name or o["channel"]
        # the scope name its answer is bound to (and its ``expect`` reads): a compensation's is its call's
        # name (``engine.txn.plan``), so ``expect d.status == "OK"`` judges the cancel's own answer
        self.answer_as = self.name
        self.channel_name = o["channel"]
        self.channel = ctx.channel(o["channel"])
        self.channel_label, self.plugin_channel = label_for(ctx, o["channel"])
        self.faults = getattr(ctx, "faults", None)      # the engine's log of repeated faults (call_results.py)
        note = getattr(ctx, "codec_note", None)
        self.codec_note = note(o.get("format")) if note is not None else ""
        if not hasattr(self.channel, "request_many"):
            raise ValueError(f"{self.where}: call {self.name}: channel {o['channel']} cannot make calls "
                             f"(it is a {type(self.channel).__name__}); use a tcp.connect or memory channel")
        self.format = o.get("format")
        self.codec = ctx.codec(self.format)
        # without `reply FORMAT` the answer is read in the request format, as `bsp check` types it
        # (docs/language.md); a channel that makes its own JSON answer (file write, a JetStream ack)
        # is read as that JSON, whatever the request was written in
        self.reply_format = o.get("reply_format")
        self.own_answer = self.reply_format is None and getattr(self.channel, "answers_json", False)
        if self.reply_format is None and not self.own_answer:
            self.reply_format = self.format
        self.reply_codec = ctx.codec(self.reply_format)
        # an ISO 8583 answer: a refusal takes its DE 39 as its code (``refusal_code``)
        self.iso_reply = type(self.reply_codec).__module__.startswith("formats.iso8583")
        bind = getattr(self.channel, "bind_formats", None)
        if bind is not None:      # a MUX channel reads its match keys with the call's formats
            self.codec, self.reply_codec = bind(ctx, self.format, self.reply_format, self.codec, self.reply_codec)
        self.build_values = ctx.assigns(o.get("fields", ()))
        self.expect = ctx.expr(o["expect"]) if o.get("expect") is not None else None
        self.expect_text = _expr_text(o.get("expect"))
        t = o.get("timeout")
        self.timeout = float(t) if t is not None else None
        # `name { ref = msg.ref }`: the values of a file write channel's {word} name fields, per deal
        names = o.get("names")
        self.name_values = ctx.assigns(names) if names else None
        self.name_tags = dict(o.get("name_tags") or {})
        self.name_places = {a.path: str(a.pos) for a in names or () if getattr(a, "pos", None) is not None}
        decl = getattr(ctx, "program", None)
        decl = decl.channels.get(o["channel"]) if decl is not None else None
        pattern = decl.options.get("name") if decl is not None else None
        self.name_pattern = pattern if isinstance(pattern, str) else None

    async def run_batch(self, exs: list[Any]) -> None:
        if self.end_route:
            from engine.channels.file_end_calls import answered_before

            exs = [ex for ex in exs if not answered_before(ex, self)]
        payloads: list[bytes] = []
        sent: list[Any] = []
        names: list[NameValues] = []
        for ex in exs:
            try:
                if self.name_values is not None:
                    nv = self._names(ex)          # before anything is built or sent
                values = self.build_values(ex.scope)
                payloads.append(self._encode(values))
                sent.append(ex)
                if self.name_values is not None:
                    names.append(nv)
            except StepFailure as f:
                ex.fail(f)
            except InputError as exc:      # a request's value of the wrong shape: nothing sent, the sender's
                ex.fail(input_failure(exc, self.where))
            except Exception as exc:
                failure = StepFailure("internal", f"call {self.name}: {exc}", where=self.where)
                failure.__cause__ = exc          # its type, place and traceback for the log
                ex.fail(failure)
        if not sent:
            return
        try:
            if getattr(self.channel, "takes_keys", False):   # e.g. nats.publish: the deal reference is the message id
                results = await self.channel.request_many(payloads, self.timeout,
                                                          keys=[ex.reference for ex in sent])
            elif self.name_values is not None:               # a file write's name from the deal's values
                results = await self.channel.request_many(payloads, self.timeout, names=names)
            else:
                results = await self.channel.request_many(payloads, self.timeout)
        except Exception as exc:         # a bug in the channel: the requests may have left (call_results.py)
            fail_in_doubt(self.name, self.channel_label, f"raised {type(exc).__name__}: {exc}", sent, self.where, exc,
                          faults=self.faults)
            return
        broken = contract_problem(results, len(sent), self.plugin_channel)
        if broken is not None:
            fail_in_doubt(self.name, self.channel_label, broken, sent, self.where, faults=self.faults)
            return
        decode = self.reply_codec.decode if self.reply_codec is not None else (orjson.loads if self.own_answer
                                                                               else None)
        name, expect, answer_as = self.name, self.expect, self.answer_as
        for ex, res in zip(sent, results):
            if isinstance(res, ChannelError):
                ex.fail(StepFailure(res.kind, f"call {name}: {res}", where=self.where,
                                    in_doubt=res.kind == "unauthenticated"))     # it was answered: done or not?
                continue
            raw = res
            status = getattr(res, "http_status", None)        # an http.call answer
            if decode is not None:
                try:
                    res = {} if status is not None and not res else decode(res)     # 204: no body
                except MacError as exc:      # a forged or altered answer is never used
                    ex.fail(StepFailure("unauthenticated", f"call {name}: the reply from {self.channel_name} "
                                        f"is not authentic ({self.reply_format}): {exc}", where=self.where,
                                        in_doubt=True))
                    continue
                except FormatError as exc:
                    text = mask_digit_runs(safe_error_text(exc, tags_of(self.reply_codec), raw=raw))   # quotes its bytes
                    ex.fail(StepFailure("failed", f"call {name}: the reply from {self.channel_name} "
                                        f"is not valid {self.reply_format}: {text}", where=self.where))
                    continue
                if status is not None and isinstance(res, dict):
                    headers = getattr(raw, "http_headers", None)
                    res = Answer(res)
                    res.http_status = status
                    res.http_headers = headers if isinstance(headers, dict) else {}
            ex.scope[answer_as] = res
            if expect is not None:
                try:
                    ok = expect(ex.scope)
                except Exception as exc:
                    # the route's own expression failed, not the counterpart: never `refused` (05, "refused by
                    # counterpart"); an internal error (96) that names the expression's place and why
                    failure = StepFailure("internal", self._unevaluated(exc), where=self.where)
                    failure.__cause__ = exc      # its type, place and traceback for the log
                    ex.fail(failure)
                    continue
                if not ok:
                    code = refusal_code(self.iso_reply, res)
                    said = f" with DE 39 {code}" if code is not None else ""
                    ex.fail(StepFailure("refused", f"call {name}: {self.channel_name} refused{said} "
                                        f"(expect {self.expect_text} is false)", where=self.where, code=code))

    def _unevaluated(self, exc: Exception) -> str:
        """``call post: its expect at bp.route:82:14 could not be evaluated on the answer of biller: number:
        'OK' is not a number; ...``: the answer came, the route's own expression failed on it (the place of
        the part that failed, when it is not the expect's own)."""
        pos = getattr(exc, "pos", None)
        why = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        if pos is not None and f"at {pos}" != self.expect_text:
            why = f"{why} (at {pos})"
        return (f"call {self.name}: its expect {self.expect_text} could not be evaluated on the answer of "
                f"{self.channel_name}: {why}; the counterpart answered, the expression failed on its answer: "
                f"fix the expression")

    def _names(self, ex: Any) -> NameValues:
        """The deal's values for the file name (``name { ... }``), each checked as a piece of one file
        name in the channel's ``dir``: a bad one fails the deal (kind ``failed``, nothing sent) with the
        reason naming the channel, the field and where its value is written; classified values are
        masked in it (``NameValues.shown``)."""
        raw = self.name_values(ex.scope)            # an expression that fails: its own error
        texts: dict[str, str] = {}
        bad: list[tuple[str, str]] = []
        for f, v in raw.items():
            t = text_of(v)
            if t is None:
                bad.append((f, f"is {'null' if v is None else type(v).__name__}, not a text or a number"))
                t = ""
            texts[f] = t
        known = ex.classified() if hasattr(ex, "classified") else {}
        nv = NameValues(texts, shown_values(texts, self.name_tags, known), self.name_places)
        if bad:
            f, why = bad[0]
            reason = f"channel {self.channel_name}: file name value {{{f}}} {why}; nothing was written"
        else:
            found = problem(self.name_pattern, nv, self.channel_name) if self.name_pattern else None
            if found is None:
                return nv
            f, reason = found
        place = self.name_places.get(f) if f is not None else None
        raise StepFailure("failed", f"call {self.name}: {reason}"
                          + (f" (name {{ {f} = ... }} at {place})" if place else ""), where=self.where)

    def _encode(self, values: Any) -> bytes:
        if self.codec is None:
            if isinstance(values, dict) and set(values) == {"body"}:
                values = values["body"]
            if isinstance(values, str):
                return values.encode("utf-8")
            if isinstance(values, (bytes, bytearray)):
                return bytes(values)
            raise StepFailure("internal", f"call {self.name}: without a format the request must be "
                              f"`{{ body = <bytes or text> }}`", where=self.where)
        try:
            return self.codec.encode(values)
        except FormatError as exc:
            raise StepFailure("internal", f"call {self.name}: cannot encode {self.format}: "
                              f"{safe_error_text(exc, tags_of(self.codec), values)}", where=self.where) from exc
        except Exception as exc:
            if not self.codec_note:
                raise
            raise StepFailure("internal", f"call {self.name}: encode of {self.format} raised {type(exc).__name__}: "
                              f"{exc}{self.codec_note}", where=self.where) from exc


def _expr_text(expr: Any) -> str:
    if expr is None:
        return ""
    pos = getattr(expr, "pos", None)
    return f"at {pos}" if pos is not None else type(expr).__name__


COMPONENT = ComponentSpec(
    category="step",
    name="call",
    doc=(
        "Send a request to a counterpart channel and bind its decoded reply to NAME. The requests "
        "of a batch leave in one write on the channel's persistent connection. No reply in time "
        "(`timeout`), an unreachable counterpart or a broken connection fail the deal (kinds "
        "`timeout`, `unreachable`, `lost`); `expect` false fails it with kind `refused`; an `expect` that cannot be "
        "evaluated on the answer (an expression error) fails it with kind `internal` (96), naming the expression's place and why."
    ),
    options=(
        OptionSpec("channel", "channel", "The counterpart channel (tcp.connect, memory).", required=True),
        OptionSpec("format", "format", "Format of the request."),
        OptionSpec("reply_format", "format", "Format of the reply (none: the request's format; a "
                   "file write's or JetStream publish's own JSON answer is read as JSON)."),
        OptionSpec("fields", "list", "The request's fields."),
        OptionSpec("expect", "expr", "Must be true of the reply, else the deal fails (kind refused; kind "
                   "internal when it cannot be evaluated)."),
        OptionSpec("timeout", "duration", "Time to wait for the reply (default: the channel's)."),
    ),
    build=CallStep,
    examples=(
        'call post = biller as BillerPost reply BillerAck {\n'
        '    amount    = msg.amount\n'
        '    reference = msg.trace_no\n'
        '} expect post.status == "OK"',
    ),
)
