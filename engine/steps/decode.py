"""``decode SOURCE as FORMAT``: decode bytes (e.g. a field holding an embedded message) into ``msg``."""
from __future__ import annotations

from typing import Any

from engine.runtime.exchange import StepFailure
from engine.steps.base import SyncStep
from formats.component import ComponentSpec, OptionSpec
from formats.errors import FormatError
from formats.mac import MacError


class DecodeStep(SyncStep):
    def __init__(self, step: Any, ctx: Any, route: Any) -> None:
        super().__init__(step)
        self.format = step.options["format"]
        self.codec = ctx.codec(self.format)
        self.source = ctx.expr(step.options["source"])
        self.name = step.name or "msg"

    def run(self, ex: Any) -> None:
        data = self.source(ex.scope)
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, (bytes, bytearray)):
            raise StepFailure("malformed", f"decode as {self.format}: expected bytes or text, got "
                              f"{type(data).__name__}", where=self.where)
        try:
            value = self.codec.decode(bytes(data))
        except MacError as exc:      # its MAC is missing or wrong: kind unauthenticated (code 63)
            raise StepFailure("unauthenticated", f"cannot decode as {self.format}: {exc}",
                              where=self.where) from exc
        except FormatError as exc:
            raise StepFailure("malformed", f"cannot decode as {self.format}: {exc}", where=self.where) from exc
        ex.scope[self.name] = value
        if self.name == "msg":
            ex.msg = value


COMPONENT = ComponentSpec(
    category="step",
    name="decode",
    doc=("Decode bytes (the raw request, or a field holding an embedded message) with a format and "
         "bind the result to `msg`. Bad bytes reject the request with error kind `malformed` (a missing or "
         "wrong message MAC: `unauthenticated`)."),
    options=(
        OptionSpec("format", "format", "The format to decode with.", required=True),
        OptionSpec("source", "expr", "The bytes to decode (default: raw).", required=True),
    ),
    build=DecodeStep,
    examples=("decode raw as BillPayReq",),
)
