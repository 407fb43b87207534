"""The identity of a call's request, by which a replay pairs the candidate's calls with the recorded ones.

A replay feeds each recorded exchange on its own (its connection and sequence as recorded), so the
candidate's reply and deal are compared with that exchange's.  Within an exchange, a call is paired with
the recorded call of the same identity, on channels where a request has one:

* the channel's ``match`` (a MUX: ``match = iso8583`` or ``match = ["reference"]``): the key the channel
  matches its answers by (MTI class + DE 11 + DE 41, or the listed fields);
* a call written in an ISO 8583 format on a channel without ``match``: MTI class + STAN (DE 11) +
  terminal (DE 41), the key an ISO 8583 counterpart answers by.

A channel whose requests have no identity (plain JSON, fixed-width, raw bytes) pairs by position: the
candidate's nth call to it in the exchange with the recorded nth.  ``describe()`` says which channel
pairs how, for the report.
"""
from __future__ import annotations

from typing import Any, Callable

from engine.replay.guide import FormatGuide
from formats.errors import FormatError

Key = tuple[str, ...]


class CallIdentity:
    def __init__(self, program: Any, codec: Callable[[str], Any]) -> None:
        from engine.channels.mux import parse_match
        from formats.iso8583.mux import iso_key
        self.guide = FormatGuide(program, codec)
        self._fns: dict[str, tuple[Callable[[Any], Key], str] | None] = {}
        formats = getattr(program, "formats", {}) or {}
        for name, decl in (getattr(program, "channels", {}) or {}).items():
            fn = None
            try:
                fn, fields = parse_match(name, decl.options.get("match"))
            except Exception:       # noqa: BLE001 - bsp check reports a bad `match`; no identity here
                fn = None
            if fn is not None:
                label = ("MTI class + STAN + terminal (match = iso8583)" if decl.options.get("match") == "iso8583"
                         else f"match fields {', '.join(fields)}")
                self._fns[name] = (fn, label)
                continue
            fmts = self.guide.candidates(name, "outbound", "out")
            if fmts and all(getattr(formats.get(f), "kind", None) == "iso8583" for f in fmts):
                self._fns[name] = (iso_key, "MTI class + STAN + terminal (ISO 8583)")
        self._cache: dict[int, Key | None] = {}

    def label(self, channel: str) -> str | None:
        """How a channel's calls are identified (None: they have no identity, paired by position)."""
        got = self._fns.get(channel)
        return got[1] if got is not None else None

    def key(self, channel: str, raw: bytes | None) -> Key | None:
        """The identity of a request on ``channel`` (None: none, or it could not be read)."""
        got = self._fns.get(channel)
        if got is None or raw is None:
            return None
        _, values = self.guide.decode(channel, "outbound", "out", raw)
        if not isinstance(values, dict):
            return None
        try:
            return tuple(str(v) for v in got[0](values))
        except (FormatError, KeyError, TypeError, ValueError):
            return None

    def recorded_key(self, call: Any) -> Key | None:
        """The identity of a recorded call's request (read once)."""
        k = id(call)
        if k not in self._cache:
            self._cache[k] = self.key(call.channel, call.request.raw)
        return self._cache[k]
