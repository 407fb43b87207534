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
from formats.iso8583.spec import FieldSpec, IsoSpec, builtin_specs, check_spec, load_spec, resolve_spec_path


@lru_cache(maxsize=64)
def _codec_cached(path: str, mtime: float) -> Iso8583Codec:
    return Iso8583Codec(load_spec(path))


def codec_for(ref: str | Path, validate: bool = True) -> Iso8583Codec:
    path = resolve_spec_path(ref)
    codec = _codec_cached(str(path), path.stat().st_mtime)
    return codec if validate else _lenient_cached(codec)


@lru_cache(maxsize=64)
def _lenient_cached(codec: Iso8583Codec) -> Iso8583Codec:
    return codec.lenient()


__all__ = ["FieldSpec", "IsoSpec", "Iso8583Codec", "IsoMessage", "MessageRule", "builtin_specs", "check_spec",
           "codec_for", "from_decimal", "load_spec", "mux_key", "to_decimal"]
