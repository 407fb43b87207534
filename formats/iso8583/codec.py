"""ISO 8583 codec compiled from an ``IsoSpec``: bytes <-> values.

Values (see docs/formats-iso8583.md)::

    {"t": "0200", "2": "4111111111111111", "4": "000000001000",
     "43": {"name": "...", "city": "...", "country": "NZ"},
     "55": {"9F02": "000000001000", "5F2A": "0554"}, "64": "80FB32F3FFFFFFFF"}

* ``"t"`` is the MTI (4 digits); data elements are keyed by their number as text.
* n / z / xn and text fields are ``str`` exactly as on the wire (amounts such as
  DE 4 stay digit strings: the exponent depends on the currency; see
  ``formats.iso8583.amounts``).  The encoder also takes a non-negative ``int`` for n.
* b fields are uppercase hex text; fields with ``subfields`` are dicts; ``tlv: ber``
  fields are ``{tag: hex value}``.
* the bitmap is not a value: the encoder derives it from the keys present.

With ``validate=True`` (the default) field contents are checked both ways (character
classes, ``format:`` dates/times and track 2; ``content.py``) and so are the spec's
per-MTI message rules (``rules.py``).  ``validate=False`` is the lenient reader/writer:
only the wire structure (lengths, digits for n, hex for b, ...) is enforced.

``decode`` returns an ``IsoMessage`` (a dict) whose ``classification`` maps the
present classified fields to their tags (``{"2": ("pan",), "35": ("pan", "secret")}``).

Each field is compiled once into a pair of closures, so decoding is a loop over
the bitmap's set bits with no per-field interpretation of the spec.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable

from formats.classify import strictest
from formats.errors import FormatError
from formats.iso8583.content import compile_content, date_filler
from formats.iso8583.fastfield import fast_field
from formats.iso8583.rules import BITS, check_message, compile_rule
from formats.iso8583.spec import IsoSpec, FieldSpec
from formats.iso8583.tlv import decode_tlv, encode_tlv

Decoder = Callable[[bytes, int], tuple[Any, int]]
Encoder = Callable[[Any], bytes]

_BITS = tuple(tuple(i for i in range(8) if b & (0x80 >> i)) for b in range(256))
# Track 2 uses a 4-bit character set: 0-9 and : ; < = > ? (nibbles A-F; '=' is the separator, D in BCD).
_Z_CHARS = frozenset("0123456789ABCDEF:;<=>?")
_Z_BCD = frozenset("0123456789ABCDEF")
_HEX = frozenset("0123456789abcdefABCDEF")
PLANS_MAX = 512         # bitmaps remembered per codec (a network uses a few dozen message shapes)


class IsoMessage(dict):
    """A decoded message: a plain dict plus the classification of its fields.

    ``classification`` is set by ``decode``: a read-only mapping shared by the
    messages of one bitmap; the class default is read-only and empty too.
    """

    classification: Any = MappingProxyType({})
    secondary_bitmap: bool = False   # the wire carried a secondary bitmap (even an all-zero one)

    def __reduce__(self) -> Any:     # copy / deepcopy / pickle: a plain dict for the classification
        return (IsoMessage, (dict(self),), {"classification": dict(self.classification),
                                            "secondary_bitmap": self.secondary_bitmap})


# ------------------------------------------------------------------ length prefixes

def _prefix_codec(f: FieldSpec, cp: str) -> tuple[int, Callable[[bytes, int], int], Callable[[int], bytes]]:
    digits = f.prefix or 0
    enc = f.length_encoding
    key = f.key
    if enc in ("ascii", "ebcdic"):
        size = digits
        codec = "ascii" if enc == "ascii" else cp

        def read(data: bytes, pos: int) -> int:
            raw = data[pos:pos + size]
            text = raw.decode(codec, "replace") if enc == "ebcdic" else raw.decode("latin-1")
            if len(raw) != size or not (text.isascii() and text.isdigit()):
                if len(raw) != size:
                    raise FormatError(f"message ends inside the {size}-digit length prefix", offset=pos, field=key)
                raise FormatError(f"length prefix {text!r} is not {size} digits", offset=pos, field=key)
            return int(text)

        def write(n: int) -> bytes:
            return str(n).zfill(size).encode(codec)
    elif enc == "bcd":
        size = (digits + 1) // 2
        right = f.length_pad == "right" and digits & 1

        def read(data: bytes, pos: int) -> int:
            raw = data[pos:pos + size]
            h = raw.hex()
            if right:
                if h[-1:] != "0":
                    raise FormatError(f"length prefix {h.upper()} should end in a 0 pad nibble", offset=pos,
                                      field=key)
                h = h[:-1]
            if len(raw) != size or not h.isdigit():
                if len(raw) != size:
                    raise FormatError(f"message ends inside the {size}-byte BCD length prefix", offset=pos,
                                      field=key)
                raise FormatError(f"length prefix {h.upper()} is not BCD digits", offset=pos, field=key)
            return int(h)

        def write(n: int) -> bytes:
            if right:
                return bytes.fromhex(str(n).zfill(digits) + "0")
            return bytes.fromhex(str(n).zfill(size * 2))
    elif enc == "hex":   # moov v0 "HEX" lengths: ASCII hex digits, as many as the max length needs (11 -> "B")
        size = len(f"{f.max:X}")

        def read(data: bytes, pos: int) -> int:
            raw = data[pos:pos + size]
            text = raw.decode("latin-1")
            if len(raw) != size or not _HEX.issuperset(text):
                if len(raw) != size:
                    raise FormatError(f"message ends inside the {size}-character hex length prefix", offset=pos,
                                      field=key)
                raise FormatError(f"length prefix {text!r} is not {size} hex digit{'s' if size > 1 else ''}",
                                  offset=pos, field=key)
            return int(text, 16)

        def write(n: int) -> bytes:
            return f"{n:0{size}X}".encode("ascii")
    else:  # binary
        size = 1 if digits == 2 else 2

        def read(data: bytes, pos: int) -> int:
            raw = data[pos:pos + size]
            if len(raw) != size:
                raise FormatError(f"message ends inside the {size}-byte binary length prefix", offset=pos,
                                  field=key)
            return int.from_bytes(raw, "big")

        def write(n: int) -> bytes:
            return n.to_bytes(size, "big")
    return size, read, write


# ------------------------------------------------------------------ field bodies

def _body_codec(f: FieldSpec, cp: str, validate: bool = True) -> tuple[Callable[[int], int], Callable[[bytes, int, int], Any],
                                                 Callable[[Any], tuple[int, bytes]]]:
    """Returns (wire_size(units), read(data, pos, units) -> value, write(value) -> (units, bytes))."""
    key = f.key
    t = f.type
    de = f.data_encoding
    fixed = f.length
    mx = f.max
    pad_left = f.pad == "left"
    # classified fields (pan, secret, personal): error texts (dead letters, logs) never quote the value,
    # only positions
    show = not f.classification
    hidden = "" if show else f" (value not shown: field {key} is classified {'/'.join(f.classification)})"
    content = compile_content(t, f.format, show) if validate else None

    def fit(text: str, what: str) -> str:
        n = len(text)
        if n > mx:
            raise FormatError(f"{what} is {n} long, at most {mx} allowed", field=key,
                              hint=f"shorten the value to {mx}")
        if fixed is not None and n < fixed:
            if t == "b":
                raise FormatError(f"needs exactly {fixed} bytes, got {n}", field=key)
            padc = "0" if t in ("n", "xn") else " "
            text = text.rjust(fixed, padc) if pad_left else text.ljust(fixed, padc)
        return text

    def to_text(value: Any) -> str:
        if isinstance(value, str):
            return value
        if t == "n" and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return str(value)
        raise FormatError(f"expected text for a type {t} field, got {type(value).__name__}", field=key)

    if t == "b":
        if de == "binary":
            def size(units: int) -> int:
                return units

            def read(data: bytes, pos: int, units: int) -> Any:
                return data[pos:pos + units].hex().upper()
        else:  # hex: two ASCII hex characters per byte
            def size(units: int) -> int:
                return units * 2

            def read(data: bytes, pos: int, units: int) -> Any:
                text = data[pos:pos + units * 2].decode("latin-1")
                if not _HEX.issuperset(text):
                    bad = next(i for i, c in enumerate(text) if c not in _HEX)
                    what = f"{text[bad]!r}" if show else f"character {bad + 1} of {len(text)}"
                    raise FormatError(f"{what} is not a hex digit{hidden}", offset=pos + bad, field=key)
                return text

        def write(value: Any) -> tuple[int, bytes]:
            if isinstance(value, (bytes, bytearray)):
                raw = bytes(value)
            elif isinstance(value, str):
                try:
                    raw = bytes.fromhex(value)
                except ValueError:
                    raise FormatError(f"{value!r} is not hex" if show else f"the value is not hex{hidden}", field=key,
                                      hint="binary fields are given as hex text, e.g. '80FB32F3FFFFFFFF'") from None
                if len(value) != 2 * len(raw):
                    raise FormatError(f"{value!r} is not plain hex" if show else f"the value is not plain hex{hidden}",
                                      field=key)
            else:
                raise FormatError(f"expected hex text for a binary field, got {type(value).__name__}", field=key)
            n = len(raw)
            if n > mx or (fixed is not None and n != fixed):
                need = f"exactly {fixed}" if fixed is not None else f"at most {mx}"
                raise FormatError(f"is {n} bytes, {need} allowed", field=key)
            if de == "binary":
                return n, raw
            text = value if isinstance(value, str) else raw.hex().upper()
            return n, text.encode("ascii")
        return size, read, write

    if de == "bcd":
        padn = "F" if t == "z" else "0"
        allowed = _Z_BCD if t == "z" else None

        def size(units: int) -> int:
            return (units + 1) // 2

        def read(data: bytes, pos: int, units: int) -> Any:
            h = data[pos:pos + (units + 1) // 2].hex().upper()
            if units & 1:
                if pad_left:
                    p, h = h[0], h[1:]
                else:
                    h, p = h[:-1], h[-1]
                if p != padn:
                    raise FormatError(f"BCD pad nibble is {p}, expected {padn}", offset=pos, field=key)
            if (h and not h.isdigit()) if allowed is None else not allowed.issuperset(h):
                ok = "0123456789" if allowed is None else allowed
                bad = next(i for i, c in enumerate(h) if c not in ok)
                at = pos + (bad + (units & 1 and pad_left)) // 2      # the byte holding the bad digit
                what = "a decimal digit" if allowed is None else "a track 2 nibble (0-9, D, A-F)"
                if show:
                    msg = f"BCD value {h}: digit {bad + 1} ({h[bad]}) is not {what}"
                else:
                    msg = f"BCD digit {bad + 1} of {len(h)} is not {what}{hidden}"
                raise FormatError(msg, offset=at, field=key)
            if allowed is not None:
                h = h.replace("D", "=")     # the 4-bit track separator, shown as on a card: '='
            if content is not None:
                bad = content(h)
                if bad is not None:
                    raise FormatError(bad[1] + hidden, offset=pos + (bad[0] + (units & 1 and pad_left)) // 2,
                                      field=key)
            return h

        def write(value: Any) -> tuple[int, bytes]:
            text = fit(to_text(value), "value")
            if t == "z":
                text = text.replace("=", "D")
                if not _Z_BCD.issuperset(text):
                    bad = next(i for i, c in enumerate(text) if c not in _Z_BCD)
                    what = f"track data {text!r}" if show else f"track data (character {bad + 1} of {len(text)})"
                    raise FormatError(f"{what} may hold only 0-9, '=' and A-F{hidden}", field=key)
            elif text and not (text.isascii() and text.isdigit()):
                bad = next((i for i, c in enumerate(text) if not ("0" <= c <= "9")), 0)
                raise FormatError(f"{text!r} is not digits" if show else
                                  f"character {bad + 1} of {len(text)} is not a digit{hidden}", field=key)
            if content is not None:
                bad = content(text.replace("D", "=") if t == "z" else text)
                if bad is not None:
                    raise FormatError(bad[1] + hidden, field=key)
            n = len(text)
            h = text
            if n & 1:
                h = padn + h if pad_left else h + padn
            return n, bytes.fromhex(h)
        return size, read, write

    codec = "ascii" if de == "ascii" else cp
    wire_extra = 1 if t == "xn" else 0

    def size(units: int) -> int:
        return units + wire_extra

    if t == "n":
        def check(text: str, pos: int) -> None:
            if text and not (text.isascii() and text.isdigit()):
                bad = next((i for i, c in enumerate(text) if not ("0" <= c <= "9")), 0)
                what = f"{text[bad]!r} in {text!r}" if show else f"character {bad + 1} of {len(text)}"
                raise FormatError(f"{what} is not a digit (type n){hidden}", offset=pos + bad, field=key)
    elif t == "z":
        def check(text: str, pos: int) -> None:
            if not _Z_CHARS.issuperset(text):
                bad = next(i for i, c in enumerate(text) if c not in _Z_CHARS)
                what = f"{text[bad]!r}" if show else f"character {bad + 1} of {len(text)}"
                raise FormatError(f"{what} is not allowed in track 2 data (0-9, '=', A-F, :;<>?){hidden}",
                                  offset=pos + bad, field=key)
    elif t == "xn":
        def check(text: str, pos: int) -> None:
            if not text or text[0] not in "CD" or not (text[1:].isascii() and text[1:].isdigit()):
                what = f"{text!r}" if show else "the value"
                raise FormatError(f"{what} is not C/D followed by digits (type x+n){hidden}", offset=pos, field=key)
    else:
        check = None  # type: ignore[assignment]
    if content is not None:
        shape = check

        def check(text: str, pos: int) -> None:  # noqa: F811
            if shape is not None:
                shape(text, pos)
            bad = content(text)
            if bad is not None:
                raise FormatError(bad[1] + hidden, offset=pos + bad[0], field=key)

    text_codec = "latin-1" if codec == "ascii" else codec

    def read(data: bytes, pos: int, units: int) -> Any:
        text = data[pos:pos + units + wire_extra].decode(text_codec)
        if check is not None:
            check(text, pos)
        return text

    def write(value: Any) -> tuple[int, bytes]:
        text = to_text(value)
        if t == "xn":
            body = fit(text[1:], "value")
            text = text[:1] + body
        else:
            text = fit(text, "value")
        if check is not None:
            try:
                check(text, 0)
            except FormatError as exc:
                raise FormatError(exc.message, field=key) from None
        try:
            raw = text.encode(text_codec)
        except UnicodeEncodeError as exc:
            what = f"character {text[exc.start]!r}" if show else f"character {exc.start + 1} of {len(text)}"
            raise FormatError(f"{what} cannot be written in {codec}{hidden}", field=key,
                              hint="the field's data_encoding limits the characters it can carry") from None
        return len(text) - wire_extra, raw
    return size, read, write


def compile_field(f: FieldSpec, cp: str, validate: bool = True) -> tuple[Decoder, Encoder]:
    size, read_body, write_body = _body_codec(f, cp, validate)
    key = f.key
    mx = f.max
    fixed = f.length
    subs = f.subfields
    tlv = f.tlv == "ber"
    hex_wire = f.data_encoding == "hex"

    if fixed is not None:
        nbytes = size(fixed)

        def dec(data: bytes, pos: int) -> tuple[Any, int]:
            end = pos + nbytes
            if end > len(data):
                raise FormatError(f"message ends inside the field: it needs {nbytes} bytes, {len(data) - pos} left",
                                  offset=pos, field=key)
            return read_body(data, pos, fixed), end

        def enc(value: Any) -> bytes:
            return write_body(value)[1]
    else:
        psize, read_len, write_len = _prefix_codec(f, cp)

        def dec(data: bytes, pos: int) -> tuple[Any, int]:
            units = read_len(data, pos)
            if units > mx:
                raise FormatError(f"length prefix says {units}, the field allows at most {mx}", offset=pos,
                                  field=key)
            start = pos + psize
            end = start + size(units)
            if end > len(data):
                raise FormatError(f"length prefix says {units}, but only {len(data) - start} bytes are left",
                                  offset=pos, field=key)
            return read_body(data, start, units), end

        def enc(value: Any) -> bytes:
            units, raw = write_body(value)
            return write_len(units) + raw

    if subs:
        inner_dec, inner_enc = dec, enc

        def dec(data: bytes, pos: int) -> tuple[Any, int]:  # noqa: F811
            text, end = inner_dec(data, pos)
            out: dict[str, str] = {}
            i = 0
            for s in subs:
                if i >= len(text):
                    break
                out[s.name] = text[i:i + s.length]
                i += s.length
            if i < len(text):
                raise FormatError(f"{len(text) - i} characters follow the last subfield", offset=pos, field=key)
            return out, end

        names = [s.name for s in subs]

        def enc(value: Any) -> bytes:  # noqa: F811
            if isinstance(value, str):
                return inner_enc(value)
            if not isinstance(value, dict):
                raise FormatError(f"expected a mapping of subfields ({', '.join(names)})", field=key)
            unknown = [k for k in value if k not in names]
            if unknown:
                raise FormatError(f"unknown subfield {unknown[0]!r}", field=f"{key}.{unknown[0]}",
                                  hint=f"subfields are {', '.join(names)}")
            parts = []
            last = max((names.index(k) for k in value), default=-1)
            for s in subs[:last + 1]:
                v = value.get(s.name, "")
                if not isinstance(v, str):
                    raise FormatError("expected text", field=f"{key}.{s.name}")
                if len(v) > s.length:
                    raise FormatError(f"is {len(v)} long, the subfield holds {s.length}", field=f"{key}.{s.name}")
                parts.append(v.ljust(s.length) if fixed is not None or s is not subs[last] else v)
            return inner_enc("".join(parts))

    if tlv:
        inner_dec2, inner_enc2 = dec, enc
        pfx = 0 if fixed is not None else _prefix_codec(f, cp)[0]

        def dec(data: bytes, pos: int) -> tuple[Any, int]:  # noqa: F811
            hx, end = inner_dec2(data, pos)
            body_start = pos + pfx
            if hex_wire:
                return decode_tlv(bytes.fromhex(hx), base=body_start, field=key), end
            return decode_tlv(data[body_start:end], base=body_start, field=key), end

        def enc(value: Any) -> bytes:  # noqa: F811
            if isinstance(value, str):
                return inner_enc2(value)
            return inner_enc2(encode_tlv(value, field=key))

    return fast_field(f, cp, validate, dec, enc) or (dec, enc)


# ------------------------------------------------------------------ the codec

class Iso8583Codec:
    """Decode and encode ISO 8583 messages as described by one ``IsoSpec``.

    ``validate`` (default True): check field contents and the spec's per-MTI message
    rules on decode and encode; False gives a lenient reader/writer (wire structure only).

    Per message the work is a loop over a *plan*: the bitmap bytes seen before map
    (bounded memo) to the fields they announce, each with its compiled decoder, the
    mask of present fields (message rules are bitmask tests, ``rules.compile_rule``)
    and their classification.  A bitmap not seen before is read by the general code,
    which raises the errors.
    """

    def __init__(self, spec: IsoSpec, name: str | None = None, validate: bool = True) -> None:
        self.spec = spec
        self.name = name or spec.name
        self.validate = validate
        cp = spec.ebcdic_codepage
        self._cp = cp
        self._dec: list[Decoder | None] = [None] * 193
        self._enc: dict[str, tuple[int, Encoder]] = {}
        for no, f in spec.fields.items():
            d, e = compile_field(f, cp, validate)
            self._dec[no] = d
            self._enc[f.key] = (no, e)
        self._keys = [str(i) for i in range(193)]
        self._classes = spec.classification()
        self._rules = spec.messages if validate else {}
        self._fast_rules = {mti: compile_rule(r) for mti, r in self._rules.items()}
        self._mti_size = 2 if spec.mti in ("bcd", "binary") else 4
        self._bm_size = 16 if spec.bitmap in ("hex", "ebcdic") else 8
        self._plans: dict[bytes, Any] = {}
        self._eplans: dict[tuple, Any] = {}     # the keys of a values dict -> how to encode it

    def classification_tags(self) -> dict[str, str]:
        """{field: tag} for formats.classify: a field with several tags gets the strictest."""
        return {key: strictest(tags) for key, tags in self._classes.items() if tags}

    def lenient(self) -> "Iso8583Codec":
        """The same spec without content and message-rule checks (``validate = false``)."""
        return self if not self.validate else Iso8583Codec(self.spec, self.name, validate=False)

    mac: Any = None          # a ``macs.MacPolicy`` when MACs are on (``MacIso8583Codec``)

    def with_mac(self, policy: Any) -> "Iso8583Codec":
        """This codec with message MACs on (``formats.iso8583.macs.MacPolicy``); shares the compiled spec."""
        return MacIso8583Codec.wrap(self, policy)

    def without_mac(self) -> "Iso8583Codec":
        """The codec without MAC checks (a MUX reads the match key of an answer whose MAC is wrong)."""
        return self

    def mask_filler(self, key: str, value: Any) -> str | None:
        """A value for field ``key`` of ``value``'s length that carries nothing of it, for a masked capture
        whose field cannot hold the mask text (``***`` in a PIN block): ``b`` fields 0xFF bytes (as hex
        text, the usual filler of binary data), ``n`` fields zeros; None for the others (text fields hold
        ``***``; track 2 data has a layout a filler would break).  An ``n`` field with a date layout
        (DE 14 ``YYMM``) gets that layout's smallest valid value (``0001``), which zeros would not be."""
        item = self._enc.get(key)
        f = self.spec.fields.get(item[0]) if item is not None else None
        if f is None or f.key != key or isinstance(value, bool) or not isinstance(value, (str, int)):
            return None
        text = str(value)
        if f.type == "b":
            return "F" * len(text)
        if f.type == "n":
            dated = date_filler(f.format) if f.format and f.format != "track2" else None
            return dated if dated is not None and len(dated) == len(text) else "0" * len(text)
        return None

    def mac_fields(self, message: Any = None) -> tuple[str, ...]:
        """The fields that carry a message MAC (``"64"``, ``"128"``), of ``message`` (decoded values) when
        given: none when MACs are off or its MTI is in ``mac_exempt``."""
        return ()

    # -------------------------------------------------------------- decode
    def decode(self, data: bytes) -> IsoMessage:
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise FormatError(f"expected bytes, got {type(data).__name__}")
            data = bytes(data)
        ms = self._mti_size
        if self.spec.mti == "ascii":
            raw = data[:4]
            if len(raw) == 4 and raw.isdigit():
                mti = raw.decode("ascii")
            else:
                mti = self._read_mti(data)
        else:
            mti = self._read_mti(data)
        bs = self._bm_size
        plans = self._plans
        plan = plans.get(data[ms:ms + bs])
        if plan is True:                   # a secondary bitmap follows: the plan is keyed by both
            plan = plans.get(data[ms:ms + 2 * bs])
            if plan is True:               # the message ends inside its secondary bitmap
                plan = None
        if plan is None:
            try:
                plan = self._plan(data)
            except FormatError as exc:      # the MTI was read: an error answer can name it
                exc.partial = IsoMessage(t=mti)
                raise
        pos, fields, present, secondary, classes = plan
        msg = IsoMessage()
        msg["t"] = mti
        if secondary:
            msg.secondary_bitmap = True
        key = "bitmap"
        try:
            for key, dec in fields:
                msg[key], pos = dec(data, pos)
        except FormatError as exc:
            exc.partial = self._partial(data, msg, exc)
            raise
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            err = FormatError(f"cannot decode: {exc}", offset=pos, field=key)
            err.partial = msg
            raise err from None
        if pos != len(data):
            last = next(reversed(msg))
            where = f"field {last}, the last one in the bitmap" if last != "t" else "the bitmap (no fields set)"
            err = FormatError(f"{len(data) - pos} bytes left over after {where}", offset=pos,
                              field=last if last != "t" else "bitmap",
                              hint="the bitmap or a length prefix does not match the data")
            err.partial = msg
            raise err
        if self._rules:
            rule = self._rules.get(mti)
            if rule is not None:
                fast = self._fast_rules[mti]
                if fast is None or not fast(present, msg):
                    try:
                        check_message(msg, rule, self.spec, offset=ms)
                    except FormatError as exc:
                        exc.partial = msg
                        raise
        if classes is not None:
            msg.classification = classes
        return msg

    def _partial(self, data: bytes, read: IsoMessage, exc: FormatError) -> IsoMessage:
        """What an error answer may echo of a message whose field ``exc.field`` failed: the fields read before
        it (``read``); when only its content was wrong (a date out of range, a bad track 2 character) and the
        wire structure holds, every field the lenient reader gets, but the bad one (a reply echoing it could
        not be encoded)."""
        if not self.validate:
            return read
        try:
            whole = self._lenient_self().decode(data)
        except FormatError:
            return read
        bad = (exc.field or "").split(".", 1)[0]
        whole.pop(bad, None)
        return whole

    def _lenient_self(self) -> "Iso8583Codec":
        lenient = self.__dict__.get("_lenient_codec")
        if lenient is None:
            lenient = self.__dict__["_lenient_codec"] = Iso8583Codec(self.spec, self.name, validate=False)
        return lenient

    def _plan(self, data: bytes) -> tuple[int, tuple[tuple[str, Decoder], ...], int, bool,
                                          tuple[tuple[str, tuple[str, ...]], ...] | None]:
        """Read the bitmap(s) of ``data`` (raising on a bad one) into a plan; memoized by bitmap bytes."""
        ms = self._mti_size
        pos = ms
        bitmap, pos = self._read_bitmap(data, pos, 1)
        nbytes = 8
        secondary = False
        if bitmap[0] & 0x80:
            if not self.spec.secondary_bitmap:
                raise FormatError(f"bit 1 announces a secondary bitmap, but spec {self.spec.name} has none",
                                  offset=ms, field="bitmap")
            second, pos = self._read_bitmap(data, pos, 2)
            bitmap += second
            nbytes = 16
            secondary = True
            if second[0] & 0x80 and self.spec.tertiary_bitmap:
                third, pos = self._read_bitmap(data, pos, 3)
                bitmap += third
                nbytes = 24
        decs = self._dec
        keys = self._keys
        tertiary = nbytes == 24
        fields: list[tuple[str, Decoder]] = []
        for i in range(nbytes):
            byte = bitmap[i]
            if not byte:
                continue
            base = i * 8 + 1
            for b in _BITS[byte]:
                no = base + b
                if no == 1 or (no == 65 and tertiary):
                    continue
                dec = decs[no]
                if dec is None:
                    raise FormatError(f"bit {no} is set, but spec {self.spec.name} defines no field {no}",
                                      offset=ms, field="bitmap",
                                      hint=f"add field {no} to the spec or check the sender's bitmap")
                fields.append((keys[no], dec))
        present = int.from_bytes(bitmap, "big") << (BITS - 8 * nbytes)
        present &= ~(1 << (BITS - 1))
        if tertiary:
            present &= ~(1 << (BITS - 65))
        names = {k for k, _ in fields}
        # one read-only mapping per plan, shared by the messages decoded with it
        classes = MappingProxyType({k: c for k, c in self._classes.items() if k in names}) \
            if self._classes else None
        plan = (pos, tuple(fields), present, secondary, classes)
        plans = self._plans
        if len(plans) < PLANS_MAX and not tertiary:
            bs = self._bm_size
            if secondary:
                plans[data[ms:ms + bs]] = True
                plans[data[ms:ms + 2 * bs]] = plan
            else:
                plans[data[ms:ms + bs]] = plan
        return plan

    def _read_mti(self, data: bytes) -> str:
        raw = data[:self._mti_size]
        if len(raw) < self._mti_size:
            raise FormatError(f"message of {len(data)} bytes is too short for the MTI", offset=0, field="t")
        mode = self.spec.mti
        if mode == "ascii":
            text = raw.decode("latin-1")
        elif mode == "ebcdic":
            text = raw.decode(self._cp)
        else:
            text = raw.hex().upper()
        if not (text.isascii() and text.isdigit()):
            raise FormatError(f"MTI {text!r} is not 4 digits ({mode})", offset=0, field="t")
        return text

    def _read_bitmap(self, data: bytes, pos: int, which: int) -> tuple[bytes, int]:
        name = ("primary", "secondary", "tertiary")[which - 1]
        size = self._bm_size
        raw = data[pos:pos + size]
        if len(raw) < size:
            raise FormatError(f"message ends inside the {name} bitmap", offset=pos, field="bitmap")
        if size == 8:
            return raw, pos + 8
        text = raw.decode("latin-1") if self.spec.bitmap == "hex" else raw.decode(self._cp)
        if not _HEX.issuperset(text):
            bad = next(i for i, c in enumerate(text) if c not in _HEX)
            raise FormatError(f"{name} bitmap {text!r} is not 16 hex digits", offset=pos + bad, field="bitmap")
        return bytes.fromhex(text), pos + 16

    # -------------------------------------------------------------- encode
    def encode(self, values: Any) -> bytes:
        if not isinstance(values, dict):
            raise FormatError(f"expected a mapping of field -> value, got {type(values).__name__}")
        mti = values.get("t")
        if type(mti) is not str or len(mti) != 4 or not (mti.isascii() and mti.isdigit()):
            raise FormatError(f"MTI must be 4 digits, got {mti!r}", field="t",
                              hint='set "t", e.g. "t": "0200"')
        plan = self._eplans.get(tuple(values))
        if plan is None or (type(values) is not dict and getattr(values, "secondary_bitmap", False)):
            return self._encode_general(values, mti)
        mask, heads, fields = plan
        try:
            parts = [e(values[k]) for k, e in fields]
        except FormatError:
            if None in values.values():      # None means "absent": the general path skips it
                return self._encode_general(values, mti)
            raise
        head = heads.get(mti)
        if head is None or self._rules:
            rule = self._rules.get(mti) if self._rules else None
            if rule is not None:
                fast = self._fast_rules[mti]
                if fast is None or not fast(mask, values):
                    check_message(values, rule, self.spec)
            if head is None:
                return self._encode_general(values, mti)     # learns this MTI's header
        return head + b"".join(parts)

    def _encode_general(self, values: Any, mti: str) -> bytes:
        parts: dict[int, bytes] = {}
        enc = self._enc
        for key, value in values.items():
            if key == "t":
                continue
            item = enc.get(key)
            if item is None:
                item = enc.get(str(key)) if not isinstance(key, str) else None
                if item is None:
                    raise FormatError(f"spec {self.spec.name} has no field {key}", field=str(key),
                                      hint="keys are 't' and field numbers as text: '2', '3', ...")
            if value is None:
                continue
            no, e = item
            parts[no] = e(value)
        nos = sorted(parts)
        top = nos[-1] if nos else 0
        spec = self.spec
        if top > 128:
            size = 24
        elif top > 64 or spec.secondary_always or getattr(values, "secondary_bitmap", False):
            size = 16
        else:
            size = 8
        bm = 0
        for no in nos:
            bm |= 1 << (BITS - no)
        mask = bm
        if self._rules:
            rule = self._rules.get(mti)
            if rule is not None:
                fast = self._fast_rules[mti]
                if fast is None or not fast(bm, values):
                    check_message(values, rule, self.spec)
        if size > 8:
            bm |= 1 << (BITS - 1)
        if size > 16:
            bm |= 1 << (BITS - 65)
        bm_bytes = (bm >> (BITS - 8 * size)).to_bytes(size, "big")
        mode = spec.mti
        if mode == "ascii":
            out = [mti.encode("ascii")]
        elif mode == "ebcdic":
            out = [mti.encode(self._cp)]
        else:
            out = [bytes.fromhex(mti)]
        if spec.bitmap == "binary":
            out.append(bm_bytes)
        elif spec.bitmap == "hex":
            out.append(bm_bytes.hex().upper().encode("ascii"))
        else:
            out.append(bm_bytes.hex().upper().encode(self._cp))
        head = b"".join(out)
        out.append(b"".join([parts[no] for no in nos]))
        if len(nos) == len(values) - 1 and not getattr(values, "secondary_bitmap", False):
            # every key but "t" is a field with a value: remember the order, the mask and the header
            keys = tuple(values)
            plan = self._eplans.get(keys)
            if plan is not None:
                if len(plan[1]) < 16:
                    plan[1][mti] = head
            elif len(self._eplans) < PLANS_MAX and all(type(k) is str for k in keys):
                order = sorted((enc[k][0], k, enc[k][1]) for k in keys if k != "t")
                self._eplans[keys] = (mask, {mti: head}, tuple((k, e) for _, k, e in order))
        return b"".join(out)

    def fields(self) -> list[str]:
        return ["t"] + [f.key for f in sorted(self.spec.fields.values(), key=lambda f: f.number)]


# ------------------------------------------------------------------ MACs (DE 64 / DE 128)

class MacIso8583Codec(Iso8583Codec):
    """An ``Iso8583Codec`` with message MACs on (``formats.iso8583.macs``; docs/formats-iso8583.md).

    ``decode`` verifies the MAC of every message whose MTI is not exempt before it
    reads the fields (a missing or wrong MAC raises ``MacError``, a ``FormatError``);
    ``encode`` sets the MAC field's bit and writes the MAC over the bytes before it,
    replacing whatever value was given for it.  Made by ``Iso8583Codec.with_mac``.
    """

    mac: Any

    @classmethod
    def wrap(cls, codec: Iso8583Codec, policy: Any) -> "MacIso8583Codec":
        plain = codec.without_mac()
        out = cls.__new__(cls)
        out.__dict__.update(plain.__dict__)
        out.mac = policy
        out._plain = plain
        return out

    def without_mac(self) -> Iso8583Codec:
        return self._plain

    def mac_fields(self, message: Any = None) -> tuple[str, ...]:
        pol = self.mac
        if isinstance(message, dict) and message.get("t") in pol.exempt:
            return ()
        return (str(pol.fixed),) if pol.fixed is not None else tuple(str(n) for n in sorted(pol.slots))

    def lenient(self) -> "Iso8583Codec":
        return self if not self.validate else MacIso8583Codec.wrap(self._plain.lenient(), self.mac)

    def decode(self, data: bytes) -> IsoMessage:
        if type(data) is not bytes and isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if type(data) is bytes:
            mti = self._read_mti(data)
            if mti not in self.mac.exempt:
                self._verify_mac(data, mti)
        return Iso8583Codec.decode(self, data)

    def _verify_mac(self, data: bytes, mti: str) -> None:
        from formats.mac import MacError
        ms, bs = self._mti_size, self._bm_size
        plan = self._plans.get(data[ms:ms + bs])
        if plan is True:
            plan = self._plans.get(data[ms:ms + 2 * bs])
        if plan is None or plan is True:
            plan = self._plan(data)
        start_of_fields, fields, _present, secondary, _classes = plan
        pol = self.mac
        slot = pol.slot(secondary)
        key = slot.key
        last = fields[-1][0] if fields else None
        if last != key:
            if any(k == key for k, _ in fields):
                raise MacError(f"MTI {mti}: field {key} carries the MAC and must be the message's last field, "
                               f"but field {last} follows it", offset=ms, field=key)
            other = [k for k, _ in fields if k in ("64", "128")]
            raise MacError(f"MTI {mti}: the MAC (field {key}) is missing; format {self.name} verifies a "
                           f"{pol.algorithm} MAC on every message whose MTI is not in mac_exempt"
                           + (f" (the message carries field {other[0]} instead)" if other else ""),
                           offset=ms, field=key,
                           hint="the sender must MAC this message with the shared key"
                           + ("" if pol.fixed else "; by the convention the MAC is field 64 without a "
                              "secondary bitmap, 128 with one"))
        start = len(data) - slot.wire
        mac = slot.read(data[start:]) if start >= start_of_fields else None
        if mac is None or not pol.verify(data[:start], mac):
            raise MacError(f"MTI {mti}: the MAC in field {key} does not verify ({pol.algorithm} over bytes 0-"
                           f"{max(start - 1, 0)}): the message was changed on the way, or MAC'd with another key",
                           offset=max(start, 0), field=key)

    def encode(self, values: Any) -> bytes:
        pol = self.mac
        if not isinstance(values, dict) or values.get("t") in pol.exempt:
            return Iso8583Codec.encode(self, values)
        from formats.mac import MacError
        enc = self._enc
        top = 0
        for k, v in values.items():
            if k == "t" or k == "64" or k == "128" or v is None:
                continue
            item = enc.get(k)
            if item is not None and item[0] > top:
                top = item[0]
        secondary = top > 64 or self.spec.secondary_always or bool(getattr(values, "secondary_bitmap", False))
        slot = pol.slot(secondary)
        if top > slot.number:
            raise MacError(f"field {top} would follow the MAC field {slot.number}; the MAC is the message's "
                           f"last field", field=str(top),
                           hint="leave mac_field out (the MAC then goes to field 128 when fields 65-128 are "
                                "present)" if pol.fixed == 64 else None)
        drop = (slot.key,) if pol.fixed is not None else ("64", "128")
        new = IsoMessage() if isinstance(values, IsoMessage) else {}
        if isinstance(values, IsoMessage):
            new.secondary_bitmap = values.secondary_bitmap
        for k, v in values.items():
            if k not in drop:
                new[k] = v
        new[slot.key] = slot.placeholder
        data = Iso8583Codec.encode(self, new)
        start = len(data) - slot.wire
        if data[start:] != slot.wire_bytes(bytes(slot.length)):     # cannot happen: the MAC field is last
            raise MacError(f"field {slot.key} did not come out as the message's last field", field=slot.key)
        return data[:start] + slot.wire_bytes(pol.compute(data[:start], slot.length))
