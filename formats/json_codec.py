"""JSON messages: exact numbers, ISO dates, optional JSON Schema validation.

Decode: numbers with a fraction or exponent become ``Decimal`` (never float),
integers ``int``.  orjson parses a document first (~0.4 us for a 200-byte
message); when its result holds no float, that is the answer.  A float means
a fraction, an exponent or an integer past 64 bits: the document is parsed
again (or at once, when its first ``.`` follows a digit, as in ``120.50``)
by the stdlib's C scanner with ``parse_float=Decimal``, called
directly (~0.9 us; ``JSONDecoder.decode`` around it, for surrounding
whitespace and to report an error, ~1.5 us), so ``120.50`` becomes
``Decimal("120.50")``, digits kept.  ``NaN``/``Infinity`` are rejected.
Dates stay strings on decode (JSON has no date type).  A key given twice in
one object is refused (``_check_keys``: a colon count, usually all it takes),
and so is a leading UTF-8 byte order mark, with a message of its own.
Hostile input (docs/security.md#hostile-input): nesting deeper than
``MAX_DEPTH`` is refused (a deeper value cannot be written again by orjson,
whose limit is 254), and so is a string holding half a UTF-16 surrogate pair
(``"\\ud800"``): no UTF-8 text holds it, so the ledger could not store it.

Encode: ``Decimal`` is written as a JSON number with its exact digits
(``Decimal("120.50")`` -> ``120.50``) through ``orjson.Fragment``; ``date``
and ``datetime`` as ISO 8601 strings; floats are refused (money is Decimal).

Option ``schema`` (path): a JSON Schema file; a decoded value and an encoded
document are validated against it, and a violation is a ``FormatError``
naming the JSON path (``$.items[2].amount``).
"""
from __future__ import annotations

import json
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from formats.classify import classified_values, mask_text, parse_spec
from formats.component import ComponentSpec, OptionSpec
from formats.errors import FormatError, SpecError
from formats.versioned import read_bytes


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# A number's exponent, either way: 1e999999999 is 23 bytes, its plain digits (what a route's text function,
# an XML or CSV reply and the ledger's journal write) a gigabyte.  As Python bounds an integer's digits.
MAX_EXPONENT = 4300


def _exact(text: str) -> Decimal:
    """``parse_float``: the number's exact ``Decimal``; FormatError when its plain digits would pass
    ``MAX_EXPONENT`` places either side of the point."""
    d = Decimal(text)
    if ("e" in text or "E" in text) and (d.adjusted() > MAX_EXPONENT or
                                         d.as_tuple().exponent < -MAX_EXPONENT):     # type: ignore[operator]
        shown = text if len(text) <= 24 else text[:21] + "..."
        raise FormatError(f"invalid JSON: the number {shown} has more than {MAX_EXPONENT} digits written out",
                          hint="no amount or rate is that large or that small; the limit guards the engine's "
                               "memory (1e999999999 is a gigabyte of digits)")
    return d


_NUMBER_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*')


def _at_number(raw: bytes, exc: FormatError) -> FormatError:
    """``exc`` (a number past MAX_EXPONENT) with the byte offset of the first such number in ``raw``."""
    for m in _NUMBER_TOKEN.finditer(raw):
        tok = m.group()
        if tok[:1] != b'"' and (b"e" in tok or b"E" in tok):
            try:
                _exact(tok.decode("ascii"))
            except (FormatError, ArithmeticError, ValueError):
                return FormatError(exc.message, offset=m.start(), hint=exc.hint)
    return exc


# One decoder built once (json.loads with keyword arguments builds one per call).
_DECODER = json.JSONDecoder(parse_float=_exact, parse_constant=_reject_constant)
_SCAN = _DECODER.scan_once      # the C scanner (it clears its key memo after each call)


MAX_DEPTH = 128        # arrays and objects inside each other; real messages nest a few levels
# a document that parsed holds a closing bracket for each opening one: nesting past MAX_DEPTH takes at least
# this many bytes, so a shorter document (most messages) needs no count at all
_DEPTH_BYTES = 2 * (MAX_DEPTH + 1)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _depth_over(value: Any) -> bool:
    """Whether arrays and objects nest more than ``MAX_DEPTH`` deep in ``value`` (no recursion)."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > MAX_DEPTH:
            return True
        kids = v.values() if v.__class__ is dict else v
        stack.extend((k, d + 1) for k in kids if k.__class__ is dict or k.__class__ is list)
    return False


def _check_depth(raw: bytes, value: Any) -> None:
    """FormatError when ``value`` nests deeper than ``MAX_DEPTH``; a cheap count first (no more
    brackets than the limit: nothing to walk)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH or value.__class__ not in (dict, list):
        return
    if not _depth_over(value):
        return
    depth = 0
    for m in _TOKEN.finditer(raw):                    # the offset: where the limit is passed
        c = m.group()[:1]
        if c in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                raise FormatError(f"invalid JSON: arrays and objects nest more than {MAX_DEPTH} deep",
                                  offset=m.start(), hint="flatten the message; the limit guards the engine")
        elif c in (b"]", b"}"):
            depth -= 1
    raise FormatError(f"invalid JSON: arrays and objects nest more than {MAX_DEPTH} deep")  # pragma: no cover


def _check_surrogates(raw: bytes) -> None:
    """FormatError at the first string that holds an unpaired UTF-16 surrogate (``"\\ud800"``): the
    stdlib parser lets one through, and no UTF-8 text (a reply, the ledger) can hold it."""
    for m in _TOKEN.finditer(raw):
        tok = m.group()
        if tok[:1] == b'"' and _SURROGATE_ESCAPE.search(tok):
            found = _SURROGATE.search(json.loads(tok))
            if found:
                raise FormatError(f"invalid JSON: the string at byte {m.start()} holds \\u{ord(found.group()):04x}, "
                                  f"half of a UTF-16 surrogate pair without its other half", offset=m.start(),
                                  hint="write a character past U+FFFF as a pair (\\ud83d\\ude00) or as UTF-8")


def _byte_offset(text: str, pos: int) -> int:
    return len(text[:pos].encode("utf-8"))


def loads(data: bytes | str) -> Any:
    """Parse JSON text to values with exact numbers; raises FormatError."""
    if type(data) is bytes:             # what a channel hands over: no copy, no other test
        raw = data
    elif isinstance(data, str):
        raw = data.encode("utf-8")
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    else:
        raise FormatError(f"expected bytes, got {type(data).__name__}")
    dot = raw.find(b".")
    if dot <= 0 or not 48 <= raw[dot - 1] <= 57:    # no "<digit>." first: most likely no fraction
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # let the stdlib parser report it
        else:
            if len(raw) >= _DEPTH_BYTES:
                _check_depth(raw, value)
            if not _has_float(value):
                colons = raw.count(b":")
                # as _check_keys, inline: one colon per key of a flat object is the common case
                if colons and not (value.__class__ is dict and colons == len(value)) and (
                        colons != orjson.dumps(value).count(b":") or (b"\\" in raw and b"\\u003" in raw)):
                    _duplicates(raw)
                return value
            # a fraction, an exponent or an integer past 64 bits: the stdlib parser keeps its digits
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"byte 0x{raw[exc.start]:02x} is not valid UTF-8", offset=exc.start,
                          hint="JSON messages must be UTF-8") from None
    try:
        value, end = _SCAN(text, 0)         # the C scanner without JSONDecoder.decode's wrapping
        if end == len(text):
            # _check_parsed, inline (the common path: a message with a fraction, such as an amount)
            if len(raw) >= _DEPTH_BYTES:
                _check_depth(raw, value)
            if raw.find(92) >= 0 and _SURROGATE_ESCAPE.search(raw):     # 92: a backslash (find: ~50 ns, `in` ~200)
                _check_surrogates(raw)
            if not (value.__class__ is dict and raw.count(b":") == len(value)):    # _check_keys' first test
                _check_keys(raw, value)
            return value
    except FormatError as exc:
        raise _at_number(raw, exc) if exc.offset is None else exc from None
    except Exception:   # noqa: BLE001 - any failure: decode() below says what and where
        pass
    try:
        value = _DECODER.decode(text)       # leading / trailing whitespace, or the error to report
    except FormatError as exc:              # a number past MAX_EXPONENT (_exact)
        raise _at_number(raw, exc) from None
    except json.JSONDecodeError as exc:
        if raw.startswith(_BOM):
            raise FormatError("the document starts with a UTF-8 byte order mark (EF BB BF), which JSON "
                              "does not allow (RFC 8259)", offset=0,
                              hint="save the file as UTF-8 without BOM") from None
        raise FormatError(f"invalid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})",
                          offset=_byte_offset(text, exc.pos)) from None
    except ValueError as exc:  # NaN / Infinity, or an over-long integer
        if "integer string conversion" in str(exc):
            raise FormatError(f"invalid JSON: an integer of more than {sys.get_int_max_str_digits()} digits",
                              hint="no amount or identifier is that long; the limit guards the engine's CPU") from None
        raise FormatError(f"invalid JSON: {exc}", hint="write numbers as digits") from None
    except RecursionError:
        raise FormatError(f"invalid JSON: arrays and objects nest more than {MAX_DEPTH} deep") from None
    _check_parsed(raw, value)
    return value


def _check_parsed(raw: bytes, value: Any) -> None:
    """What the stdlib parser lets through: deep nesting, lone surrogates, duplicate keys."""
    if len(raw) >= _DEPTH_BYTES:
        _check_depth(raw, value)
    if raw.find(92) >= 0 and _SURROGATE_ESCAPE.search(raw):     # 92: a backslash (find: ~50 ns, `in` ~200)
        _check_surrogates(raw)
    _check_keys(raw, value)


_BOM = b"\xef\xbb\xbf"
# a JSON string, or a structural character that matters for keys
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]:]')


def _check_keys(raw: bytes, value: Any) -> None:
    """Refuse a duplicated object key (parsers disagree on which value wins: a parser differential).

    Every object key is followed by exactly one structural ':'; other colons sit inside strings,
    where a re-serialisation writes them literally again.  So when ``raw`` holds no more colons
    than the compact re-serialisation of ``value`` (which lost any duplicate), no key was dropped
    - unless a colon was written as the escape \\u003a, which the slow scan below settles.
    """
    colons = raw.count(b":")
    if not colons or (value.__class__ is dict and colons == len(value)):
        return      # as many colons as top-level keys: no nested key, no colon in a string, no duplicate
    if colons == _colons(value) and not (b"\\" in raw and b"\\u003" in raw):
        return
    _duplicates(raw)


def _colons(value: Any) -> int:
    try:
        return orjson.dumps(value, default=str).count(b":")       # Decimal as a string: no colon
    except (orjson.JSONEncodeError, TypeError):       # past 64-bit integers: count by walking
        return _walk_colons(value)


def _walk_colons(value: Any) -> int:
    if isinstance(value, dict):
        return sum(1 + k.count(":") + _walk_colons(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(_walk_colons(v) for v in value)
    return value.count(":") if isinstance(value, str) else 0


def _duplicates(raw: bytes) -> None:
    """Scan well-formed JSON ``raw`` for an object key given twice; raise naming it and its byte."""
    stack: list[tuple[dict[str, int] | None, str]] = []     # (keys seen -> byte, JSON path) per open container
    last: tuple[int, bytes] | None = None
    path = "$"
    pending = ""                                              # the path of the value after the last key
    for m in _TOKEN.finditer(raw):
        tok = m.group()
        c = tok[:1]
        if c == b'"':
            last = (m.start(), tok)
            continue
        if c == b":":
            if last is not None and stack and stack[-1][0] is not None:
                at, ktok = last
                key = json.loads(ktok)
                seen, where = stack[-1]
                if key in seen:
                    raise FormatError(f"duplicate key {key!r} in {where} (first at byte {seen[key]}): parsers "
                                      f"disagree on which value counts", offset=at, field=f"{where}.{key}",
                                      hint="send each key once")
                seen[key] = at
                pending = f"{where}.{key}"
        elif c in (b"{", b"["):
            inner = pending if stack and stack[-1][0] is not None else (
                f"{stack[-1][1]}[]" if stack else path)
            stack.append(({} if c == b"{" else None, inner))
        elif stack:
            stack.pop()
        last = None


_NOT_FLAT = frozenset({dict, list, float})


def _has_float(value: Any) -> bool:
    """Whether orjson gave a float anywhere in ``value``."""
    t = type(value)
    if t is dict:
        values: Any = value.values()
    elif t is list:
        values = value
    else:
        return t is float
    if _NOT_FLAT.isdisjoint(map(type, values)):
        return False                        # the usual flat message: strings and integers
    for v in values:
        tv = type(v)
        if tv is float or ((tv is dict or tv is list) and _has_float(v)):
            return True
    return False


_PLAIN_EXP = 60      # a number within 10**±60 is written in plain digits; past it (1E+999999: no amount) as read


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise TypeError(f"{obj} is not a finite number")
        text = str(obj)
        if "E" in text and -_PLAIN_EXP <= obj.adjusted() <= _PLAIN_EXP:
            text = format(obj, "f")     # 1E+3 (read from 1e3, round(x, -2)) and 1E-7 as 1000 and 0.0000001
        return orjson.Fragment(text.encode("ascii"))
    if isinstance(obj, (tuple, frozenset, set)):
        return list(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def _find_bad(value: Any, path: str = "$") -> tuple[str, str] | None:
    """The JSON path and reason of the first value orjson cannot write."""
    if isinstance(value, float):
        return path, f"float {value!r}: money is Decimal, never float"
    if isinstance(value, Decimal):
        return None if value.is_finite() else (path, f"{value} is not a finite number")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{path}.{k}", f"object key {k!r} is not a string"
            bad = _find_bad(v, f"{path}.{k}")
            if bad:
                return bad
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            bad = _find_bad(v, f"{path}[{i}]")
            if bad:
                return bad
        return None
    if value is None or isinstance(value, (str, int, bool)):
        return None
    import datetime as _dt
    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        return None
    return path, f"cannot write {type(value).__name__} as JSON"


_PLAIN = frozenset({str, int, bool, type(None), Decimal})


def _plain(value: Any) -> bool:
    """Fast check (no paths built): True when every value is of a kind orjson writes as we want."""
    t = type(value)
    if t in _PLAIN:
        return t is not Decimal or value.is_finite()
    if t is dict:
        for k, v in value.items():
            if type(k) is not str:
                return False
            tv = type(v)
            if tv is str or tv is int or v is None:
                continue
            if not _plain(v):
                return False
        return True
    if t is list:
        return all(_plain(v) for v in value)
    return False


def dumps(value: Any) -> bytes:
    """Values to compact JSON bytes; raises FormatError naming the JSON path of a bad value."""
    bad = None if _plain(value) else _find_bad(value)
    if bad is not None:
        raise FormatError(f"cannot encode: {bad[1]}", field=bad[0],
                          hint="convert it to Decimal, str or int first")
    try:
        return orjson.dumps(value, default=_default, option=orjson.OPT_PASSTHROUGH_SUBCLASS)
    except orjson.JSONEncodeError as exc:
        if "64-bit" not in str(exc):
            raise FormatError(f"cannot encode: {exc}") from None
    try:  # rare: integers past 64 bits are written as pre-rendered fragments
        return orjson.dumps(_big_ints(value), default=_default, option=orjson.OPT_PASSTHROUGH_SUBCLASS)
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise FormatError(f"cannot encode: {exc}") from None


def _big_ints(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return orjson.Fragment(str(value).encode("ascii"))
    if isinstance(value, dict):
        return {k: _big_ints(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_big_ints(v) for v in value]
    return value


def json_path(parts: Any) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def load_schema(path: str | Path) -> Any:
    """Load and check a JSON Schema file; returns a validator.  Raises SpecError."""
    import jsonschema
    from jsonschema.validators import validator_for

    p = Path(path)
    try:
        text = read_bytes(p)        # as the configuration's version holds it (formats/versioned.py)
    except OSError as exc:
        raise SpecError(f"cannot read JSON Schema: {exc.strerror}", path=str(p),
                        hint="the path is relative to the route file that declares the format") from None
    try:
        schema = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        col = getattr(exc, "colno", None)
        raise SpecError(f"JSON Schema is not valid JSON: {getattr(exc, 'msg', exc)}", path=str(p),
                        line=line, col=col) from None
    cls = validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise SpecError(f"not a valid JSON Schema at {json_path(exc.path)}: {exc.message}", path=str(p)) from None
    _refuse_slow_patterns(schema, [], p)
    safe = jsonschema.validators.extend(cls, {"pattern": _pattern})
    return safe(schema, format_checker=cls.FORMAT_CHECKER)


MAX_SCHEMA_ERRORS = 100      # the errors of one message read to report the first (a body can hold a million)


def _refuse_slow_patterns(node: Any, at: list[Any], path: Path) -> None:
    """SpecError for a ``pattern`` (or a ``patternProperties`` name) that can take exponential time, by the
    rules of a route's ``matches()`` (dsl/regexsafe.py): ``^([a-zA-Z0-9]+\\s?)*$`` took 12 s on 29 characters."""
    from dsl.regexsafe import problem

    if isinstance(node, list):
        for i, v in enumerate(node):
            _refuse_slow_patterns(v, at + [i], path)
        return
    if not isinstance(node, dict):
        return
    found = [(at + ["pattern"], node["pattern"])] if isinstance(node.get("pattern"), str) else []
    if isinstance(node.get("patternProperties"), dict):
        found += [(at + ["patternProperties"], k) for k in node["patternProperties"]]
    for where, pattern in found:
        why = problem(pattern)
        if why is not None:
            raise SpecError(f"JSON Schema pattern {pattern!r} at {json_path(where)} {why}", path=str(path),
                            hint="a message's text is matched against it as it comes: write the pattern without "
                                 "a repeat inside a repeat or alternatives inside a repeat (see Regular "
                                 "expressions in docs/language.md)")
    for k, v in node.items():
        if k != "pattern":
            _refuse_slow_patterns(v, at + [k], path)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """The ``pattern`` keyword (as jsonschema's: ``re.search``), on a text of at most ``MAX_INPUT``
    characters: longer is a violation, never matched (nor quoted)."""
    from jsonschema.exceptions import ValidationError

    from dsl.regexsafe import MAX_INPUT

    if not validator.is_type(instance, "string"):
        return
    if len(instance) > MAX_INPUT:
        yield ValidationError(f"a text {len(instance):,} characters long, more than the {MAX_INPUT:,} a pattern is "
                              f"matched against ({pattern!r})")
    elif re.search(pattern, instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _validate(validator: Any, value: Any, what: str, classify: dict[str, str] | None = None) -> None:
    import itertools

    errors = sorted(itertools.islice(validator.iter_errors(value), MAX_SCHEMA_ERRORS + 1),
                    key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        more = (f" (and at least {MAX_SCHEMA_ERRORS} more)" if len(errors) > MAX_SCHEMA_ERRORS else
                f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
        # jsonschema quotes the instance ('4111...' is too long): never a classified value in clear
        message = mask_text(e.message, classified_values(value, classify, min_len=1)) if classify else e.message
        raise FormatError(f"{what} does not match the schema: {message}{more}",
                          field=json_path(e.absolute_path),
                          hint=f"schema rule {json_path(e.absolute_schema_path)}")


class JsonCodec:
    def __init__(self, *, schema: str | Path | None = None, name: str = "json",
                 classify: dict[str, str] | None = None) -> None:
        self.name = name
        self.classify = dict(classify or {})
        self.schema_path = str(schema) if schema else None
        self._validator = load_schema(schema) if schema else None

    def decode(self, data: bytes) -> Any:
        value = loads(data)
        if self._validator is not None:
            _validate(self._validator, value, "message", self.classify)
        return value

    def encode(self, value: Any) -> bytes:
        out = dumps(value)
        if self._validator is not None:
            # validate what the receiver will see (dates as strings, exact numbers)
            _validate(self._validator, loads(out), "message to send", self.classify)
        return out


def check(decl: Any, base_dir: Any = None) -> list[SpecError]:
    opts = getattr(decl, "options", None) or {}
    try:
        parse_spec(opts.get("classify"))
    except SpecError as exc:
        return [exc]
    schema = opts.get("schema")
    if schema is None:
        return []
    if base_dir is not None and not Path(schema).is_absolute():
        schema = Path(base_dir) / schema
    try:
        load_schema(schema)
    except SpecError as exc:
        return [exc]
    return []


def build(decl: Any) -> JsonCodec:
    opts = getattr(decl, "options", None) or {}
    return JsonCodec(schema=opts.get("schema"), name=getattr(decl, "name", "json"),
                     classify=parse_spec(opts.get("classify")))


def _schema_key(decl: Any, key: str) -> Any:
    schema = (getattr(decl, "options", None) or {}).get("schema")
    if not schema:
        return None
    try:
        return json.loads(read_bytes(schema)).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def fields(decl: Any, base_dir: Any = None) -> list[str] | None:
    props = _schema_key(decl, "properties")
    return sorted(props) if isinstance(props, dict) else None


def required(decl: Any, base_dir: Any = None) -> list[str] | None:
    """The schema's top-level ``required`` names (a message body must set each of them)."""
    names = _schema_key(decl, "required")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return names


COMPONENT = ComponentSpec(
    category="format",
    name="json",
    doc=("JSON messages. Numbers with a fraction decode to Decimal and Decimals encode with their exact "
         "digits (120.50 stays 120.50); dates encode as ISO 8601. Optional JSON Schema validation on "
         "decode and encode; errors name the JSON path."),
    options=(
        OptionSpec("schema", "path", "a JSON Schema file validated on decode and encode"),
        OptionSpec("classify", "list", 'classified fields: ["card.number:pan", "payer.name:personal"]'),
    ),
    build=build,
    check=check,
    fields=fields,
    required=required,
    positional="schema",           # `json "x.schema.json"` is `json schema "x.schema.json"` (docs/language.md)
    examples=('format BillerPost = json', 'format BillerPost = json schema "biller_post.schema.json"'),
)
