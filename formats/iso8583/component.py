"""The ``iso8583`` format kind: ``format AuthReq = iso8583 "specs/visa.yaml"``
or a built-in spec by name: ``format AuthReq = iso8583 iso8583_1987_ascii``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from formats.component import ComponentSpec, FieldKind, OptionSpec
from formats.errors import SpecError
from formats.iso8583 import codec_for
from formats.iso8583.codec import Iso8583Codec
from formats.iso8583.macs import check_exempt, plan_mac
from formats.iso8583.spec import builtin_specs, check_spec
from formats.mac import ALGORITHMS, MacError, check_algorithm, parse_key

MAC_OPTIONS = ("mac_algorithm", "mac_key_env", "mac_key_file", "mac_field", "mac_exempt")


def _spec_ref(decl: Any) -> Any:
    ref = (decl.options or {}).get("spec")
    if not ref:
        raise SpecError(f"format {decl.name}: iso8583 needs a spec", hint='write iso8583 "my_network.yaml" or '
                        f"one of the built-in specs: {', '.join(builtin_specs())}")
    return ref


def build(decl: Any) -> Iso8583Codec:
    codec = _build_plain(decl)
    opts = decl.options or {}
    if not any(opts.get(o) is not None for o in MAC_OPTIONS):
        return codec
    return codec.with_mac(mac_policy(decl, codec.spec))


def _build_plain(decl: Any) -> Iso8583Codec:
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


def _mac_options(decl: Any, spec: Any) -> tuple[str, dict[int, Any], int | None, tuple[str, ...]]:
    """The MAC options checked without the key: (algorithm, slots, mac_field, exempt MTIs).
    SpecError naming the format and the option."""
    opts = decl.options or {}
    algorithm = opts.get("mac_algorithm")
    if algorithm is None:
        given = next(o for o in MAC_OPTIONS if opts.get(o) is not None)
        raise SpecError(f"option {given} needs mac_algorithm (MACs are off without it)",
                        hint=f"add mac_algorithm \"retail-des\" (one of {', '.join(ALGORITHMS)})")
    try:
        check_algorithm(algorithm)
    except MacError as exc:
        raise SpecError(f"option mac_algorithm: {exc.message}", hint=exc.hint) from None
    env, path = opts.get("mac_key_env"), opts.get("mac_key_file")
    if (env is None) == (path is None):
        raise SpecError("MACs need exactly one of mac_key_env and mac_key_file"
                        + (", not both" if env is not None else ""),
                        hint='mac_key_env "NET_MAC_KEY" (an environment variable) or mac_key_file '
                             '"keys/net.mac" (a file, relative to the route file)')
    if env is not None and (not isinstance(env, str) or not env or "=" in env):
        raise SpecError(f"option mac_key_env: expected the name of an environment variable, got {env!r}")
    number = opts.get("mac_field")
    if number is not None and (isinstance(number, bool) or number not in (64, 128)):
        raise SpecError(f"option mac_field: the MAC travels in field 64 or 128, not {number!r}",
                        hint="leave mac_field out: 64 without a secondary bitmap, 128 with one")
    try:
        exempt = check_exempt(opts.get("mac_exempt"))
        slots = plan_mac(spec, algorithm, number)
    except MacError as exc:
        raise SpecError(f"{exc.message}", hint=exc.hint) from None
    return algorithm, slots, number, exempt


def _read_key(decl: Any, algorithm: str) -> bytes:
    """The key from its variable or file, checked; MacError naming the format and the option, never the key."""
    opts = decl.options or {}
    env, path = opts.get("mac_key_env"), opts.get("mac_key_file")
    if env is not None:
        from formats.secret_env import mark
        mark(env)                               # a route's env() never reads it (dsl.functions.f_env)
        option, text = "mac_key_env", os.environ.get(env)
        if text is None:
            raise MacError(f"option mac_key_env: environment variable {env} is not set "
                           f"(export it before `bsp run`)")
        source = f"environment variable {env}"
    else:
        option, source = "mac_key_file", f"key file {path}"
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            raise MacError(f"option mac_key_file: cannot read key file {path}: {why}") from None
    try:
        return parse_key(algorithm, text)
    except MacError as exc:
        raise MacError(f"option {option}: {source}: {exc.message}", hint=exc.hint) from None


def mac_policy(decl: Any, spec: Any) -> Any:
    """The ``MacPolicy`` of a format with MACs on: options checked, then the key read."""
    from formats.iso8583.macs import MacPolicy
    algorithm, slots, number, exempt = _mac_options(decl, spec)
    return MacPolicy(algorithm, _read_key(decl, algorithm), slots, number, frozenset(exempt))


def check(decl: Any, base_dir: Any = None) -> list[SpecError]:
    try:
        ref = _spec_ref(decl)
    except SpecError as exc:
        return [exc]
    spec, errors = check_spec(ref)
    opts = decl.options or {}
    if spec is not None and not errors and any(opts.get(o) is not None for o in MAC_OPTIONS):
        try:
            _mac_options(decl, spec)       # the key is not read: `bsp check` runs without it
        except SpecError as exc:
            errors = [*errors, exc]
    return errors


def fields(decl: Any, base_dir: Any = None) -> list[str] | None:
    try:
        return codec_for(_spec_ref(decl)).fields()
    except SpecError:
        return None


def classification(decl: Any, base_dir: Any = None) -> dict[str, str] | None:
    """The spec's classified fields (``{"2": "pan", "35": "secret"}``), as the codec masks them."""
    try:
        return codec_for(_spec_ref(decl)).classification_tags()
    except SpecError:
        return None


_UNIT = {"n": "digits", "z": "digits", "xn": "digits", "b": "bytes (as hex text)"}


def field_kind(decl: Any, base_dir: Any = None, parts: tuple = ()) -> FieldKind | None:
    """Every value decodes to text (``"t"``, the MTI, and each field by its number; an ``n`` field's digits
    as on the wire, zero-padded: ``"4" = "000000012550"``); the encoder takes an integer for an ``n``
    field (zero-padded), text only for the others."""
    try:
        spec = codec_for(_spec_ref(decl)).spec
    except SpecError:
        return None
    if not parts or not isinstance(parts[0], str):
        return None
    if parts[0] == "t":
        return FieldKind("string", "the ISO 8583 MTI, 4 digits", digits=True, pad=4,
                         sends=frozenset({"string"})) if len(parts) == 1 else None
    f = next((x for x in spec.fields.values() if x.key == parts[0]), None)
    if f is None:
        return None
    size = (f"{f.length}" if f.length is not None else f"up to {f.max}") + " " + _UNIT.get(f.type, "characters")
    declared = f"ISO 8583 type {f.type}, {size}"
    if len(parts) > 1:          # a composite's subfield (43.name) or a TLV tag (55.9F02): text
        return FieldKind("string", f"part of {declared}") if len(parts) == 2 else None
    if f.subfields or f.tlv:
        return None
    if f.type == "n":
        return FieldKind("string", declared, digits=True, pad=f.length or 0,
                         sends=frozenset({"string", "integer"}))
    return FieldKind("string", declared, sends=frozenset({"string"}))


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
        OptionSpec("mac_algorithm", "string", "Turns message MACs on: every message (but mac_exempt MTIs) "
                   "carries a MAC as its last field, verified on decode (missing or wrong: error kind "
                   "`unauthenticated`, code 63) and computed on encode.", choices=ALGORITHMS),
        OptionSpec("mac_key_env", "string", "Environment variable holding the MAC key (hex for cmac-aes and "
                   "retail-des; the secret's text, or hex:..., for hmac-sha256). Read when the engine starts, "
                   "never by `bsp check`.", default=None),
        OptionSpec("mac_key_file", "path", "File holding the MAC key (as mac_key_env), instead of a variable; "
                   "need not exist for `bsp check`, never versioned into the ledger.", default=None,
                   secret=True),
        OptionSpec("mac_field", "int", "64 or 128: the field carrying the MAC (default: 64 when the message has "
                   "no secondary bitmap, 128 when it has).", default=None),
        OptionSpec("mac_exempt", "list", "MTIs that carry no MAC, e.g. [\"0800\", \"0810\"].", default=None),
    ),
    build=build,
    check=check,
    fields=fields,
    classification=classification,
    field_kind=field_kind,
    examples=('format AuthReq = iso8583 "specs/acquirer.yaml"', "format AuthReq = iso8583 iso8583_1987_ascii",
              'format Net = iso8583 "specs/network.yaml" mac_algorithm "retail-des" mac_key_env "NET_MAC_KEY" '
              'mac_exempt ["0800", "0810"]'),
    positional="spec",
)
