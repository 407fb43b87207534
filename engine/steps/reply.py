"""``reply FORMAT { field = expr ... }``: the answer sent back on the request's connection."""
from __future__ import annotations

from typing import Any

from engine.runtime.binder import BindError
from engine.runtime.exchange import StepFailure
from engine.steps.base import SyncStep
from formats.classify import safe_error_text, tags_of
from formats.component import ComponentSpec, OptionSpec
from formats.errors import FormatError
from formats.json_codec import JsonCodec


class ReplyStep(SyncStep):
    def __init__(self, step: Any, ctx: Any, route: Any) -> None:
        super().__init__(step)
        self.format = step.options.get("format") or (route.format if route is not None else None)
        if self.format is None:
            raise BindError(f"{self.where}: reply needs a format (the route receives raw bytes); "
                            f"write `reply FORMAT {{ ... }}`")
        self.codec = ctx.codec(self.format)
        self.build_values = ctx.assigns(step.options.get("fields", ()))
        # plain JSON: the deal's response column takes the reply bytes as they are
        self.json_text = isinstance(self.codec, JsonCodec) and not self.codec.classify
        self.tags = tags_of(self.codec) if self.codec is not None else {}
        note = getattr(ctx, "codec_note", None)
        self.codec_note = note(self.format) if note is not None else ""

    def run(self, ex: Any) -> None:
        values = self.build_values(ex.scope)
        try:
            ex.reply = self.codec.encode(values)
        except FormatError as exc:
            raise StepFailure("internal", f"reply {self.format}: cannot encode: "
                              f"{safe_error_text(exc, self.tags, values)}", where=self.where) from exc
        except Exception as exc:
            if not self.codec_note:
                raise                    # bsp's own codec: a bug in bsp, reported as any step's
            # a plugin's codec: name it and whom to ask, not only the exception
            raise StepFailure("internal", f"reply {self.format}: encode raised {type(exc).__name__}: {exc}"
                              f"{self.codec_note}", where=self.where) from exc
        ex.reply_values = values
        ex.reply_json = ex.reply.decode("utf-8") if self.json_text else None


COMPONENT = ComponentSpec(
    category="step",
    name="reply",
    doc=("Build the answer from `field = expr` lines and encode it with the format (default: the "
         "route's receive format). The reply leaves only after the deal row is committed."),
    options=(
        OptionSpec("format", "format", "Format of the reply (default: the route's receive format)."),
        OptionSpec("fields", "list", "The reply's fields."),
    ),
    build=ReplyStep,
    examples=('reply BillPayRsp {\n    trace_no  = msg.trace_no\n    resp_code = "00"\n}',),
)
