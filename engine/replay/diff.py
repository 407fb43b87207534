"""Recorded vs produced, field by field, through the declared formats.

For each replayed exchange: the reply, each outbound call's request (paired with
the recorded call whose answer it got: the same identity, engine/replay/pairing.py;
the others by channel and order), the deal: its status, and (from captures that store
them, ``engine.replay.dealrow``) its type, route, ref, amount, currency, party
and response code, and (from captures that store them, ``engine.replay.deadrow``) the
dead letters it wrote: one written on one side only, or with another kind, code, route or reason.  Frames are decoded with the
candidate's formats (``FormatGuide``); fields are compared by their dotted
path.  A frame no declared format decodes is compared as bytes.  With a masked
capture, produced values are masked the same way before comparing.

The MAC field of a format with message MACs on (ISO 8583 ``mac_algorithm``: the
codec's ``mac_fields()``) is not compared when both frames carry it: a MAC
differs whenever any other field does, and the codec verified it on decode and
computed it on encode.  ``DiffResult.mac_fields`` says which were left out.
A recorded frame stored without its bytes (``--mask``) is not compared and is
counted in ``DiffResult.unstored``.

UUIDs are volatile by default: ``uuid()`` gives a new one each run, so two values that differ only
in UUIDs (``8-4-4-4-12`` hex digits, alone or inside a text: ``REQ-<uuid>``) are not a difference;
they are counted in ``DiffResult.uuids`` (``Differ(uuids=False)``, ``--compare-uuids``: compared).  A
UUID the request carries is replayed as recorded, so it never differs this way.  A profile's rules
are applied first.

The values a difference shows (terminal, ``--json``, ``--html``) are masked as the
ledger masks them: a field its format classifies (``pan``, ``secret``,
``personal``), and a classified value of the exchange's request wherever it
travels (inside a longer text too), even when the capture was recorded without ``--mask`` (the report goes
to CI logs and change requests).  A bytes difference masks runs of 12 or more
digits.  Values that differ only in masked characters say so.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

from engine.replay.guide import FormatGuide, filler, fit_mask
from engine.replay.profile import Profile
from engine.replay.dealrow import FIELDS as DEAL_FIELDS, masked as deal_masked, load as load_deal, \
    values as deal_values
from engine.replay.deadrow import FIELDS as DEAD_FIELDS, load as load_dead, values as dead_values
from engine.replay.origin import load_names
from formats.classify import classified_values, mask, mask_digit_runs, mask_known, mask_text, tags_of

MISSING = "<none>"
UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def uuids_only(a: Any, b: Any) -> bool:
    """Two texts that differ, and only in UUIDs (what ``uuid()`` makes anew each run)."""
    if not isinstance(a, str) or not isinstance(b, str) or a == b or a == MISSING or b == MISSING:
        return False
    return UUID_TEXT.search(a) is not None and UUID_TEXT.sub("-", a) == UUID_TEXT.sub("-", b)


@dataclass
class Difference:
    exchange: int
    key: str | None
    channel: str
    what: str                   # reply, call, deal, dead letter
    field: str
    recorded: Any
    produced: Any
    call_seq: int | None = None
    expected_by: str | None = None      # the profile rule that expects it
    title: str | None = None            # what the field is, where its format names it (ISO 8583: DE 38's name)

    @property
    def unexpected(self) -> bool:
        return self.expected_by is None

    def place(self) -> str:
        return f"{self.what} {self.channel}" + (f" #{self.call_seq}" if self.call_seq is not None else "")


@dataclass
class DiffResult:
    """What the report needs of a replay's comparison: the counts, the differences (up to ``keep`` of them, in
    replay order: ``dropped`` counts those past it) and the tallies per place (exact whatever ``keep``)."""
    exchanges: int = 0
    identical: int = 0
    differences: list[Difference] = field(default_factory=list)
    ignored: int = 0
    unstored: int = 0                  # recorded frames without bytes: not compared
    uuids: int = 0                     # differences only in UUIDs (uuid()): volatile, not counted
    mac_fields: dict[str, set[str]] = field(default_factory=dict)      # format -> MAC fields not compared
    unused_rules: list[Any] = field(default_factory=list)   # profile rules that matched no difference
    keep: int | None = None            # differences kept with their details (None: all)
    dropped: int = 0                   # differences counted but not kept (past ``keep``)
    unexpected_count: int = 0
    expected_count: int = 0
    watch: Any = field(default=None, repr=False)     # called with each difference added (kept or not)
    _places: dict[tuple[str, str, str, str | None], dict[str, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        given, self.differences = self.differences, []      # differences given (built by hand): tallied
        for d in given:
            self.add(d)

    def add(self, d: Difference) -> None:
        if d.unexpected:
            self.unexpected_count += 1
        else:
            self.expected_count += 1
        k = (d.what, d.channel, d.field, d.expected_by)     # one group per expect rule: each says how many
        g = self._places.get(k)
        if g is None:
            g = self._places[k] = {"what": d.what, "channel": d.channel, "field": d.field, "count": 0,
                                   "unexpected": d.unexpected, "expected_by": d.expected_by, "example": d}
        g["count"] += 1
        if self.watch is not None:
            self.watch(d)
        if self.keep is None or len(self.differences) < self.keep:
            self.differences.append(d)
        else:
            self.dropped += 1

    @property
    def total(self) -> int:
        """All the differences counted (kept or not)."""
        return self.unexpected_count + self.expected_count

    @property
    def unexpected(self) -> list[Difference]:
        """The unexpected differences kept (``unexpected_count``: all of them)."""
        return [d for d in self.differences if d.unexpected]

    @property
    def expected(self) -> list[Difference]:
        return [d for d in self.differences if not d.unexpected]

    def groups(self) -> list[dict[str, Any]]:
        return sorted(self._places.values(), key=lambda g: (-g["count"], g["what"], g["channel"], g["field"]))


def flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(values, dict):
        if not values and prefix:
            out[prefix] = {}
        for k, v in values.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(values, (list, tuple)):
        if not values and prefix:
            out[prefix] = []
        for i, v in enumerate(values):
            out.update(flatten(v, f"{prefix}[{i}]"))
    else:
        out[prefix or "(value)"] = values
    return out


def same(a: Any, b: Any) -> bool:
    if isinstance(a, (Decimal, int)) and isinstance(b, (Decimal, int)) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        return Decimal(a) == Decimal(b)
    return type(a) is type(b) and a == b


def _without_fillers(known: dict[str, str], values: Any, codec: Any) -> dict[str, str]:
    """``known`` without the values a masked capture holds as fillers (a field whose mask did not fit: an
    expiry date as ``0001``, a PIN block as ``FFFF...``): they carry nothing of a classified value, and masking
    them where a candidate's text holds the same digits (a reference ``TX0000000001``) made differences."""
    fill = getattr(codec, "mask_filler", None)
    if not callable(fill) or not isinstance(values, dict):
        return known
    fillers = {str(v) for k, v in values.items()
               if isinstance(v, (str, int)) and not isinstance(v, bool) and fill(str(k), v) == str(v)}
    return {t: tag for t, tag in known.items() if t not in fillers}


class Differ:
    def __init__(self, guide: FormatGuide, profile: Profile, *, masked: bool = False, uuids: bool = True) -> None:
        """``uuids``: values that differ only in UUIDs are volatile (counted in ``uuids``, not differences)."""
        self.guide = guide
        self.profile = profile
        self.masked = masked
        self.uuids_volatile = uuids
        self._rec: Any = None
        self._known: dict[str, str] | None = None
        self._used: set[Any] = set()            # profile rules that matched a difference

    def run(self, replayed: Iterable[Any], keep: int | None = None) -> DiffResult:
        res = DiffResult(keep=keep)
        for r in replayed:
            self.feed(r, res)
        return self.finish(res)

    def feed(self, r: Any, res: DiffResult) -> int:
        """Compare one replayed exchange into ``res``; the differences it had."""
        res.exchanges += 1
        before = res.total
        self.exchange(r.recorded, r.produced, res)
        if res.total == before:
            res.identical += 1
        return res.total - before

    def finish(self, res: DiffResult) -> DiffResult:
        res.unused_rules = [r for r in self.profile.rules if r not in self._used]
        return res

    # ------------------------------------------------------------------
    def exchange(self, rec: Any, prod: Any, res: DiffResult) -> None:
        ctx = (rec.exchange, rec.key)
        ch = rec.request.channel
        self._rec, self._known = rec, None
        self._frames(ctx, ch, "reply", None, ("inbound", "out"),
                     rec.reply.raw if rec.reply is not None else None, prod.reply,
                     rec.reply is not None, prod.reply is not None, res)
        self._status(ctx, ch, getattr(rec.request, "status", None), prod.extra.get("http_status"), res)
        rec_calls: dict[str, list[Any]] = {}
        for c in rec.calls:
            rec_calls.setdefault(c.channel, []).append(c)
        prod_calls: dict[str, list[Any]] = {}
        for c in prod.calls:
            prod_calls.setdefault(c.channel, []).append(c)
        for channel in sorted(set(rec_calls) | set(prod_calls)):
            for i, ca, cb in pair_calls(rec_calls.get(channel, []), prod_calls.get(channel, [])):
                ra = ca.request.raw if ca is not None else None
                pb = cb.request if cb is not None else None
                self._frames(ctx, channel, "call", i, ("outbound", "out"), ra, pb, ca is not None, cb is not None,
                             res)
                if ca is not None and cb is not None:
                    self._names(ctx, channel, i, load_names(getattr(ca.request, "names", None)),
                                getattr(cb, "names", None), res)
        rs = rec.request.deal_status
        ps = getattr(prod.deal, "status", None)
        if rs is not None and rs != ps:
            self._add(res, ctx, ch, "deal", "status", rs, ps if ps is not None else MISSING, None)
        self._deal(ctx, ch, load_deal(getattr(rec.request, "deal", None)), prod.deal, res)
        self._dead(ctx, ch, load_dead(getattr(rec.request, "dead_letters", None)), prod.dead_letters, res)

    def _dead(self, ctx: tuple, channel: str, rec: list[dict[str, Any]] | None, prod: list[Any],
              res: DiffResult) -> None:
        """The dead letters the exchange wrote, recorded vs produced (``dead letter CHANNEL``): one written on
        one side only is ``(stored)``; both written, their ``kind``, ``code``, ``route`` and ``reason``.  With
        more than one, they are paired in order and numbered (``#1``).  Not compared for a capture recorded
        without them (``frames.dead_letters`` NULL); a recorded letter without a code (of a capture made before
        2026-11-28, when a letter had a code only if its exchange was answered) is not compared by its code."""
        if rec is None:
            return
        known = self._request_known() if self._rec.request.raw is not None else {}
        got = [dead_values(dl, known if self.masked else None) for dl in prod]
        n = max(len(rec), len(got))

        def show(v: Any) -> Any:
            return MISSING if v is None else mask_text(v, known) if known else v

        def stored(d: dict[str, Any] | None) -> str:
            return MISSING if d is None else show(f"stored: {d.get('reason') or d.get('kind') or '?'}")

        for i in range(n):
            a = rec[i] if i < len(rec) else None
            b = got[i] if i < len(got) else None
            seq = i if n > 1 else None
            if a is None or b is None:
                self._add(res, ctx, channel, "dead letter", "(stored)", stored(a), stored(b), seq)
                continue
            for f in DEAD_FIELDS:
                if f == "code" and a.get(f) is None and a.get("kind") not in (None, "unrecorded"):
                    continue        # recorded before 2026-11-28: a letter whose exchange was not answered had no code
                if a.get(f) != b.get(f):
                    self._add(res, ctx, channel, "dead letter", f, show(a.get(f)), show(b.get(f)), seq)

    def _status(self, ctx: tuple, channel: str, rec: int | None, prod: int | None, res: DiffResult) -> None:
        """The HTTP status an http listen answered with (reply field ``(status)``): a candidate that answers a
        refusal 200, or a hold 422 instead of 202, changes what the caller does even with the same body.  Not
        compared for a capture recorded without it (``frames.status`` NULL)."""
        if rec is not None and rec != prod:
            self._add(res, ctx, channel, "reply", "(status)", str(rec), str(prod) if prod is not None else MISSING,
                      None)

    def _deal(self, ctx: tuple, channel: str, rec: dict[str, Any] | None, prod: Any, res: DiffResult) -> None:
        """The ledger's deal, recorded vs produced (type, route, ref, amount, currency, party, response
        code): what a reply does not show (an amount booked rounded, a route renamed).  Not compared for a
        capture recorded without it, nor when the candidate recorded no deal (its status says so)."""
        if rec is None or prod is None:
            return
        known = self._request_known() if self._rec.request.raw is not None else {}
        got = deal_values(prod, known if self.masked else None)
        for f in DEAL_FIELDS:
            if f not in rec:
                continue
            a, b = rec[f], got.get(f)
            if not same(a, b):
                show = (lambda v: deal_masked(v, known) if isinstance(v, str) and known else v)
                self._add(res, ctx, channel, "deal", f, MISSING if a is None else show(a),
                          MISSING if b is None else show(b), None)

    def _frames(self, ctx: tuple, channel: str, what: str, seq: int | None, rd: tuple[str, str],
                rec_raw: bytes | None, prod_raw: bytes | None, rec_has: bool, prod_has: bool,
                res: DiffResult) -> None:
        if not rec_has and not prod_has:
            return
        label = "(reply)" if what == "reply" else "(call)"
        if rec_has != prod_has:
            self._add(res, ctx, channel, what, label, "sent" if rec_has else MISSING,
                      "sent" if prod_has else MISSING, seq)
            return
        if rec_raw is None:       # recorded but not stored (masking could not make it safe)
            res.unstored += 1
            return
        if rec_raw == prod_raw and not self.masked:
            return
        fmt_a, va = self.guide.decode(channel, rd[0], rd[1], rec_raw)
        fmt_b, vb = self.guide.decode(channel, rd[0], rd[1], prod_raw, prefer=fmt_a)
        if fmt_a is None or fmt_b is None or fmt_a != fmt_b:
            if rec_raw != prod_raw:
                self._add(res, ctx, channel, what, "(bytes)" if fmt_a == fmt_b else "(format)",
                          fmt_a or _short(rec_raw), fmt_b or _short(prod_raw), seq)
            return
        digits: dict[str, Any] = {}
        if self.masked:
            codec = self.guide.codec(fmt_b)
            masked = mask(vb, tags_of(codec))
            digits = flatten(fit_mask(vb, masked, filler(codec))[0])    # as recorded when the mask did not fit
            vb = masked
        fa, fb = flatten(va), flatten(vb)
        macs = self._mac_fields(fmt_a, va)
        shown: tuple[dict[str, Any], dict[str, Any]] | None = None
        for path in sorted(set(fa) | set(fb)):
            a, b = fa.get(path, MISSING), fb.get(path, MISSING)
            if path in macs and a is not MISSING and b is not MISSING:
                res.mac_fields.setdefault(fmt_a, set()).add(path)
                continue
            if not same(a, b) and not (path in digits and same(a, digits[path])):
                if shown is None:
                    shown = self._protected(fmt_a, va, vb)
                sa, sb = shown[0].get(path, a), shown[1].get(path, b)
                if (sa, sb) != (a, b) and same(sa, sb):
                    sb = f"{sb} (differs in masked characters)"
                self._add(res, ctx, channel, what, path, sa, sb, seq, title=field_title(self.guide.codec(fmt_a), path))

    def _names(self, ctx: tuple, channel: str, seq: int, rec: dict[str, str] | None,
               prod: dict[str, str] | None, res: DiffResult) -> None:
        """A file write call's name values (``name { ref = ... }``), recorded vs produced: a candidate
        that would name the file otherwise differs in ``file name {ref}``.  Shown masked where they hold
        a classified value of the request; a capture recorded without them (older) is not compared."""
        if rec is None:
            return
        prod = prod or {}
        known = self._request_known() if self._rec.request.raw is not None else {}
        for f in sorted(set(rec) | set(prod)):
            va, vb = rec.get(f, MISSING), prod.get(f, MISSING)
            if self.masked and vb is not MISSING:
                vb = mask_text(vb, known)
            if va != vb:
                self._add(res, ctx, channel, "call", f"file name {{{f}}}", mask_text(va, known),
                          mask_text(vb, known), seq)

    def _protected(self, fmt: str, va: Any, vb: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Both sides flattened for showing: classified fields masked, and the classified values of the
        exchange's request (or of these frames) masked wherever they appear."""
        tags = tags_of(self.guide.codec(fmt))
        known = dict(self._request_known())
        known.update(classified_values(va, tags))
        known.update(classified_values(vb, tags))
        return (flatten(mask_known(mask(va, tags), known)[0]), flatten(mask_known(mask(vb, tags), known)[0]))

    def _request_known(self) -> dict[str, str]:
        if self._known is None:
            req = self._rec.request
            fmt, values = self.guide.decode(req.channel, "inbound", "in", req.raw)
            self._known = classified_values(values, tags_of(self.guide.codec(fmt))) if fmt is not None else {}
            if self.masked and self._known:
                self._known = _without_fillers(self._known, values, self.guide.codec(fmt))
        return self._known

    def _mac_fields(self, fmt: str, values: Any) -> tuple[str, ...]:
        fields = getattr(self.guide.codec(fmt), "mac_fields", None)
        return tuple(fields(values)) if callable(fields) else ()

    def _add(self, res: DiffResult, ctx: tuple, channel: str, what: str, field_: str, a: Any, b: Any,
             seq: int | None, title: str | None = None) -> None:
        rule = self.profile.ignored(channel, what, field_, a, b)
        if rule is not None:
            self._used.add(rule)
            res.ignored += 1
            return
        if self.uuids_volatile and uuids_only(a, b):
            res.uuids += 1
            return
        rule = self.profile.expected(channel, what, field_, a, b)
        if rule is not None:
            self._used.add(rule)
        res.add(Difference(ctx[0], ctx[1], channel, what, field_, a, b, seq,
                           rule.describe() if rule is not None else None, title))


def field_title(codec: Any, path: str) -> str | None:
    """The name a format gives the field at ``path`` (an ISO 8583 data element: ``38`` -> "Authorization
    identification response"), shown beside the number; None for a format whose fields are named."""
    fields = getattr(getattr(codec, "spec", None), "fields", None)
    top = path.split(".", 1)[0].split("[", 1)[0]
    if not isinstance(fields, dict) or not top.isdigit():
        return None
    f = fields.get(int(top))
    name = getattr(f, "name", None)
    return name if isinstance(name, str) and name and name != f"field {top}" else None


def pair_calls(rec: list[Any], prod: list[Any]) -> list[tuple[int, Any, Any]]:
    """An exchange's recorded and produced calls to one channel, paired: a produced call with the recorded
    call whose answer it got (``CallRecord.paired``: the same identity, engine/replay/pairing.py), the others
    by order.  Each pair is numbered by its recorded call's place (#0 the first recorded), a produced call
    the recording lacks after them."""
    pairs: list[tuple[int, Any, Any]] = []
    placed = {id(c): i for i, c in enumerate(rec)}
    taken: set[int] = set()
    rest_b = []
    for cb in prod:
        p = getattr(cb, "paired", None)
        if p is not None and id(p) in placed and id(p) not in taken:
            taken.add(id(p))
            pairs.append((placed[id(p)], p, cb))
        else:
            rest_b.append(cb)
    rest_a = [(i, c) for i, c in enumerate(rec) if id(c) not in taken]
    for (i, ca), cb in zip(rest_a, rest_b):
        pairs.append((i, ca, cb))
    pairs.extend((i, ca, None) for i, ca in rest_a[len(rest_b):])
    extra = rest_b[len(rest_a):]
    pairs.extend((len(rec) + n, None, cb) for n, cb in enumerate(extra))
    return sorted(pairs, key=lambda t: t[0])


def _short(raw: bytes | None) -> str:
    if raw is None:
        return MISSING
    return mask_digit_runs(repr(raw[:40])) + ("..." if len(raw) > 40 else "")
