"""Which request Content-Types an ``http listen`` channel reads (its option ``check_content_type``).

The media types follow the receive formats of the channel's routes: a JSON format reads
``application/json`` and ``application/*+json``, and a form (``application/x-www-form-urlencoded``, which
the channel turns into a flat JSON object); an XML format (``xml``, ``iso20022``) reads ``application/xml``,
``text/xml`` and ``application/*+xml``.  A channel with a route of any other format (a copybook, ISO 8583,
fixed records, raw bytes) is not checked: those have no media type of their own.

A request without Content-Type is not checked (nothing declared, nothing contradicted): the format reads
it.  A form whose body is JSON (``{`` or ``[`` first: a form serialiser escapes both) is refused: that is
``curl -d`` sending JSON with its default Content-Type, which read as a form would give the route a field
named after the whole JSON text.  Parameters (``; charset=utf-8``) and case do not matter.

Pure: the channel and the OpenAPI generator (engine/http_contract) both use it.
"""
from __future__ import annotations

from typing import Iterable

FORM = "application/x-www-form-urlencoded"
JSON_TYPES = ("application/json", "application/*+json", FORM)
XML_TYPES = ("application/xml", "text/xml", "application/*+xml")


def accepted_types(kinds: Iterable[str | None]) -> tuple[str, ...] | None:
    """The media types the formats of ``kinds`` (a route's format kind, None: raw bytes) read, in a fixed
    order; None when one of them has none (not checked)."""
    out: list[str] = []
    for kind in kinds:
        if kind == "json":
            out += JSON_TYPES
        elif kind in ("xml", "iso20022"):
            out += XML_TYPES
        else:
            return None
    return tuple(dict.fromkeys(out)) or None


def _matches(media: str, accepted: str) -> bool:
    if "/*+" in accepted:                         # application/*+json: application/problem+json, ...
        top, suffix = accepted.split("/*", 1)
        return media.startswith(top + "/") and media.endswith(suffix)
    return media == accepted


def refusal(media: str, body: bytes, accepted: tuple[str, ...] | None) -> str | None:
    """Why a request of Content-Type ``media`` (without parameters, lower case; "" when absent) is refused
    (a 415's detail), or None when the channel reads it."""
    if accepted is None or not media:
        return None
    if media == FORM and FORM in accepted and body.lstrip()[:1] in (b"{", b"["):
        return (f"the body is JSON but its Content-Type says a form ({FORM}, curl -d's default): "
                f"send Content-Type: application/json")
    if any(_matches(media, a) for a in accepted):
        return None
    return f"Content-Type {media} is not read here: send {' or '.join(accepted)}"
