"""An ``http call`` answer's ``Content-Encoding`` undone within ``max_reply``.

httpx inflates a gzip or deflate body as it streams in, with no bound of its own: a counterpart's small
gzip of gigabytes (a decompression bomb: 1 MB of gzip is 1 GB of zeros) cost CPU until the call's
``timeout``, whatever ``max_reply`` kept.  Here the raw (compressed) bytes are read and inflated by
``zlib`` with ``max_length``: never more than ``max_reply`` bytes (and one) come out, whatever goes in, so
the call stops reading at once and fails as ``refused`` naming the bytes read and the bound.

The codings httpx reads are the ones undone here (``gzip``, ``x-gzip``, ``deflate``, a zlib stream or a raw
one as httpx takes it, ``identity``, and a list of them applied in order); one it does not know is read as
it came, as httpx does.
"""
from __future__ import annotations

import zlib


class Over(Exception):
    """The body inflates past the bound."""


class BadCoding(Exception):
    """The body is not the coding its ``Content-Encoding`` says (a broken gzip stream)."""


class _Zlib:
    def __init__(self, coding: str) -> None:
        self.coding = coding
        # gzip: a gzip header; deflate: a zlib stream, or, failing that at its first bytes, a raw one (as httpx)
        self._d = zlib.decompressobj(zlib.MAX_WBITS | 16 if coding in ("gzip", "x-gzip") else zlib.MAX_WBITS)
        self._first = coding == "deflate"

    def feed(self, data: bytes, room: int) -> bytes:
        try:
            out = self._d.decompress(data, room + 1)
        except zlib.error as exc:
            if not self._first:
                raise BadCoding(f"{self.coding}: {exc}") from None
            self._d = zlib.decompressobj(-zlib.MAX_WBITS)      # deflate sent raw, without the zlib header
            self._first = False
            return self.feed(data, room)
        self._first = False
        if len(out) > room:      # max_length reached: more would come out (unconsumed_tail), past the bound
            raise Over()
        return out

    def end(self, room: int) -> bytes:
        try:
            out = self._d.flush()
        except zlib.error as exc:
            raise BadCoding(f"{self.coding}: {exc}") from None
        if len(out) > room:
            raise Over()
        return out


class Inflater:
    """Feed the raw body's chunks (``feed``), then ``end``: the body as the route reads it, ``Over`` as soon
    as it would pass ``limit`` bytes (at any stage of a list of codings), ``BadCoding`` when it does not
    inflate."""

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        self.limit = limit
        codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
        # applied in the order listed: undone the other way round
        self.stages = [_Zlib(c) for c in reversed(codings) if c in ("gzip", "x-gzip", "deflate")]
        self.coding = ", ".join(c for c in codings if c in ("gzip", "x-gzip", "deflate")) or None
        self.size = 0            # bytes out so far

    def feed(self, data: bytes) -> bytes:
        for stage in self.stages:
            data = stage.feed(data, self.limit - (self.size if stage is self.stages[-1] else 0))
        return self._out(data)

    def end(self) -> bytes:
        data = b""
        for stage in self.stages:
            room = self.limit - (self.size if stage is self.stages[-1] else 0)
            data = (stage.feed(data, room) if data else b"") + stage.end(room)
        return self._out(data)

    def _out(self, data: bytes) -> bytes:
        self.size += len(data)
        if self.size > self.limit:
            raise Over()
        return data
