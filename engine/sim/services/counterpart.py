"""A counterpart system on loopback: decodes each request with the route's own
request format, answers with ``Counterpart.answer`` encoded in the reply
format, in order, one write per received chunk.  ``stall=True`` makes it read
and never answer (a hung counterpart, for timeout tests).  With ``ref`` (the
deal's reference in a decoded request) it counts its calls per reference in
``calls``; ``twice()`` lists the references that reached it more than once.
"""
from __future__ import annotations

import logging
from typing import Any

from engine.sim.framed import FramedServer
from formats.errors import FormatError

log = logging.getLogger("bsp.sim.counterpart")


class FirstOf:
    """Decodes a request with the first of ``codecs`` that reads it (a counterpart the routes send several
    formats to); a request none reads fails with the first one's error."""

    def __init__(self, codecs: list[Any]) -> None:
        self.codecs = codecs

    def decode(self, data: bytes) -> Any:
        first: FormatError | None = None
        for codec in self.codecs:
            try:
                return codec.decode(data)
            except FormatError as exc:
                first = first or exc
        assert first is not None
        raise first


class CounterpartSim(FramedServer):
    def __init__(self, name: str, request_codec: Any, reply_codec: Any, answer: Any, *,
                 framing: str = "length4", ref: Any = None) -> None:
        self.name = name
        self.request_codec = request_codec
        self.reply_codec = reply_codec
        self.answer_fn = answer
        self.framing = framing
        self.requests = 0
        self.bad_requests = 0
        self.seen: list[Any] = []          # decoded requests, for tests (bounded)
        self.keep = 256
        self.ref_of = ref
        self.calls: dict[str, int] = {}

    def reply_frame(self, payload: bytes) -> bytes:
        self.requests += 1
        try:
            req = self.request_codec.decode(payload)
        except FormatError as exc:
            self.bad_requests += 1
            log.warning("%s: undecodable request: %s", self.name, exc)
            req = None
        if self.ref_of is not None and req is not None:
            key = str(self.ref_of(req) or "").strip()
            self.calls[key] = self.calls.get(key, 0) + 1
        if len(self.seen) < self.keep:
            self.seen.append(req)
        return self.reply_codec.encode(self.answer_fn(req))
