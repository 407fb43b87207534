"""BER-TLV (EMV) for fields such as DE 55: bytes <-> {tag hex: value hex}.

Tags are rendered as uppercase hex ("9F02"), values as uppercase hex.  The
decoder is flat (a constructed tag's value stays hex); lengths are encoded in
the shortest BER form, so only minimally encoded input round-trips byte for
byte (the decoder rejects long-form lengths below 128 to keep that promise).
"""
from __future__ import annotations

from formats.errors import FormatError


def decode_tlv(data: bytes, *, base: int = 0, field: str = "55") -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    n = len(data)
    while pos < n:
        start = pos
        first = data[pos]
        pos += 1
        if first & 0x1F == 0x1F:            # multi-byte tag
            while True:
                if pos >= n:
                    raise FormatError("BER-TLV tag runs past the end of the field", offset=base + start,
                                      field=field)
                b = data[pos]
                pos += 1
                if not b & 0x80:
                    break
        tag = data[start:pos].hex().upper()
        if pos >= n:
            raise FormatError(f"BER-TLV tag {tag} has no length byte", offset=base + pos, field=f"{field}.{tag}")
        lb = data[pos]
        pos += 1
        if lb & 0x80:
            k = lb & 0x7F
            if k == 0 or k > 3 or pos + k > n:
                raise FormatError(f"BER-TLV tag {tag}: bad long-form length byte {lb:#04x}",
                                  offset=base + pos - 1, field=f"{field}.{tag}")
            length = int.from_bytes(data[pos:pos + k], "big")
            if length < 128 or length < (1 << (8 * (k - 1))):
                raise FormatError(f"BER-TLV tag {tag}: length {length} is not in its shortest form",
                                  offset=base + pos - 1, field=f"{field}.{tag}",
                                  hint="lengths below 128 take one byte")
            pos += k
        else:
            length = lb
        if pos + length > n:
            raise FormatError(f"BER-TLV tag {tag}: value of {length} bytes runs past the end of the field "
                              f"({n - pos} left)", offset=base + pos, field=f"{field}.{tag}")
        if tag in out:
            raise FormatError(f"BER-TLV tag {tag} appears twice", offset=base + start, field=f"{field}.{tag}")
        out[tag] = data[pos:pos + length].hex().upper()
        pos += length
    return out


def _tag_ok(tb: bytes) -> bool:
    if not tb:
        return False
    if tb[0] & 0x1F != 0x1F:
        return len(tb) == 1
    if len(tb) < 2:
        return False
    return all(b & 0x80 for b in tb[1:-1]) and not tb[-1] & 0x80


def encode_tlv(values: dict[str, str], *, field: str = "55") -> bytes:
    if not isinstance(values, dict):
        raise FormatError(f"expected a mapping of BER-TLV tag -> hex value, got {type(values).__name__}",
                          field=field)
    out = bytearray()
    for tag, value in values.items():
        try:
            tb = bytes.fromhex(tag)
        except (TypeError, ValueError):
            raise FormatError(f"BER-TLV tag {tag!r} is not hex", field=f"{field}.{tag}") from None
        if not _tag_ok(tb):
            raise FormatError(f"{tag!r} is not a well-formed BER tag", field=f"{field}.{tag}",
                              hint="single-byte tags have low 5 bits != 11111; multi-byte tags continue with bit 8 set")
        try:
            vb = bytes.fromhex(value)
        except (TypeError, ValueError):
            raise FormatError(f"value {value!r} is not hex", field=f"{field}.{tag}",
                              hint="BER-TLV values are given as hex strings, e.g. '000000001000'") from None
        out += tb
        n = len(vb)
        if n < 128:
            out.append(n)
        elif n < 256:
            out += bytes((0x81, n))
        elif n < 65536:
            out += bytes((0x82,)) + n.to_bytes(2, "big")
        else:
            raise FormatError(f"value of {n} bytes is too long", field=f"{field}.{tag}")
        out += vb
    return bytes(out)
