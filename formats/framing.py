"""Sans-IO framers: bytes in, complete frames out; payload in, framed bytes out.

A framer never touches a socket (h11 style): the channel feeds it whatever
``receive_some`` returned and writes whatever ``frame`` returned.  That keeps
framing testable byte by byte and reusable by record/replay.

Every framer has the same surface:

    feed(data) -> list[bytes]   complete frames, in order (may be empty)
    frame(payload) -> bytes     the payload with its framing added
    buffered                    bytes held waiting for the rest of a frame
    eof()                       call when the peer closed; raises if a partial frame is held

and raises ``FramingError`` (a ``FormatError``) naming the byte offset in the
stream and the declared limit.  When good frames precede the bad one in the
same chunk, ``feed`` returns them and leaves the error in ``error`` (check it
after each feed); it is raised by the next ``feed``/``eof``.  After an error
the stream is out of step and the connection must be closed.

Sibling framers (little-endian, ASCII-digit or BCD length, delimiter, fixed
size) subclass ``LengthPrefixFramer`` or ``Framer`` and register in ``FRAMINGS``.
"""
from __future__ import annotations

from formats.errors import FormatError

DEFAULT_MAX_FRAME = 1 << 20


class FramingError(FormatError):
    """A bad, oversized or truncated frame.  ``offset`` is the stream offset of the frame's first byte."""


class Framer:
    """Base class: keeps the buffer and the stream offset; subclasses split frames."""

    name = "framer"

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame <= 0:
            raise ValueError(f"max_frame must be a positive byte count, got {max_frame}")
        self.max_frame = max_frame
        self._buf = bytearray()
        self._offset = 0          # stream offset of _buf[0]
        self._error: FramingError | None = None
        self._frames: list[bytes] = []

    @property
    def error(self) -> FramingError | None:
        """The framing error met so far, if any (the stream is then unusable)."""
        return self._error

    @property
    def buffered(self) -> int:
        return len(self._buf)

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

    def eof(self) -> None:
        if self._error is not None:
            raise self._error
        if self._buf:
            raise FramingError(
                f"connection closed inside a frame: {len(self._buf)} byte(s) of an unfinished "
                f"{self.name} frame are buffered",
                offset=self._offset,
                hint="the peer closed the connection before sending the whole frame",
            )

    def frame(self, payload: bytes) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def _split(self, frames: list[bytes]) -> None:  # pragma: no cover - abstract
        """Append every complete frame in the buffer to ``frames``; raise FramingError on a bad one."""
        raise NotImplementedError


class LengthPrefixFramer(Framer):
    """A big-endian binary length prefix of ``width`` bytes counting the payload only."""

    byteorder = "big"

    def __init__(self, width: int, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if width not in (2, 4):
            raise ValueError(f"length prefix width must be 2 or 4 bytes, got {width}")
        limit = (1 << (8 * width)) - 1
        super().__init__(min(max_frame, limit))
        self.width = width
        self.name = f"length{width}"

    def frame(self, payload: bytes) -> bytes:
        n = len(payload)
        if n > self.max_frame:
            raise FramingError(
                f"cannot send a {n}-byte payload: the {self.name} frame limit is {self.max_frame} bytes",
                hint="raise max_frame on the channel, or shorten the message",
            )
        return n.to_bytes(self.width, self.byteorder) + payload

    def frame_many(self, payloads: list[bytes]) -> bytes:
        """All payloads framed into one buffer (one ``send_all`` for a batch)."""
        return b"".join([self.frame(p) for p in payloads])

    def _split(self, frames: list[bytes]) -> None:
        buf = self._buf
        width = self.width
        limit = self.max_frame
        order = self.byteorder
        pos = 0
        end = len(buf)
        while end - pos >= width:
            n = int.from_bytes(buf[pos:pos + width], order)
            if n > limit:
                self._consume(pos)
                raise FramingError(
                    f"{self.name} frame declares {n} payload bytes, over the limit of {limit} bytes",
                    offset=self._offset,
                    hint="the peer sent an oversized frame or the framing is wrong "
                         "(check length2 vs length4 and the byte order); raise max_frame if the size is legitimate",
                )
            if end - pos - width < n:
                break
            start = pos + width
            frames.append(bytes(buf[start:start + n]))
            pos = start + n
        self._consume(pos)

    def _consume(self, n: int) -> None:
        if n:
            del self._buf[:n]
            self._offset += n


# Framing names as written in route files (``framing = length2``) -> constructor(max_frame).
FRAMINGS = {
    "length2": lambda max_frame=DEFAULT_MAX_FRAME: LengthPrefixFramer(2, max_frame),
    "length4": lambda max_frame=DEFAULT_MAX_FRAME: LengthPrefixFramer(4, max_frame),
}


def make_framer(name: str, max_frame: int = DEFAULT_MAX_FRAME) -> Framer:
    try:
        factory = FRAMINGS[name]
    except KeyError:
        raise ValueError(
            f"unknown framing {name!r}; expected one of {', '.join(sorted(FRAMINGS))}"
        ) from None
    return factory(max_frame)
