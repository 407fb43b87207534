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

What a channel still needs of the configuration a swap replaced (a MUX reads the replies to the calls it has
in flight with its formats) is handed to ``adopt(ctx, keep=...)`` and read as ``before``: held only as long as
that configuration lives (its last exchange done, its generation freed, it is dropped).
"""
from __future__ import annotations

import weakref
from typing import Any, Callable


class Staging:
    def __init__(self) -> None:
        self._bound: weakref.ref[Any] | None = None        # the binder whose values are in force (None: none yet)
        self._staged: tuple[weakref.ref[Any], Callable[[], None]] | None = None
        self._before: tuple[weakref.ref[Any], Any] | None = None  # the binder the last adopt replaced, what is kept for it

    @property
    def bound(self) -> Any:
        """The binder whose values are in force (None: none yet, or it was freed; ``bind`` tells them apart)."""
        return self._bound() if self._bound is not None else None

    @property
    def staged(self) -> Any:
        """The binder bound meanwhile whose values wait for ``adopt`` (None: none)."""
        return self._staged[0]() if self._staged is not None else None

    @property
    def before(self) -> Any:
        """What ``adopt(keep=...)`` kept for the configuration it replaced, while that one lives (None: gone)."""
        return self._before[1] if self._before is not None and self._before[0]() is not None else None

    def bind(self, ctx: Any, apply: Callable[[], None]) -> None:
        """``ctx``'s values: in force at once when nothing was bound before (the channel's first configuration)
        or ``ctx`` is the binder in force; else staged until ``adopt(ctx)``.  A binder in force that was freed
        (a reload kept the channel in a version that binds nothing of it, and the old version ended) is not
        "nothing bound": the values in force stay until a swap adopts new ones, not a dry run's."""
        if self._bound is None or self.bound is ctx:
            apply()
            self._bound = weakref.ref(ctx)
        else:
            self._staged = (weakref.ref(ctx, self._freed), apply)

    def adopt(self, ctx: Any, keep: Any = None) -> None:
        """``ctx``'s values are in force now (if it was staged); ``keep``: what the channel still needs of the
        configuration it replaces, ``before`` until that one is freed."""
        staged = self._staged
        if staged is None or staged[0]() is not ctx:
            return
        self._staged = None
        replaced = self.bound
        self._before = (weakref.ref(replaced, self._freed), keep) if keep is not None and replaced is not None \
            else None
        staged[1]()
        self._bound = weakref.ref(ctx)

    def _freed(self, ref: "weakref.ref[Any]") -> None:
        """A staged binder freed without being adopted (a dry run's, a refused reload's): its values go too;
        the binder a swap replaced freed (its last exchange done): what was kept for it goes."""
        if self._staged is not None and self._staged[0] is ref:
            self._staged = None
        if self._before is not None and self._before[0] is ref:
            self._before = None


__all__ = ["Staging"]
