"""Translate a moov-io/iso8583 v0 JSON spec ("n 6", "n..11", "ans...999" + an
``encoding`` block) into our spec mapping, so such specs can be loaded as-is.

Used for the conformance corpus; the spec format we ship is the YAML one.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from formats.errors import SpecError
from formats.iso8583.spec import IsoSpec, spec_from_dict

_DESC = re.compile(r"^(?P<type>[a-z+]+)\s*(?P<var>\.{2,3})?\s*(?P<len>\d+)")
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


def load_moov_spec(path: str | Path, **overrides: Any) -> IsoSpec:
    """Load a moov JSON spec (read as cp1252: upstream files hold 0x96 dashes)."""
    p = Path(path)
    doc = json.loads(p.read_text(encoding="cp1252"))
    data = translate_moov(doc, p.stem)
    for no, patch in overrides.get("fields", {}).items():
        data["fields"][int(no)].update(patch)
    return spec_from_dict(data, str(p))
