"""Route tests written from recorded exchanges (``bsp replay CAPTURE --to-tests DIR``).

Each recorded exchange becomes one ``test``: the request it received
(``given CHANNEL sends``, with ``file { ... }``: where a ``file watch`` record
came from), the answers its counterparts gave (``given X answers``,
``answers timeout`` / ``answers unreachable`` / ``answers error`` for recorded failures), the calls it
made (``expect call``, with ``name { ... }``: the file name values a call gave a
``file write`` channel), the reply it sent (``expect reply``), all decoded
through the configuration's formats, and the deal the ledger recorded
(``expect deal TYPE { ... }``, from ``frames.deal``) and the dead letters it wrote (``expect dead letter
{ ... }``, from ``frames.dead_letters``).  Fields the replay profile ignores are left
out.  Exchanges that cannot be written as a test are skipped and counted: a
framing error, a frame no declared format decodes, or an exchange that is not
replayable (its request or a counterpart's answer recorded without its bytes:
the skip note gives the recorded reason).

Each test carries the recorded exchange's time (``test "..." at 2026-11-25T10:00:00.123456Z``, the bare
timestamp literal (until 2026-11-28 quoted, which ``bsp test`` still reads): the
first instant its routes read, ``frames.clock``, else the time it was received, ``recorded_at``):
``now()`` and ``today()`` read it, so a value date or a time stamp the route computes is the recorded
one and the test does not expire (``clock`` False: written without it).  A timestamp value that is an
instant the routes read (a ``CreDtTm = now()``) is written ``now()`` (in the test every read is the ``at``
instant), one moved from it by whole days ``add_days(now(), n)``; one the test sends (its request, a
counterpart's answer) as its ISO 8601 text where the format takes text (XML, ISO 20022), as it did
before the language had a timestamp literal.  Any other timestamp (a partner's time a reply or call
expects, one without a zone, one a fixed-width or CSV field must be given as a timestamp) is written as a
timestamp literal (``dsl.timestamps``): ``2026-01-02T03:04:05Z`` with its offset, ``2026-11-25T10:00:00``
without a zone.  (Until 2026-11-28 the language had none, and such an exchange was skipped.)  A date value
(a fixed-width or CSV field read with a date pattern, a file header's value date) is written as a date
literal, ``2026-11-30`` (until 2026-11-28 ``parse_date("20261130", "%Y%m%d")``).  A value of
a call or reply that holds a UUID the exchange did not receive (what ``uuid()`` makes anew each run) is
not expected; a comment line says so.  An http listen's request gives the client's address it came from
(``http { ... peer = "10.1.2.3:51234" }``), so a value the route copied from ``http.peer`` is expected.

Classified values (fields a format tags ``pan``, ``secret`` or ``personal``, and
those values wherever the exchange carries them on) are masked in the tests as
``bsp run --record --mask`` masks them, unless ``--no-mask`` is given: a test file
is committed and shared, a capture is not.  An exchange whose frames cannot be
masked is skipped, with the reason.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

from engine import filemodes
from engine.replay.capture import Capture, RecordedExchange
from engine.replay.dealrow import load as load_deal
from engine.replay.deadrow import load as load_dead, reason_head
from engine.replay.diff import UUID_TEXT, flatten
from engine.replay.clock import first_read, load as load_clock, received_at
from dsl.clock import instant_text
from dsl import timestamps
from engine.replay.guide import FormatGuide
from engine.replay.httpline import clause as http_clause, masked as http_masked
from engine.replay.names import mask_names, name_tags
from engine.replay.origin import load as load_origin, load_names, scope_fields
from engine.replay.peer import clause as peer_clause
from engine.replay.profile import Profile
from formats.classify import mask_text
from formats.pseudonym import Pseudonyms

_SEGMENT = re.compile(r"\[(\d+)\]|(^|\.)([^.\[\]]+)")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYWORDS = {"if", "then", "else", "and", "or", "not", "in", "true", "false", "null"}


class Unwritable(ValueError):
    pass


def clock_literal(v: datetime, reads: list[datetime]) -> str | None:
    """A timestamp as the test writes it from its clock: ``now()`` when it is an instant the exchange's routes
    read (``frames.clock``: in the test every read is its ``at`` instant, so the route makes it ``now()``
    again), ``add_days(now(), n)`` when it is one moved by whole days; None otherwise (another instant, or a
    timestamp without a zone, which ``now()`` never equals)."""
    if v.tzinfo is None:
        return None
    for r in reads:
        delta = v - r
        if not delta:
            return "now()"
        if not delta.seconds and not delta.microseconds:
            return f"add_days(now(), {delta.days})"
    return None


def timestamps_as_text(values: Any, reads: list[datetime]) -> tuple[Any, bool]:
    """A request's values with each timestamp that is not of the clock given as its ISO 8601 text (what an
    XML or ISO 20022 format writes it as), and whether there was one."""
    if isinstance(values, dict):
        out, any_ = {}, False
        for k, v in values.items():
            out[k], had = timestamps_as_text(v, reads)
            any_ = any_ or had
        return out, any_
    if isinstance(values, list):
        pairs = [timestamps_as_text(v, reads) for v in values]
        return [p[0] for p in pairs], any(p[1] for p in pairs)
    if isinstance(values, datetime) and clock_literal(values, reads) is None:
        return values.isoformat(), True
    return values, False


@dataclass
class ToTestsResult:
    path: Path
    written: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def literal(v: Any) -> str:
    """A route-language literal for a decoded value."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, datetime):
        return timestamps.text(v)            # 2026-11-25T10:00:00Z, +01:00, or zone-less (dsl/timestamps.py)
    if isinstance(v, date):
        return timestamps.day_text(v)        # a date literal, 2026-11-25 (until 2026-11-28: parse_date(...))
    if isinstance(v, str):
        body = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                .replace("\t", "\\t").replace("\r", "\\r").replace("\0", "\\0"))
        return f'"{body}"'
    raise Unwritable(f"a {type(v).__name__} value")


def target(path: str) -> str:
    """A flattened field path (``a.b[0].c``, ISO 8583's ``39``) as the language writes it: a word as it is, a
    name that is not a word quoted (``"39" = "00"``, ``a["x-y"]``)."""
    out, pos = [], 0
    while pos < len(path):
        m = _SEGMENT.match(path, pos)
        if m is None or (pos == 0) != (m.group(2) == "" and m.group(1) is None):
            raise Unwritable(f"field name {path!r} cannot be written in the route language")
        pos = m.end()
        if m.group(1) is not None:
            out.append(f"[{m.group(1)}]")
            continue
        name = m.group(3)
        word = _IDENT.match(name) is not None and name not in _KEYWORDS
        out.append((name if word else literal(name)) if not out else (f".{name}" if word else f"[{literal(name)}]"))
    if not out:
        raise Unwritable(f"field name {path!r} cannot be written in the route language")
    return "".join(out)


def block(values: Any, channel: str, what: str, profile: Profile, indent: str = "        ",
          left_out: Iterable[str] = (), received: bytes | None = None, reads: list[datetime] | None = None,
          literals: list[str] | None = None) -> str:
    """``left_out``: paths not expected (a classified value the test's route makes in clear), each told
    in a comment line.  ``received`` (an expectation): the bytes the exchange received (its request, the
    answers); a text holding a UUID none of them holds is made by ``uuid()``, new each run: not expected.
    ``reads``: the instants the exchange's routes read (the test runs ``at`` the first): a timestamp that is
    one of them is written ``now()`` (``clock_literal``), any other as a timestamp literal, each of which is
    appended to ``literals`` (``exchange_test`` prefers the test that needs fewer)."""
    flat = flatten(values) if isinstance(values, dict) else None
    if flat is None:
        raise Unwritable("a message that is not a record of fields")
    lines = []
    for path, v in flat.items():
        if isinstance(v, (dict, list)):
            continue
        if profile.ignored(channel, what, path, recorded=v) is not None:
            continue
        if path in left_out:
            lines.append(f"{indent}# {path}: classified, not made from the request: its masked value is not expected")
            continue
        if received is not None and _made_uuid(v, received):
            lines.append(f"{indent}# {path}: a UUID the exchange did not receive (uuid() makes a new one each run): "
                         f"not expected")
            continue
        shown = clock_literal(v, reads) if reads and isinstance(v, datetime) else None
        if shown is None and isinstance(v, datetime) and literals is not None:
            literals.append(path)
        lines.append(f"{indent}{target(path)} = {shown or literal(v)}")
    if not lines:
        return "{ }"
    return "{\n" + "\n".join(lines) + "\n" + indent[:-4] + "}"


def _made_uuid(v: Any, received: bytes) -> bool:
    if not isinstance(v, str):
        return False
    found = UUID_TEXT.findall(v)
    return bool(found) and any(u.lower().encode() not in received.lower() for u in found)


def made_in_clear(guide: FormatGuide, channel: str, role: str, direction: str, raw: bytes, masked: bytes,
                  fmt: str, before: dict[str, str]) -> set[str]:
    """The paths of a frame the masking changed whose recorded value the exchange's earlier frames do not
    carry (``before``: their classified values): the route makes it from its configuration (a settlement
    account from a table), so the test's route sends it in clear and its mask would never be equal."""
    _name, plain = guide.decode(channel, role, direction, raw, fmt)
    _name, values = guide.decode(channel, role, direction, masked, fmt)
    if not isinstance(plain, dict) or not isinstance(values, dict):
        return set()
    recorded, shown = flatten(plain), flatten(values)
    return {path for path, v in shown.items()
            if isinstance(recorded.get(path), (str, int)) and not isinstance(recorded.get(path), bool)
            and recorded[path] != v and mask_text(str(recorded[path]), before) == str(recorded[path])}


def file_clause(stored: str | None) -> str:
    """`` file { name = "X.csv"  line = 3 ... }``: a file watch record's place as recorded (``file.*`` in the
    route), or "" (not a file record, or a capture of before it was stored)."""
    origin = load_origin(stored)
    if origin is None:
        return ""
    given = scope_fields(origin)
    header = given.pop("header", None)
    fields = "  ".join(f"{k} = {literal(v)}" for k, v in given.items() if v is not None)
    if isinstance(header, dict):          # the header record's fields (file.header.FIELD), one by one
        fields += "".join(f"  header.{target(k)} = {literal(v)}" for k, v in header.items())
    return f" file {{ {fields} }}"


def names_clause(stored: str | None, channel: str, profile: Profile, *, known: dict[str, str] | None = None,
                 tags: dict[str, str] | None = None, fakes: Pseudonyms | None = None) -> str:
    """`` name { ref = "R1" ... }``: the file name values a call gave (``frames.names``), or "" (a call that
    gave none, or a capture of before they were stored).  ``known`` (masking): the exchange's classified
    values, masked (or given their stand-ins) wherever a value holds them; a value whose word is in
    ``tags`` (found classified by ``bsp check``) is masked whole, and joins ``known``, so the frames after
    the call (its answer's ``file``, a reply copying it) mask it too.  A value the profile ignores
    (``field: "file name {ref}"``) is left out."""
    values = load_names(stored)
    if not values:
        return ""
    if known is not None:
        values = mask_names(values, known, tags, fakes.mapping if fakes is not None else None)
    shown = [f"{word} = {literal(v)}" for word, v in sorted(values.items())
             if profile.ignored(channel, "call", f"file name {{{word}}}") is None]
    return f" name {{ {'  '.join(shown)} }}" if shown else ""


def deal_expect(req: Any, profile: Profile, known: dict[str, str] | None) -> list[str]:
    """``expect deal TYPE { status = .. amount = .. }``: the deal the ledger recorded for the exchange
    (``frames.deal``; none from a capture of before it, nor for a repeat answered as a ``duplicate``, which
    a test sending once never is).  Fields the profile ignores (``what: deal``) and null ones are left
    out, and so are a ref or party that holds a classified value when masking (the test's route makes it
    from the masked request, so no recorded value fits)."""
    deal = load_deal(getattr(req, "deal", None))
    status = req.deal_status
    if deal is None or not deal.get("type") or status == "duplicate" or not _IDENT.match(deal["type"]):
        return []
    fields = [f"status = {literal(status)}"] if status and profile.ignored(req.channel, "deal", "status") is None \
        else []
    for name in ("ref", "amount", "currency", "party", "response_code", "route"):
        v = deal.get(name)
        if v is None or profile.ignored(req.channel, "deal", name, recorded=v) is not None:
            continue
        if known is not None and isinstance(v, str) and mask_text(v, known) != v:
            continue
        fields.append(f"{name} = {literal(v)}")
    return [f"    expect deal {deal['type']} {{ {'  '.join(fields)} }}"] if fields else []


def dead_expect(req: Any, profile: Profile, known: dict[str, str] | None) -> list[str]:
    """``expect dead letter { route = ..  error_kind = ..  error_code = ..  reason = .. }`` for each dead letter
    the exchange wrote (``frames.dead_letters``; none from a capture of before it).  The reason is its text
    without its place in the route files (the expectation's ``reason`` is "contains"); fields the profile
    ignores (``what: dead letter``) are left out, and so is a reason that holds a classified value when masking."""
    letters = load_dead(getattr(req, "dead_letters", None)) or []
    out = []
    for dl in letters:
        fields = []
        for name, attr in (("route", "route"), ("kind", "error_kind"), ("code", "error_code"), ("reason", "reason")):
            v = dl.get(name)
            if name == "reason" and v is not None:
                v = reason_head(v, dl.get("kind")) or None
            if v is None or profile.ignored(req.channel, "dead letter", name, recorded=v) is not None:
                continue
            if known is not None and mask_text(v, known) != v:
                continue
            fields.append(f"{attr} = {literal(v)}")
        out.append(f"    expect dead letter {{ {'  '.join(fields)} }}")
    return out


def exchange_test(ex: RecordedExchange, guide: FormatGuide, profile: Profile, *, mask: bool = False,
                  fakes: Pseudonyms | None = None, clock: bool = True, scripted: list[str] | None = None) -> str:
    """``_exchange_test`` at the exchange's recorded instant; when it writes a timestamp literal (a timestamp
    not of the clock) and that instant has a fraction of a second, again at the whole second, which is taken
    when it needs fewer: a route that writes ``now()`` at a format's precision
    (``format_date(now(), "%Y-%m-%dT%H:%M:%S+00:00")`` into a ``CreDtTm``) made the second of the instant it
    read, which ``now()`` is in a test ``at`` that second (a test that says ``now()`` stays true when its
    ``at`` is moved; a literal does not)."""
    literals: list[str] = []
    text = _exchange_test(ex, guide, profile, mask=mask, fakes=fakes, clock=clock, scripted=scripted,
                          literals=literals)
    at = first_read(ex.request) if clock else None
    if not literals or at is None or not at.microsecond:
        return text
    fewer: list[str] = []
    whole = _exchange_test(ex, guide, profile, mask=mask, fakes=fakes, clock=clock, scripted=scripted,
                           whole=True, literals=fewer)
    return whole if len(fewer) < len(literals) else text


def _exchange_test(ex: RecordedExchange, guide: FormatGuide, profile: Profile, *, mask: bool = False,
                   fakes: Pseudonyms | None = None, clock: bool = True, scripted: list[str] | None = None,
                   whole: bool = False, literals: list[str] | None = None) -> str:
    """One recorded exchange as a ``test`` (``whole``: ``at`` the whole second of its instant).  ``mask``: classified values (card numbers, accounts, secrets)
    are masked as ``bsp run --record --mask`` masks them (``FormatGuide.mask``): fields a format classifies,
    and their values wherever they travel in the exchange's later frames; ``fakes``: an IBAN or card number
    among them gets a made-up stand-in of the same shape (``formats.pseudonym``), so a route that checks it
    takes the test's request as it took the recorded one.  ``clock``: the test is written ``at`` the exchange's
    recorded time (``engine.replay.clock.first_read``: now() and today() read it).  ``scripted``: the
    ``given CHANNEL answers ...`` lines of the answers script (``--answers``) for the calls the candidate made
    that the recording lacks, in call order, written after the recorded answers."""
    known: dict[str, str] = {}
    tags = name_tags(getattr(guide, "program", None)) if mask else {}

    def clear(channel: str, role: str, direction: str, raw: bytes) -> bytes:
        if not mask:
            return raw
        out, what = guide.mask(channel, role, direction, raw, known, fakes)
        if out is None:
            raise Unwritable(f"a frame of {channel} whose classified values cannot be masked ({what})")
        return out

    req = ex.request
    if req.error and req.error.startswith("framing"):
        raise Unwritable("a framing error")
    why = ex.unreplayable
    if why is not None:
        raise Unwritable(f"not replayable: {why}")
    ch = req.channel
    fmt, values = guide.decode(ch, "inbound", "in", req.raw)
    if fmt is None:
        raise Unwritable("a request no declared format decodes")
    if mask:
        fmt, values = guide.decode(ch, "inbound", "in", clear(ch, "inbound", "in", req.raw), fmt)
    name = f"recorded exchange {ex.exchange}" + (f" (ref {ex.key})" if ex.key else "")
    at = first_read(req) if clock else None
    if at is not None and whole:
        at = at.replace(microsecond=0)
    when = f" at {instant_text(at)}" if at is not None else ""       # bare, as a route writes a timestamp
    received = bytes(req.raw or b"") + b"".join(c.reply.raw for c in ex.calls
                                                if c.reply is not None and c.reply.raw is not None)
    # the instants the routes read (the test reads `at` for each): a timestamp that is one is written now()
    reads = [r for r in (load_clock(getattr(req, "clock", None)) or [received_at(req)]) if r is not None] \
        if at is not None else []
    if whole:
        reads = [r.replace(microsecond=0) for r in reads]
    http_shown = (lambda v: http_masked(v, known, fakes.mapping if fakes is not None else None)) if mask else None
    values = given_values(guide, fmt, values, reads)
    out = [f"test {literal(name)}{when} {{",
           f"    given {ch} sends {fmt} {block(values, ch, 'call', Profile(), reads=reads, literals=literals)}"
           + file_clause(req.origin) + http_clause(getattr(req, "http", None), literal, target, http_shown)
           + peer_clause(getattr(req, "peer", None), literal)]
    expects = []
    for c in ex.calls:
        before = dict(known)
        sent = clear(c.channel, "outbound", "out", c.request.raw) if c.request.raw is not None else None
        named = names_clause(getattr(c.request, "names", None), c.channel, profile,      # before its answer
                             known=known if mask else None, tags=tags.get(c.channel), fakes=fakes)
        rep = c.reply
        err = rep.error if rep is not None else "lost"
        if rep is not None and rep.raw is not None and not rep.error:
            rfmt, rvalues = guide.decode(c.channel, "outbound", "in", clear(c.channel, "outbound", "in", rep.raw))
            if rfmt is None:
                raise Unwritable(f"an answer of {c.channel} no declared format decodes")
            rvalues = given_values(guide, rfmt, rvalues, reads)
            out.append(f"    given {c.channel} answers {rfmt} "
                       f"{block(rvalues, c.channel, 'call', Profile(), reads=reads, literals=literals)}")
        elif err and err.startswith("timeout"):
            out.append(f"    given {c.channel} answers timeout")
        elif err and err.startswith("unreachable"):             # never left: not `error` (lost, maybe applied)
            out.append(f"    given {c.channel} answers unreachable")
        else:
            out.append(f"    given {c.channel} answers error")
        if sent is not None:
            qfmt, qvalues = guide.decode(c.channel, "outbound", "out", sent)
            if qfmt is None:
                raise Unwritable(f"a request to {c.channel} no declared format decodes")
            out_ = made_in_clear(guide, c.channel, "outbound", "out", c.request.raw, sent, qfmt, before) \
                if mask else set()
            shown_call = block(qvalues, c.channel, 'call', profile, left_out=out_, received=received, reads=reads,
                               literals=literals)
            expects.append(f"    expect call {c.channel} {shown_call}" + named)
    out.extend(f"    {line}  # from the answers script (--answers)" for line in scripted or ())
    out.extend(expects)
    if ex.reply is None:
        out.append("    expect no reply")
    elif ex.reply.raw is not None:
        before = dict(known)
        shown = clear(ch, "inbound", "out", ex.reply.raw)
        pfmt, pvalues = guide.decode(ch, "inbound", "out", shown)
        if pfmt is None:
            raise Unwritable("a reply no declared format decodes")
        out_ = made_in_clear(guide, ch, "inbound", "out", ex.reply.raw, shown, pfmt, before) if mask else set()
        # an http listen's answer: the status it was answered with (frames.status), pinned as the replay compares it
        status = f"{req.status} " if getattr(req, "status", None) is not None \
            and profile.ignored(ch, "reply", "(status)", recorded=str(req.status)) is None else ""
        out.append(f"    expect reply {status}{pfmt} "
                   f"{block(pvalues, ch, 'reply', profile, left_out=out_, received=received, reads=reads, literals=literals)}")
    out.extend(deal_expect(req, profile, known if mask else None))
    out.extend(dead_expect(req, profile, known if mask else None))
    out.append("}")
    return "\n".join(out) + "\n"


def given_values(guide: FormatGuide, fmt: str, values: Any, reads: list[datetime]) -> Any:
    """What a test sends (a request, a counterpart's answer): a timestamp that is not of the clock is given as
    its ISO 8601 text where the format takes it (XML, ISO 20022 write it as they wrote the timestamp), else
    as it is, which the test writes as a timestamp literal (a fixed-width or CSV field with a time pattern,
    zone-less: ``2026-11-25T10:00:00``)."""
    texts, had = timestamps_as_text(values, reads)
    if not had:
        return values
    try:
        guide.codec(fmt).encode(texts)
    except Exception:   # noqa: BLE001 - any refusal: the format does not take the text, but the timestamp
        return values
    return texts


def test_file_path(capture: Capture, out_dir: Path) -> Path:
    """Where ``write_tests`` writes: ``OUT_DIR/<capture stem>_test.route``."""
    return out_dir / f"{capture.path.stem}_test.route"


def write_tests(capture: Capture, program: Any, guide: FormatGuide, out_dir: Path,
                config_files: Iterable[Path], profile: Profile, *, limit: int | None = None,
                mask: bool = True, clock: bool = True,
                scripted: dict[int, list[str]] | None = None) -> ToTestsResult:
    """``mask``: classified values masked in the tests (a capture recorded with --mask has them masked
    already); False writes them as recorded.  ``clock``: each test ``at`` its recorded time.  ``scripted``:
    recorded exchange -> the answers script's ``given`` lines for it (``--answers``)."""
    mask = mask and not capture.masked
    fakes = Pseudonyms() if mask else None        # one per output: a real value's stand-in is the same in it
    out_dir.mkdir(parents=True, exist_ok=True)
    path = test_file_path(capture, out_dir)
    res = ToTestsResult(path)
    uses = [f'use "{Path(os.path.relpath(Path(f).resolve(), out_dir.resolve())).as_posix()}"'
            for f in config_files]
    parts = [f"# Route tests written by `bsp replay {capture.path.name} --to-tests` from recorded exchanges\n"
             f"# (configuration {program.version}).  Run them with `bsp test {path}`.\n"
             + ("# Classified values (card numbers, accounts, secrets) are masked, as `bsp run --mask` masks them;\n"
                "# IBANs and card numbers are replaced by made-up ones of the same shape (valid check digits).\n"
                if mask else
                "# Classified values (card numbers, accounts, secrets) are masked, as `bsp run --mask` masks them.\n"
                if capture.masked else
                "# WARNING: classified values (card numbers, accounts, secrets) are in clear (written with --no-mask).\n"),
             "\n".join(uses) + "\n"]
    for ex in capture.exchanges:
        if limit is not None and res.written >= limit:
            break
        try:
            parts.append(exchange_test(ex, guide, profile, mask=mask, fakes=fakes, clock=clock,
                                       scripted=(scripted or {}).get(ex.exchange)))
            res.written += 1
        except Unwritable as why:
            key = str(why)
            res.skipped[key] = res.skipped.get(key, 0) + 1
    if res.written or limit == 0:      # every exchange skipped: no file that holds no test (bsp test: none found)
        filemodes.write_private(path, "\n".join(parts))
    return res
