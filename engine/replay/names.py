"""A ``file write`` call's file name values (``name { ref = ... }``) in a capture and in the route tests
written from one: masked as the exchange's other frames are.

``bsp check`` finds which of a call's values carry a classified field (``who = upper(msg.payee)``, payee
personal: ``ir.Step.options["name_tags"]``); such a value is a text the request does not hold (``ANN``
for ``ann``), so masking the request's classified values wherever they appear does not reach it.
``mask_names`` masks it whole, and adds it to the exchange's known classified texts, so the frames after
the call (the channel's answer ``{"file": "pacs008-R1-ANN.xml"}``, a reply that copies ``w.file``) mask
it too.  Pure: no engine, no I/O.
"""
from __future__ import annotations

from typing import Any, Mapping

from formats.classify import mask_text, mask_value, strictest


def name_tags(program: Any) -> dict[str, dict[str, str]]:
    """``{channel: {word: tag}}``: the file name values ``bsp check`` found classified, over every call of
    the configuration to that channel (the strictest tag when two calls differ)."""
    out: dict[str, dict[str, str]] = {}
    for r in getattr(program, "routes", ()) or ():
        for st in (*r.steps, *r.on_error):
            o = st.options if st.kind == "call" else {}
            for word, tag in (o.get("name_tags") or {}).items():
                have = out.setdefault(o["channel"], {})
                have[word] = strictest({tag, have[word]}) if word in have else tag
    return out


def mask_names(values: Mapping[str, str], known: dict[str, str], tags: Mapping[str, str] | None,
               fakes: Mapping[str, str] | None = None) -> dict[str, str]:
    """``values`` masked: a word in ``tags`` whole (its clear value is added to ``known`` with its tag),
    any other wherever it holds a known classified value (``fakes``: stand-ins, formats.pseudonym)."""
    out: dict[str, str] = {}
    for word, v in values.items():
        tag = (tags or {}).get(word)
        if tag:
            out[word] = str(mask_value(v, tag, fakes))
            known.setdefault(v, tag)
        else:
            out[word] = mask_text(v, known, fakes)
    return out
