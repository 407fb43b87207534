"""The `piperec` format: ``HDR|f1|f2|...|TRL|CS``: a header word, the fields in the declared order, a
trailer ``TRL`` and a checksum (the sum of the bytes before ``|TRL|``, mod 256, two hex digits)."""
from decimal import Decimal, InvalidOperation

from formats.component import ComponentSpec, OptionSpec
from formats.errors import FormatError, SpecError


def checksum(data: bytes) -> str:
    return f"{sum(data) % 256:02X}"


class PipeCodec:
    def __init__(self, name, header, fields, amounts):
        self.name = name
        self.header = header
        self.fields = list(fields)
        self.amounts = frozenset(amounts)

    def decode(self, data: bytes) -> dict:
        body, sep, trailer = data.rpartition(b"|TRL|")
        if not sep:
            raise FormatError("no trailer |TRL|CS", offset=len(data), hint="end the record with |TRL|<checksum>")
        want = checksum(body)
        if trailer.decode("ascii", "replace").upper() != want:
            raise FormatError(f"checksum {trailer!r} does not match the record ({want})",
                              offset=len(body) + 5)
        try:
            parts = body.decode("ascii").split("|")
        except UnicodeDecodeError as exc:
            raise FormatError(f"not ASCII: {exc.reason}", offset=exc.start) from None
        if parts[0] != self.header:
            raise FormatError(f"header {parts[0]!r}, expected {self.header!r}", offset=0)
        if len(parts) - 1 != len(self.fields):
            raise FormatError(f"{len(parts) - 1} fields, expected {len(self.fields)} ({', '.join(self.fields)})",
                              offset=len(body))
        values, offset = {}, len(parts[0]) + 1
        for name, text in zip(self.fields, parts[1:]):
            if name in self.amounts:
                try:
                    values[name] = Decimal(text)
                except InvalidOperation:
                    raise FormatError(f"{text!r} is not an amount", offset=offset, field=name) from None
            else:
                values[name] = text
            offset += len(text) + 1
        return values

    def encode(self, values: dict) -> bytes:
        parts = [self.header]
        for name in self.fields:
            value = values.get(name)
            text = "" if value is None else format(value, "f") if isinstance(value, Decimal) else str(value)
            if "|" in text:
                raise FormatError(f"value {text!r} holds '|'", field=name)
            parts.append(text)
        body = "|".join(parts).encode("ascii")
        return body + b"|TRL|" + checksum(body).encode("ascii")


def build(decl):
    return PipeCodec(decl.name, decl.options["header"], decl.options["fields"], decl.options.get("amounts") or ())


def check(decl):
    fields = decl.options.get("fields") or []
    if not fields:
        return [SpecError(f"format {decl.name}: fields must name at least one field")]
    return []


def fields(decl):
    return list(decl.options.get("fields") or [])


COMPONENT = ComponentSpec(
    category="format",
    name="piperec",
    doc="A pipe-delimited record: a header word, the fields in order, a trailer `TRL` and a checksum.",
    options=(OptionSpec("header", "string", "The record's first word.", required=True),
             OptionSpec("fields", "list", "The fields, in order.", required=True),
             OptionSpec("amounts", "list", "Fields read as decimal amounts.")),
    build=build,
    check=check,
    fields=fields,
    examples=('format Pay = piperec header "PAY" fields [ref, account, amount] amounts [amount]',),
)
