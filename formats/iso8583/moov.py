"""Translate a moov-io/iso8583 v0 JSON spec ("n 6", "n..11", "ans...999" + an
``encoding`` block) into our spec mapping, so such specs can be loaded as-is.

Used for the conformance corpus; the spec format we ship is the YAML one.

A ``Describe`` such as ``"n 10; MMDDhhmmss"`` carries a date layout: it becomes the
field's ``format``.  moov's JSON has no message rules; ``MOOV_V0_MESSAGES`` holds the
ones its v0 test messages imply (see the comment there).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from formats.errors import SpecError
from formats.iso8583.spec import IsoSpec, spec_from_dict

_DESC = re.compile(r"^(?P<type>[a-z+]+)\s*(?P<var>\.{2,3})?\s*(?P<len>\d+)(?:\s*;\s*(?P<fmt>\w+))?")
# What moov-io/iso8583 v0's sample messages (test/testdata/*.dat) imply about each MTI: every
# well-formed sample satisfies these, and the two named negative samples break them:
# iso_reversal_message_advice_missing_field (0420 without DE 32) and
# iso_reversal_message_advice_unexpected_field (0420 with DE 13 and 14).  The 0420 advice
# of those samples is a closed set: exactly the fields of iso_reversal_message_advice.
MOOV_V0_MESSAGES: dict[str, dict[str, Any]] = {
    "0200": {"name": "Financial transaction request", "mandatory": [3, 4, 7, 11]},
    "0210": {"name": "Financial transaction response", "mandatory": [3, 4, 7, 11, 39]},
    "0400": {"name": "Reversal request", "mandatory": [2, 3, 4, 7, 11, 90]},
    "0401": {"name": "Reversal request, repeat", "mandatory": [2, 3, 4, 7, 11, 90]},
    "0410": {"name": "Reversal response", "mandatory": [2, 3, 4, 7, 11, 39, 90]},
    "0420": {"name": "Reversal advice", "mandatory": [2, 3, 4, 7, 11, 12, 25, 32], "closed": True},
    "0800": {"name": "Network management request", "mandatory": [7, 11]},
    "0810": {"name": "Network management response", "mandatory": [7, 11, 39]},
}

_ENC = {"CHAR": "ascii", "ASCII": "ascii", "EBCDIC": "ebcdic", "BCD": "bcd", "HEX": "hex", "BINARY": "binary"}


def translate_moov(doc: dict[str, Any], name: str = "moov") -> dict[str, Any]:
    enc = doc.get("encoding") or {}
    mti = _ENC.get(enc.get("mti_enc", "CHAR"), "ascii")
    bitmap = {"HEX": "hex", "BINARY": "binary", "EBCDIC": "ebcdic"}.get(enc.get("bmp_enc", "HEX"), "hex")
    len_enc = _ENC.get(enc.get("len_enc", "CHAR"), "ascii")
    num_enc = _ENC.get(enc.get("num_enc", "CHAR"), "ascii")
    chr_enc = _ENC.get(enc.get("chr_enc", "ASCII"), "ascii")
    bin_enc = "hex" if enc.get("bin_enc", "HEX") == "HEX" else "binary"
    trk_enc = _ENC.get(enc.get("trk_enc", "CHAR"), "ascii")
    fields: dict[int, dict[str, Any]] = {}
    for key, el in (doc.get("elements") or {}).items():
        no = int(key)
        if no == 1:
            continue
        m = _DESC.match(el.get("Describe", ""))
        if not m:
            raise SpecError(f"element {key}: cannot read Describe {el.get('Describe')!r}", path=name)
        t = m["type"].replace("x+n", "xn")
        if t == "ns":
            t = "ans"
        size = int(m["len"])
        f: dict[str, Any] = {"name": el.get("Description", ""), "type": t}
        if m["fmt"]:
            f["format"] = m["fmt"]
        if t == "b":
            size = max(1, size // 8)           # moov counts bits
            f["data_encoding"] = bin_enc
        elif t == "z":
            f["data_encoding"] = trk_enc
        elif t == "n":
            f["data_encoding"] = num_enc
        elif t == "xn":
            f["data_encoding"] = chr_enc
            size -= 1                          # moov v0 counts the C/D sign in "x+n 8"; we count digits
        else:
            f["data_encoding"] = chr_enc
        if m["var"]:
            f["length"] = "LL" if m["var"] == ".." else "LLL"
            f["max"] = size
            f["length_encoding"] = len_enc
        else:
            f["length"] = size
        fields[no] = f
    return {"name": name, "mti": mti, "bitmap": bitmap, "secondary_bitmap": True, "fields": fields}


def load_moov_spec(path: str | Path, *, rules: bool = True, **overrides: Any) -> IsoSpec:
    """Load a moov JSON spec (read as cp1252: upstream files hold 0x96 dashes).

    ``rules``: add ``MOOV_V0_MESSAGES``.  ``fields={no: {key: value}}`` patches fields;
    any other keyword sets a top-level spec key (e.g. ``secondary_bitmap="always"``).
    """
    p = Path(path)
    doc = json.loads(p.read_text(encoding="cp1252"))
    data = translate_moov(doc, p.stem)
    if rules:
        data["messages"] = MOOV_V0_MESSAGES
    for no, patch in overrides.pop("fields", {}).items():
        data["fields"][int(no)].update(patch)
    data.update(overrides)
    return spec_from_dict(data, str(p))
