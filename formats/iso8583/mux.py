"""The MUX key that pairs an ISO 8583 reply with its request on one connection.

``mux_key(values)`` -> ``(mti_class, stan, terminal)``: the MTI with its
request/response digit folded (0200 and 0210 both give "020"), DE 11 and DE 41.
A request and its reply therefore have the same key.

``iso_echo(values)`` -> DE 37 (retrieval reference), or None: a reply that carries one must carry its
request's, so that a late reply to an earlier request with the same STAN and terminal (the key) is not
taken for the answer of the request waiting now (engine/channels/mux.py).
"""
from __future__ import annotations

from typing import Any, Mapping

from formats.errors import FormatError

KEY_FIELDS = ("11", "41")
_FOLD = {c: str(int(c) - int(c) % 2) for c in "0123456789"}   # function digit with the response bit cleared


def iso_key(values: Mapping[str, Any]) -> tuple[str, ...]:
    """The key a MUX matches on: MTI class + DE 11 + DE 41; network management (08xx): MTI class + DE 11.

    The usual message (text MTI, DE 11 and DE 41 present as text) takes three dict reads; anything
    else goes through ``mux_key``, which names what is missing."""
    mti = values.get("t")
    stan = values.get("11")
    if type(mti) is str and len(mti) == 4 and mti.isdigit() and mti.isascii() and type(stan) is str and stan:
        if mti[:2] == "08":
            return (mti[:2] + _FOLD[mti[2]], stan)
        term = values.get("41")
        if type(term) is str and term:
            return (mti[:2] + _FOLD[mti[2]], stan, term)
    if isinstance(mti, str) and mti.startswith("08"):
        return mux_key(values, ("11",))
    return mux_key(values)


def iso_echo(values: Mapping[str, Any]) -> str | None:
    """DE 37 (retrieval reference) as the message carries it, trailing spaces dropped; None when it has none
    (an 0800, a host that does not echo it): then the key alone decides."""
    rrn = values.get("37")
    if rrn is None:
        return None
    rrn = str(rrn).rstrip()
    return rrn or None


def mux_key(values: Mapping[str, Any], fields: tuple[str, ...] = KEY_FIELDS) -> tuple[str, ...]:
    mti = values.get("t")
    if not isinstance(mti, str) or len(mti) != 4 or not mti.isdigit():
        raise FormatError(f"cannot build a MUX key: MTI is {mti!r}, expected 4 digits", field="t",
                          hint='the message needs "t", e.g. "0200"')
    missing = [f for f in fields if values.get(f) in (None, "")]
    if missing:
        names = {"11": "DE 11 (STAN)", "41": "DE 41 (terminal id)"}
        raise FormatError(f"cannot build a MUX key: {', '.join(names.get(m, 'DE ' + m) for m in missing)} "
                          f"missing from the {mti} message", field=missing[0],
                          hint="requests sent over a MUX must carry the key fields so the reply can be matched")
    # MTI class: version + class + function with the response bit cleared (x1x0 -> x0x0 ... 0210 -> 0200).
    func = int(mti[2])
    klass = mti[:2] + str(func - func % 2)
    return (klass,) + tuple(str(values[f]) for f in fields)
