"""ISO 8583, driven by our YAML network specs (formats/specs/iso8583_*.yaml).

Public API::

    load_spec(path_or_builtin_name) -> IsoSpec        # SpecError with file:line:col
    Iso8583Codec(spec).decode(bytes) -> IsoMessage    # dict + .classification
    Iso8583Codec(spec).encode(values) -> bytes
    codec_for(path_or_name, validate=True) -> Iso8583Codec   # cached per spec file
    Iso8583Codec(spec, validate=False) / codec.lenient()     # no content / message-rule checks
    mux_key(values) -> (mti_class, DE 11, DE 41)
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from formats.iso8583.amounts import from_decimal, to_decimal
from formats.iso8583.codec import Iso8583Codec, IsoMessage
from formats.iso8583.mux import mux_key
from formats.iso8583.rules import MessageRule
from formats.errors import SpecError
from formats.iso8583.spec import (FieldSpec, IsoSpec, builtin_specs, check_spec, load_spec, parse_spec_text,
                                   resolve_spec_path)
from formats.versioned import held, read_bytes


@lru_cache(maxsize=64)
def _codec_cached(path: str, text: str) -> Iso8583Codec:
    spec, errors = parse_spec_text(text, path)
    if errors:
        raise errors[0]
    assert spec is not None
    return Iso8583Codec(spec)


def codec_for(ref: str | Path, validate: bool = True) -> Iso8583Codec:
    """The codec of a spec file (or built-in spec), cached by its text: the text the configuration's
    version holds in a ``formats.versioned`` block (the engine's bind), else the file's."""
    path = Path(ref) if held(ref) is not None else resolve_spec_path(ref)
    try:
        text = read_bytes(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read ISO 8583 spec: {exc}", path=str(ref)) from None
    codec = _codec_cached(str(path), text)
    return codec if validate else _lenient_cached(codec)


@lru_cache(maxsize=64)
def _lenient_cached(codec: Iso8583Codec) -> Iso8583Codec:
    return codec.lenient()


__all__ = ["FieldSpec", "IsoSpec", "Iso8583Codec", "IsoMessage", "MessageRule", "builtin_specs", "check_spec",
           "codec_for", "from_decimal", "load_spec", "mux_key", "to_decimal"]
