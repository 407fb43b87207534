"""What a channel takes from the configuration bound with it (``bind_codecs``), applied at the swap.

A reload keeps a channel whose declaration did not change: the same object serves the old configuration
and then the new one.  The new one is bound while the old one runs, and may never run at all (a dry run, a
reload refused after the bind), so what the channel reads of it (an http listen's accepted Content-Types,
a file watch's trailer formats) is staged and applied only when the engine swaps to it
(``LiveEngine`` calls ``adopt(binder)`` on each channel it kept).  The first binding applies at once.

    def bind_codecs(self, ctx):
        value = ...                          # computed (and checked) now: an error refuses the reload
        self.staging.bind(ctx, lambda: setattr(self, "accepted", value))

    def adopt(self, ctx):
        self.staging.adopt(ctx)
"""
from __future__ import annotations

from typing import Any, Callable


class Staging:
    def __init__(self) -> None:
        self.bound: Any = None                # the binder whose values are in force
        self.staged: tuple[Any, Callable[[], None]] | None = None

    def bind(self, ctx: Any, apply: Callable[[], None]) -> None:
        if self.bound is None or self.bound is ctx:
            apply()
            self.bound = ctx
        else:
            self.staged = (ctx, apply)

    def adopt(self, ctx: Any) -> None:
        staged = self.staged
        if staged is None or staged[0] is not ctx:
            return
        self.staged = None
        staged[1]()
        self.bound = ctx


__all__ = ["Staging"]
