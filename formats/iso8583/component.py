"""The ``iso8583`` format kind: ``format AuthReq = iso8583 "specs/visa.yaml"``
or a built-in spec by name: ``format AuthReq = iso8583 iso8583_1987_ascii``."""
from __future__ import annotations

from typing import Any

from formats.component import ComponentSpec, OptionSpec
from formats.errors import SpecError
from formats.iso8583 import codec_for
from formats.iso8583.codec import Iso8583Codec
from formats.iso8583.spec import builtin_specs, check_spec


def _spec_ref(decl: Any) -> Any:
    ref = (decl.options or {}).get("spec")
    if not ref:
        raise SpecError(f"format {decl.name}: iso8583 needs a spec", hint='write iso8583 "my_network.yaml" or '
                        f"one of the built-in specs: {', '.join(builtin_specs())}")
    return ref


def build(decl: Any) -> Iso8583Codec:
    codec = codec_for(_spec_ref(decl))
    if not (decl.options or {}).get("validate", True):
        return Iso8583Codec(codec.spec, decl.name, validate=False)
    if codec.name != decl.name:
        # share the compiled spec but carry the declared format name
        named = Iso8583Codec.__new__(Iso8583Codec)
        named.__dict__.update(codec.__dict__)
        named.name = decl.name
        return named
    return codec


def check(decl: Any, base_dir: Any = None) -> list[SpecError]:
    try:
        ref = _spec_ref(decl)
    except SpecError as exc:
        return [exc]
    return check_spec(ref)[1]


def fields(decl: Any, base_dir: Any = None) -> list[str] | None:
    try:
        return codec_for(_spec_ref(decl)).fields()
    except SpecError:
        return None


COMPONENT = ComponentSpec(
    category="format",
    name="iso8583",
    doc="ISO 8583 card messages described by a YAML network spec (MTI, bitmaps, LL/LLL fields in "
        "ASCII/EBCDIC/BCD/binary, composite subfields, BER-TLV DE 55). Values: 't' (MTI) and field "
        "numbers as text; amounts stay digit strings. See docs/formats-iso8583.md.",
    options=(
        OptionSpec("spec", "path", "the network spec (.yaml), or a built-in spec name such as "
                   "iso8583_1987_ascii / iso8583_1987_bcd", required=True,
                   choices=tuple(builtin_specs())),
        OptionSpec("validate", "bool", "check field contents (classes, dates, track 2) and the spec's per-MTI "
                   "message rules on decode and encode; false gives a lenient reader", default=True),
    ),
    build=build,
    check=check,
    fields=fields,
    examples=('format AuthReq = iso8583 "specs/acquirer.yaml"', "format AuthReq = iso8583 iso8583_1987_ascii"),
    positional="spec",
)
