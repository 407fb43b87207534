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

The binders (configurations) are held weakly: a channel kept over many reloads holds no configuration
alive, neither the one in force (its generation holds it while it runs) nor one bound by a dry run or a
reload refused after the bind (staged, never adopted: dropped with its values once that binder is freed).
Before, a kept channel held the last such configuration whole (its program, tables, codecs and the
channel objects built for it) until the next reload that switched.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable


class Staging:
    def __init__(self) -> None:
        self._bound: weakref.ref[Any] | None = None        # the binder whose values are in force
        self._staged: tuple[weakref.ref[Any], Callable[[], None]] | None = None

    @property
    def bound(self) -> Any:
        """The binder whose values are in force (None: none yet, or it was freed)."""
        return self._bound() if self._bound is not None else None

    @property
    def staged(self) -> Any:
        """The binder bound meanwhile whose values wait for ``adopt`` (None: none)."""
        return self._staged[0]() if self._staged is not None else None

    def bind(self, ctx: Any, apply: Callable[[], None]) -> None:
        bound = self.bound
        if bound is None or bound is ctx:
            apply()
            self._bound = weakref.ref(ctx)
        else:
            self._staged = (weakref.ref(ctx, self._freed), apply)

    def adopt(self, ctx: Any) -> None:
        staged = self._staged
        if staged is None or staged[0]() is not ctx:
            return
        self._staged = None
        staged[1]()
        self._bound = weakref.ref(ctx)

    def _freed(self, ref: "weakref.ref[Any]") -> None:
        """A staged binder freed without being adopted (a dry run's, a refused reload's): its values go too."""
        if self._staged is not None and self._staged[0] is ref:
            self._staged = None


__all__ = ["Staging"]
