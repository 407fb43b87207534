"""The `kv` format: ``ref=P1;account=7992739871;amount=10.25;`` (UTF-8 text).

Sans-IO like every bsp format: bytes in, values out and back; no trio, no engine.
A bad message raises ``FormatError`` (with the byte offset and the field): the
request is rejected as `malformed` and dead-lettered.
"""
from decimal import Decimal, InvalidOperation

from formats.component import ComponentSpec, OptionSpec
from formats.errors import FormatError, SpecError


class KvCodec:
    def __init__(self, name, amounts, separator):
        self.name = name
        self.amounts = frozenset(amounts)      # fields read as Decimal: money is never a float
        self.separator = separator

    def decode(self, data: bytes) -> dict:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"not UTF-8 text: {exc.reason}", offset=exc.start) from None
        values, offset = {}, 0
        for pair in text.split(self.separator):
            if pair.strip():
                key, eq, value = pair.partition("=")
                key = key.strip()
                if not eq or not key:
                    raise FormatError(f"{pair!r} is not key=value", offset=offset,
                                      hint=f"write pairs as key=value{self.separator}")
                if key in self.amounts:
                    try:
                        value = Decimal(value)
                    except InvalidOperation:
                        raise FormatError(f"{value!r} is not an amount", offset=offset, field=key) from None
                values[key] = value
            offset += len(pair.encode("utf-8")) + len(self.separator.encode("utf-8"))
        return values

    def encode(self, values: dict) -> bytes:
        out = []
        for key, value in values.items():
            if value is None:
                continue
            text = format(value, "f") if isinstance(value, Decimal) else str(value)
            if self.separator in text or "=" in key:
                raise FormatError(f"value {text!r} holds the separator {self.separator!r}", field=key)
            out.append(f"{key}={text}{self.separator}")
        return "".join(out).encode("utf-8")


def build(decl):
    """``decl`` is the route file's format declaration: ``.name``, ``.options`` (checked against
    OPTIONS below, defaults filled in)."""
    return KvCodec(decl.name, decl.options.get("amounts") or (), decl.options["separator"])


def check(decl):
    """Run by ``bsp check``: what ``build`` would refuse, as errors at the declaration."""
    sep = decl.options.get("separator")
    if not sep or "=" in sep:
        # bsp check prefixes "format `NAME`:", points at the option the message names and shows the hint
        return [SpecError(f"separator {sep!r} must be one or more characters, not '='",
                          hint='e.g. separator ";" or separator "|"')]
    return []


COMPONENT = ComponentSpec(
    category="format",
    name="kv",
    doc="Text of `key=value` pairs, each ended by a separator (`;`). Fields named in `amounts` are decimals.",
    options=(
        OptionSpec("amounts", "list", "Fields read as decimal amounts, e.g. [amount, fee]."),
        OptionSpec("separator", "string", "What ends each pair.", default=";"),
    ),
    build=build,
    check=check,
    examples=("format Pay = kv amounts [amount]",),
)
