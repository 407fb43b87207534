"""Sans-IO framers: bytes in, complete frames out; payload in, framed bytes out.

A framer never touches a socket (h11 style): the channel feeds it whatever
``receive_some`` returned and writes whatever ``frame`` returned.  That keeps
framing testable byte by byte and reusable by record/replay.

Every framer has the same surface:

    feed(data) -> list[bytes]   complete frames (messages without header), in order
    frame(payload) -> bytes     the payload with its framing (and header) added
    buffered                    bytes held waiting for the rest of a frame
    missing                     the most bytes that can be read without passing the end of the
                                frame held (0: none held; None: not known, ``eof`` framing)
    eof() -> list[bytes]        call when the peer closed: the frame completed by the
                                close (``eof`` framing only, else []); raises if a
                                partial frame is held
    headers                     the fixed headers read, oldest first (``header_size``)

and raises ``FramingError`` (a ``FormatError``) naming the byte offset in the
stream and the declared limit.  When good frames precede the bad one in the
same chunk, ``feed`` returns them and leaves the error in ``error`` (check it
after each feed); it is raised by the next ``feed``/``eof``.  After an error
the stream is out of step and the connection must be closed.

Kinds (``framing =`` in a route file):

    length2 length4            binary big-endian length prefix (2 or 4 bytes)
    length2le length4le        binary little-endian length prefix
    ascii2 .. ascii6           N ASCII decimal digits ("0123")
    bcd2 bcd4                  packed BCD, 2 bytes = 4 digits
    delimiter                  frames end with ``delimiter`` (default LF); optional ``escape`` byte
    fixed                      every frame is ``frame_size`` bytes
    eof                        one message per connection: everything up to the peer's close

Length prefixes count the header and the message; with
``length_includes_prefix`` they count the prefix too.  A fixed header of
``header_size`` bytes (e.g. a 5-byte ISO 8583 TPDU) sits after the length
prefix (first in the frame for the other kinds).  ``echo_header`` (the
listening side): a reply is written with the header of the request it answers
(``skip_reply`` drops the header of a request answered with nothing).
Otherwise (the calling side) every frame starts with ``header`` (hex option,
default zero bytes).

Delimiter escaping: without ``escape`` a payload containing the delimiter
cannot be sent (FramingError).  With ``escape`` (one byte, e.g. DLE 0x10),
``frame`` puts the escape byte before every escape byte and before the first
byte of every delimiter occurrence in the payload; ``feed`` takes the byte
after an escape byte literally.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable

from formats.component import OptionSpec
from formats.errors import FormatError

DEFAULT_MAX_FRAME = 1 << 20


MALFORMED, CLOSED, STALLED = "malformed", "closed", "stalled"     # FramingError.kind


class FramingError(FormatError):
    """A bad, oversized or truncated frame.  ``offset`` is the stream offset of the frame's first byte.
    ``kind``: ``malformed`` (the bytes are not a frame of this framing, or too big), ``closed`` (the connection
    closed inside a frame), ``stalled`` (a frame not completed in time: ``Framer.fail`` from a timeout);
    a channel's fault log counts each kind apart (engine.channels.base.framing_fault)."""

    def __init__(self, message: str, *, kind: str = MALFORMED, **where: Any) -> None:
        super().__init__(message, **where)
        self.kind = kind


class FramingConfigError(ValueError):
    """Framing options that cannot work together; the message names channel and option."""


class Framer:
    """Base class: keeps the buffer, the stream offset and the headers; subclasses split frames."""

    name = "framer"
    header_size = 0

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, *, header_size: int = 0,
                 header: bytes | None = None, echo_header: bool = False, swap_header: bool = False) -> None:
        if max_frame <= 0:
            raise ValueError(f"max_frame must be a positive byte count, got {max_frame}")
        if header_size < 0:
            raise ValueError(f"header_size must be 0 or more bytes, got {header_size}")
        if header is not None and len(header) != header_size:
            raise ValueError(f"header is {len(header)} byte(s) but header_size is {header_size}")
        self.max_frame = max_frame
        self.header_size = header_size
        self.default_header = header if header is not None else bytes(header_size)
        if swap_header and header_size != 5:
            raise ValueError(f"header_reply = swap is for a 5-byte TPDU; header_size is {header_size}")
        self.echo_header = echo_header
        self.swap_header = swap_header
        # echo: one per request until its reply takes it; otherwise only the latest few are kept
        # (a calling channel's replies carry headers nobody takes: an unbounded deque would grow)
        self.headers: deque[bytes] = deque() if echo_header else deque(maxlen=64)
        self._buf = bytearray()
        self._offset = 0          # stream offset of _buf[0]
        self._error: FramingError | None = None

    @property
    def error(self) -> FramingError | None:
        """The framing error met so far, if any (the stream is then unusable)."""
        return self._error

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def missing(self) -> int | None:
        """The most bytes a reader may take without reading past the end of the frame held: 0 when
        nothing is held (a frame boundary), None when the framing cannot tell (``eof``).  A channel
        that stops reading at a frame boundary (a retired connection) reads at most this much."""
        return 1 if self._buf else 0

    @property
    def offset(self) -> int:
        """Stream offset of the next byte not yet returned in a frame."""
        return self._offset

    def feed(self, data: bytes) -> list[bytes]:
        if self._error is not None:
            raise self._error
        self._buf += data
        frames: list[bytes] = []
        try:
            self._split(frames)
        except FramingError as exc:
            self._error = exc
            if not frames:
                raise
        return frames

    def eof(self, source: str = "connection") -> list[bytes]:
        """``source="file"``: the stream was a file (``bsp decode --framing``), and a torn frame
        says so, with what its prefix claims, instead of blaming a peer."""
        if self._error is not None:
            raise self._error
        if self._buf and source == "file":
            raise FramingError(self._file_ends(), offset=self._offset,
                               hint="the file is cut short, or it uses another framing (--framing)")
        if self._buf:
            raise FramingError(
                f"connection closed inside a frame: {len(self._buf)} byte(s) of an unfinished "
                f"{self.name} frame are buffered",
                kind=CLOSED, offset=self._offset,
                hint=self._stranger() or "the peer closed the connection before sending the whole frame",
            )
        return []

    def _stranger(self) -> str | None:
        """At the start of a stream, bytes that are another protocol's opening: say which."""
        if self._offset:
            return None
        head = bytes(self._buf[:5])
        if len(head) >= 3 and head[0] == 0x16 and head[1] == 0x03 and head[2] <= 0x04:
            return ("the peer speaks TLS (this is a TLS ClientHello): give the channel cert and key, "
                    "or have the peer connect without TLS")
        if head.startswith((b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELET", b"PATCH", b"OPTIO", b"PRI *")):
            return "the peer speaks HTTP: point it at an http listen channel, or fix its address"
        return None

    def _file_ends(self) -> str:
        return (f"the file ends inside a frame: {len(self._buf)} byte(s) of an unfinished {self.name} frame "
                f"from byte {self._offset}")

    def frame(self, payload: bytes) -> bytes:
        return self._wrap(self._header_out() + payload, len(payload))

    def frame_many(self, payloads: list[bytes]) -> bytes:
        """All payloads framed into one buffer (one ``send_all`` for a batch)."""
        return b"".join([self.frame(p) for p in payloads])

    def fail(self, message: str, hint: str | None = None, kind: str = MALFORMED) -> FramingError:
        """Put the stream in error from outside (e.g. an idle timeout inside a frame: ``kind`` stalled);
        returns the error."""
        if self._error is None:
            self._error = FramingError(message, kind=kind, offset=self._offset, hint=hint)
        return self._error

    def skip_reply(self) -> None:
        """The oldest request got no reply: forget its header."""
        if self.echo_header and self.headers:
            self.headers.popleft()

    # -- for subclasses ------------------------------------------------------
    def _header_out(self) -> bytes:
        if not self.header_size:
            return b""
        if self.echo_header and self.headers:
            h = self.headers.popleft()
            # a TPDU answered: its destination and originator addresses change places
            return h[:1] + h[3:5] + h[1:3] if self.swap_header else h
        return self.default_header

    def _message(self, body: bytes, frames: list[bytes]) -> None:
        """``body`` is header + message: keep the header, hand out the message."""
        hs = self.header_size
        if hs:
            if len(body) < hs:
                raise FramingError(
                    f"{self.name} frame of {len(body)} byte(s) is shorter than its {hs}-byte header",
                    offset=self._offset, hint="check header_size against what the peer sends")
            self.headers.append(bytes(body[:hs]))
            frames.append(bytes(body[hs:]))
        else:
            frames.append(bytes(body))

    def _too_big(self, payload_len: int) -> FramingError:
        return FramingError(
            f"cannot send a {payload_len}-byte payload: the {self.name} frame limit is {self.max_frame} bytes",
            hint="raise max_frame on the channel, or shorten the message")

    def _wrap(self, body: bytes, payload_len: int) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def _split(self, frames: list[bytes]) -> None:  # pragma: no cover - abstract
        """Append every complete frame in the buffer to ``frames``; raise FramingError on a bad one."""
        raise NotImplementedError

    def _consume(self, n: int) -> None:
        if n:
            del self._buf[:n]
            self._offset += n


class LengthPrefixFramer(Framer):
    """A length prefix of ``width`` bytes: binary (big/little endian), ASCII digits or BCD.

    The length counts header + message, plus the prefix when ``includes_prefix``.
    ``max_frame`` bounds header + message.
    """

    def __init__(self, width: int, max_frame: int = DEFAULT_MAX_FRAME, *, byteorder: str = "big",
                 encoding: str = "binary", includes_prefix: bool = False, **kw: Any) -> None:
        if encoding == "binary" and width not in (2, 4):
            raise ValueError(f"length prefix width must be 2 or 4 bytes, got {width}")
        if encoding == "ascii" and not 1 <= width <= 9:
            raise ValueError(f"an ASCII length prefix has 1 to 9 digits, got {width}")
        if encoding == "bcd" and not 1 <= width <= 4:
            raise ValueError(f"a BCD length prefix has 1 to 4 bytes, got {width}")
        if encoding not in ("binary", "ascii", "bcd"):
            raise ValueError(f"length encoding must be binary, ascii or bcd, got {encoding!r}")
        digits = {"binary": None, "ascii": width, "bcd": 2 * width}[encoding]
        top = (1 << (8 * width)) - 1 if digits is None else 10 ** digits - 1
        if includes_prefix:
            top -= width
        super().__init__(min(max_frame, top), **kw)
        self.width = width
        self.byteorder = byteorder
        self.encoding = encoding
        self.includes_prefix = includes_prefix
        self.name = {"binary": f"length{width}" + ("le" if byteorder == "little" else ""),
                     "ascii": f"ascii{width}", "bcd": f"bcd{width}"}[encoding]

    def _len_bytes(self, n: int) -> bytes:
        if self.encoding == "binary":
            return n.to_bytes(self.width, self.byteorder)  # type: ignore[arg-type]
        if self.encoding == "ascii":
            return str(n).zfill(self.width).encode("ascii")
        return bytes.fromhex(str(n).zfill(2 * self.width))

    def _read_len(self, raw: bytes) -> int:
        if self.encoding == "binary":
            return int.from_bytes(raw, self.byteorder)  # type: ignore[arg-type]
        if self.encoding == "ascii":
            if not raw.isdigit():
                raise FramingError(
                    f"{self.name} length prefix {raw!r} is not {self.width} ASCII digits",
                    offset=self._offset,
                    hint=self._stranger() or "the peer sent garbage or uses another framing (binary length? BCD?)")
            return int(raw)
        text = raw.hex()
        if not text.isdigit():
            raise FramingError(
                f"{self.name} length prefix {text!r} (hex) is not packed BCD: a nibble is over 9",
                offset=self._offset,
                hint=self._stranger() or "the peer sent garbage or uses another framing (binary length?)")
        return int(text)

    def _file_ends(self) -> str:
        have = len(self._buf)
        if have < self.width:
            return (f"the file ends inside a frame: the {self.name} prefix at byte {self._offset} has {have} of "
                    f"its {self.width} bytes")
        claims = self._read_len(bytes(self._buf[:self.width])) - (self.width if self.includes_prefix else 0)
        return (f"the file ends inside a frame: the {self.name} prefix at byte {self._offset} claims {claims} "
                f"bytes, {have - self.width} remain")

    def _wrap(self, body: bytes, payload_len: int) -> bytes:
        if len(body) > self.max_frame:
            raise self._too_big(payload_len)
        n = len(body) + (self.width if self.includes_prefix else 0)
        return self._len_bytes(n) + body

    def frame(self, payload: bytes) -> bytes:
        if not self.header_size and self.encoding == "binary" and not self.includes_prefix:
            n = len(payload)         # the hot path: no header, binary, payload only
            if n > self.max_frame:
                raise self._too_big(n)
            return n.to_bytes(self.width, self.byteorder) + payload  # type: ignore[arg-type]
        return super().frame(payload)

    @property
    def missing(self) -> int | None:
        have = len(self._buf)
        if have < self.width:
            return self.width - have if have else 0
        try:
            n = self._read_len(bytes(self._buf[:self.width])) - (self.width if self.includes_prefix else 0)
        except FramingError:
            return 1
        return max(1, self.width + n - have)

    def _split(self, frames: list[bytes]) -> None:
        buf = self._buf
        width = self.width
        limit = self.max_frame
        extra = width if self.includes_prefix else 0
        fast = self.encoding == "binary" and not self.header_size
        order = self.byteorder
        pos = 0
        end = len(buf)
        while end - pos >= width:
            if fast:
                n = int.from_bytes(buf[pos:pos + width], order) - extra  # type: ignore[arg-type]
            else:
                self._consume(pos)
                buf, pos, end = self._buf, 0, len(self._buf)
                n = self._read_len(bytes(buf[:width])) - extra
            if n > limit or n < 0:
                self._consume(pos)
                what = (f"declares {n + extra} bytes, less than its own {width}-byte prefix" if n < 0
                        else f"declares {n} payload bytes, over the limit of {limit} bytes")
                raise FramingError(
                    f"{self.name} frame {what}",
                    offset=self._offset,
                    hint=self._stranger() or "the peer sent an oversized frame or the framing is wrong "
                         "(check length2 vs length4, the byte order and length_includes_prefix); "
                         "raise max_frame if the size is legitimate",
                )
            if end - pos - width < n:
                break
            start = pos + width
            if fast:
                frames.append(bytes(buf[start:start + n]))
            else:
                self._message(bytes(buf[start:start + n]), frames)
            pos = start + n
        self._consume(pos)


class FixedFramer(Framer):
    """Every frame is ``header_size + frame_size`` bytes."""

    name = "fixed"

    def __init__(self, frame_size: int, max_frame: int = DEFAULT_MAX_FRAME, **kw: Any) -> None:
        if frame_size <= 0:
            raise ValueError(f"frame_size must be a positive byte count, got {frame_size}")
        if frame_size > max_frame:
            raise ValueError(f"frame_size {frame_size} is over max_frame {max_frame}")
        super().__init__(max_frame, **kw)
        self.frame_size = frame_size

    def _wrap(self, body: bytes, payload_len: int) -> bytes:
        if payload_len != self.frame_size:
            raise FramingError(
                f"cannot send a {payload_len}-byte payload on a fixed framing of {self.frame_size} bytes",
                hint="the reply format must encode exactly frame_size bytes (pad the record)")
        return body

    @property
    def missing(self) -> int | None:
        return (self.frame_size + self.header_size - len(self._buf)) if self._buf else 0

    def _split(self, frames: list[bytes]) -> None:
        size = self.frame_size + self.header_size
        while len(self._buf) >= size:
            self._message(bytes(self._buf[:size]), frames)
            self._consume(size)


class DelimiterFramer(Framer):
    """Frames end with ``delimiter``; ``escape`` (one byte) makes the next byte literal."""

    name = "delimiter"

    def __init__(self, delimiter: bytes = b"\n", max_frame: int = DEFAULT_MAX_FRAME, *,
                 escape: bytes | None = None, **kw: Any) -> None:
        if not delimiter:
            raise ValueError("the delimiter must be at least one byte")
        if escape is not None and len(escape) != 1:
            raise ValueError(f"escape must be exactly one byte, got {len(escape)}")
        if escape is not None and escape in delimiter:
            raise ValueError("the escape byte must not be part of the delimiter")
        super().__init__(max_frame, **kw)
        self.delimiter = delimiter
        self.escape = escape
        self._scan = 0            # bytes of _buf already known to hold no delimiter
        self._out = bytearray()   # with an escape: the current frame, unescaped, up to _buf[_at]
        self._at = 0

    def _wrap(self, body: bytes, payload_len: int) -> bytes:
        if len(body) > self.max_frame:
            raise self._too_big(payload_len)
        d, esc = self.delimiter, self.escape
        if esc is None:
            if d in body:
                raise FramingError(
                    f"cannot send the payload: it holds the delimiter {d!r} at byte {body.find(d)}",
                    offset=body.find(d), hint="declare an `escape` byte on the channel, or another delimiter")
            return body + d
        out = bytearray()
        i, n = 0, len(body)
        e = esc[0]
        while i < n:
            b = body[i]
            if b == e or body.startswith(d, i):
                out.append(e)
            out.append(b)
            i += 1
        return bytes(out) + d

    def _split(self, frames: list[bytes]) -> None:
        if self.escape is None:
            self._split_plain(frames)
        else:
            self._split_escaped(frames)

    def _over(self, size: int) -> FramingError:
        return FramingError(
            f"delimiter frame is over the limit of {self.max_frame} bytes ({size} bytes without "
            f"delimiter {self.delimiter!r})",
            offset=self._offset,
            hint="the peer does not send the delimiter, or sends an oversized frame; check the "
                 "delimiter option, or raise max_frame if the size is legitimate")

    def _split_plain(self, frames: list[bytes]) -> None:
        d = self.delimiter
        limit = self.max_frame + self.header_size
        while True:
            at = self._buf.find(d, max(0, self._scan - len(d) + 1))
            if at < 0:
                self._scan = len(self._buf)
                if len(self._buf) > limit + len(d) - 1:
                    raise self._over(len(self._buf))
                return
            if at > limit:
                raise self._over(at)
            self._message(bytes(self._buf[:at]), frames)
            self._consume(at + len(d))
            self._scan = 0

    def _split_escaped(self, frames: list[bytes]) -> None:
        """Resumes where the last feed stopped (``_out``: the current frame unescaped so far, ``_at``: the
        first byte of the buffer not in it yet): scanning the whole buffer again on each feed took 2 s of
        CPU for a 1 MiB frame read in 64 KiB pieces, 97 s in 1 KiB pieces.  The escape and the delimiter
        are found with ``bytes.find``, each search kept until the scan passes it."""
        d, esc = self.delimiter, self.escape
        limit = self.max_frame + self.header_size
        buf, out, i = self._buf, self._out, self._at
        nd = ne = -2                       # -2: not searched yet; -1: none in the buffer
        while True:
            if nd == -2 or 0 <= nd < i:
                nd = buf.find(d, i)
            if ne == -2 or 0 <= ne < i:
                ne = buf.find(esc, i)      # type: ignore[arg-type]
            if nd >= 0 and (ne < 0 or nd < ne):
                out += buf[i:nd]
                if len(out) > limit:
                    raise self._over(len(out))
                self._message(bytes(out), frames)
                self._consume(nd + len(d))
                out, i, nd, ne = bytearray(), 0, -2, -2
                self._out, self._at = out, 0
                continue
            if ne >= 0:
                out += buf[i:ne]
                if ne + 1 >= len(buf):
                    i = ne                 # the escaped byte has not arrived yet
                else:
                    out.append(buf[ne + 1])
                    i = ne + 2
                    if len(out) <= limit:
                        continue
            else:
                keep = max(i, len(buf) - len(d) + 1)     # a delimiter's first bytes may end the buffer
                out += buf[i:keep]
                i = keep
            self._at = i
            if len(out) > limit:
                raise self._over(len(out))
            return


class EofFramer(Framer):
    """One message per connection: everything the peer sends until it closes its side."""

    name = "eof"

    def _wrap(self, body: bytes, payload_len: int) -> bytes:
        if len(body) > self.max_frame:
            raise self._too_big(payload_len)
        return body

    def _split(self, frames: list[bytes]) -> None:
        if len(self._buf) > self.max_frame + self.header_size:
            raise FramingError(
                f"eof frame is over the limit of {self.max_frame} bytes ({len(self._buf)} bytes read "
                f"and the peer has not closed)",
                offset=self._offset,
                hint="raise max_frame if the message is legitimately that big")

    @property
    def missing(self) -> int | None:
        return None          # the frame ends when the peer closes

    def eof(self, source: str = "connection") -> list[bytes]:
        if self._error is not None:
            raise self._error
        if not self._buf:
            return []
        frames: list[bytes] = []
        self._message(bytes(self._buf), frames)
        self._consume(len(self._buf))
        return frames


def _length(width: int, **fixed: Any) -> Callable[..., Framer]:
    return lambda max_frame=DEFAULT_MAX_FRAME, **kw: LengthPrefixFramer(width, max_frame, **fixed, **kw)


# Length-prefix framings usable by name alone (``framing = length2``) -> constructor(max_frame, **kw).
FRAMINGS: dict[str, Callable[..., Framer]] = {
    "length2": _length(2),
    "length4": _length(4),
    "length2le": _length(2, byteorder="little"),
    "length4le": _length(4, byteorder="little"),
    **{f"ascii{n}": _length(n, encoding="ascii") for n in range(2, 7)},
    "bcd2": _length(2, encoding="bcd"),
    "bcd4": _length(4, encoding="bcd"),
}

# Every stream framing a channel can declare; these need (or take) sub-options.
STREAM_FRAMINGS: dict[str, Callable[..., Framer]] = {
    **FRAMINGS,
    "delimiter": lambda max_frame=DEFAULT_MAX_FRAME, **kw: DelimiterFramer(max_frame=max_frame, **kw),
    "fixed": lambda max_frame=DEFAULT_MAX_FRAME, **kw: FixedFramer(max_frame=max_frame, **kw),
    "eof": lambda max_frame=DEFAULT_MAX_FRAME, **kw: EofFramer(max_frame, **kw),
}


def make_framer(name: str, max_frame: int = DEFAULT_MAX_FRAME, **kw: Any) -> Framer:
    try:
        factory = STREAM_FRAMINGS[name]
    except KeyError:
        raise ValueError(
            f"unknown framing {name!r}; expected one of {', '.join(STREAM_FRAMINGS)}"
        ) from None
    return factory(max_frame, **kw)


# ------------------------------------------------------------ channel options

DELIMITER_NAMES = {"ETX": b"\x03", "STX": b"\x02", "EOT": b"\x04", "LF": b"\n", "CR": b"\r",
                   "CRLF": b"\r\n", "NUL": b"\x00", "FS": b"\x1c", "GS": b"\x1d", "RS": b"\x1e",
                   "DLE": b"\x10"}

FRAMING_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "framing", "ident",
        "How messages are delimited on the stream: length2 / length4 = 2- or 4-byte big-endian "
        "length prefix (length2le / length4le little-endian), ascii2..ascii6 = that many ASCII "
        "digits, bcd2 / bcd4 = packed BCD (2 bytes = 4 digits), delimiter = ends with `delimiter`, "
        "fixed = `frame_size` bytes each, eof = one message per connection (read to the close).",
        default="length2", choices=tuple(STREAM_FRAMINGS)),
    OptionSpec(
        "max_frame", "int",
        "Largest payload accepted, in bytes; a bigger frame is a framing error "
        "(error reply where the channel has one, then the connection is closed).",
        default=DEFAULT_MAX_FRAME),
    OptionSpec("length_includes_prefix", "bool",
               "The length prefix counts its own bytes too (length / ascii / bcd framings).", default=False),
    OptionSpec("header_size", "int",
               "A fixed header of this many bytes before each message (after the length prefix), "
               "e.g. 5 for an ISO 8583 TPDU; a reply carries its request's header.", default=0),
    OptionSpec("header", "string",
               "Hex of the header sent with each request on a calling channel (default zero bytes).",
               default=None),
    OptionSpec("header_reply", "ident",
               "On a listening channel, the header of a reply: echo (the request's, as received) or swap "
               "(a 5-byte ISO 8583 TPDU with its destination and originator addresses swapped, as "
               "terminals and NACs expect).", default=None, choices=("echo", "swap")),
    OptionSpec("delimiter", "string",
               "End of frame for framing = delimiter: a name (ETX, STX, EOT, LF, CR, CRLF, NUL, FS, GS, "
               "RS), `hex:0d0a`, or text (\\n, \\r, \\t, \\0 escapes); LF when not given.", default=None),
    OptionSpec("escape", "string",
               "One escape byte for framing = delimiter (a name such as DLE, or `hex:10`): sent before "
               "each delimiter or escape byte inside a payload.", default=None),
    OptionSpec("frame_size", "int", "Bytes per message for framing = fixed.", default=None),
)


def _bytes_option(channel: str, key: str, value: Any) -> bytes:
    if not isinstance(value, str) or not value:
        raise FramingConfigError(f"channel {channel}: option {key}: expected a non-empty string, got {value!r}")
    if value.upper() in DELIMITER_NAMES:
        return DELIMITER_NAMES[value.upper()]
    if value.lower().startswith("hex:"):
        try:
            out = bytes.fromhex(value[4:])
        except ValueError:
            raise FramingConfigError(
                f"channel {channel}: option {key}: {value!r} is not hex (e.g. \"hex:0d0a\")") from None
        if not out:
            raise FramingConfigError(f"channel {channel}: option {key}: {value!r} holds no bytes")
        return out
    return value.encode("latin-1")


def check_framing(decl: Any, base_dir: Any = None, *, echo_header: bool = True) -> list[Any]:
    """``bsp check`` hook of the framed channel kinds: the framing options of ``decl`` (an IR
    ChannelDecl) as the engine will build them; a ``SpecError`` per problem."""
    from formats.errors import SpecError
    try:
        framer_factory(decl.name, dict(decl.options), echo_header=echo_header)
    except FramingConfigError as exc:
        return [SpecError(str(exc))]
    return []


def framer_factory(channel: str, options: dict[str, Any], *, echo_header: bool) -> Callable[[], Framer]:
    """Check the framing options of a channel once; return a maker of fresh framers.

    Raises ``FramingConfigError`` naming the channel and option.
    """
    name = options.get("framing", "length2")
    if name not in STREAM_FRAMINGS:
        raise FramingConfigError(
            f"channel {channel}: option framing: unknown framing {name!r}; "
            f"expected one of {', '.join(STREAM_FRAMINGS)}")
    max_frame = options.get("max_frame", DEFAULT_MAX_FRAME)
    if not isinstance(max_frame, int) or isinstance(max_frame, bool) or max_frame <= 0:
        raise FramingConfigError(
            f"channel {channel}: option max_frame: expected a positive byte count, got {max_frame!r}")
    kw: dict[str, Any] = {}
    header_size = options.get("header_size", 0) or 0
    if not isinstance(header_size, int) or isinstance(header_size, bool) or header_size < 0:
        raise FramingConfigError(
            f"channel {channel}: option header_size: expected 0 or more bytes, got {header_size!r}")
    if header_size:
        kw["header_size"] = header_size
        kw["echo_header"] = echo_header
        if options.get("header") is not None:
            try:
                header = bytes.fromhex(options["header"])
            except (TypeError, ValueError):
                raise FramingConfigError(
                    f"channel {channel}: option header: {options['header']!r} is not hex "
                    f"(e.g. header = \"6000010000\" for a TPDU)") from None
            if len(header) != header_size:
                raise FramingConfigError(
                    f"channel {channel}: option header: {len(header)} byte(s), but header_size = {header_size}")
            kw["header"] = header
        reply = options.get("header_reply") or "echo"
        if reply not in ("echo", "swap"):
            raise FramingConfigError(f"channel {channel}: option header_reply: expected echo or swap, got {reply!r}")
        if reply == "swap":
            if header_size != 5:
                raise FramingConfigError(f"channel {channel}: option header_reply = swap swaps the addresses of "
                                         f"a 5-byte TPDU; header_size is {header_size}")
            kw["swap_header"] = echo_header
    elif options.get("header") is not None:
        raise FramingConfigError(f"channel {channel}: option header needs header_size (the header's byte count)")
    elif options.get("header_reply") is not None:
        raise FramingConfigError(f"channel {channel}: option header_reply needs header_size (the header's byte count)")
    prefix = name in FRAMINGS
    if options.get("length_includes_prefix"):
        if not prefix:
            raise FramingConfigError(
                f"channel {channel}: option length_includes_prefix applies to length framings, not {name}")
        kw["includes_prefix"] = True
    for key in ("delimiter", "escape"):
        if options.get(key) is not None and name != "delimiter":
            raise FramingConfigError(f"channel {channel}: option {key} applies to framing = delimiter, not {name}")
    if name == "delimiter":
        kw["delimiter"] = _bytes_option(channel, "delimiter", options.get("delimiter") or "LF")
        if options.get("escape") is not None:
            kw["escape"] = _bytes_option(channel, "escape", options["escape"])
    frame_size = options.get("frame_size")
    if name == "fixed":
        if not isinstance(frame_size, int) or isinstance(frame_size, bool) or frame_size <= 0:
            raise FramingConfigError(
                f"channel {channel}: framing = fixed needs frame_size, the byte count of every message "
                f"(e.g. frame_size = 300), got {frame_size!r}")
        kw["frame_size"] = frame_size
    elif frame_size is not None:
        raise FramingConfigError(f"channel {channel}: option frame_size applies to framing = fixed, not {name}")
    try:
        make_framer(name, max_frame, **kw)      # fail now, not on the first connection
    except ValueError as exc:
        raise FramingConfigError(f"channel {channel}: framing {name}: {exc}") from None
    factory = STREAM_FRAMINGS[name]

    def new() -> Framer:
        return factory(max_frame, **kw)
    new.framing = name            # type: ignore[attr-defined]
    new.max_frame = max_frame     # type: ignore[attr-defined]
    return new
