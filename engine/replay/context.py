"""What one inbound request caused, collected while it runs (recording, replay, route tests).

The tap sets ``CURRENT`` around the dispatch of one frame; trio copies context
variables into child tasks, so the call steps and the ledger commit that run for
that frame see the same ``ExchangeCtx`` and add to it.
"""
from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any

CURRENT: contextvars.ContextVar["ExchangeCtx | None"] = contextvars.ContextVar("bsp_exchange", default=None)


@dataclass
class CallRecord:
    """One outbound request and its answer (``reply`` bytes, or ``error`` kind + text)."""
    channel: str
    seq: int                       # nth call of this exchange (0-based)
    request: bytes
    reply: bytes | None = None
    error: str | None = None       # "timeout: ...", "lost: ...", "unreachable: ..."
    t_out: float = 0.0             # trio clock
    t_in: float = 0.0
    names: dict[str, str] | None = None   # a file write's name values (``name { ref = ... }``), as given
    paired: Any = None             # replay: the RecordedCall whose answer it got (the diff compares with it)


@dataclass
class ExchangeCtx:
    exchange: int
    channel: str
    conn: str
    request: bytes
    t_in: float = 0.0
    at: Any = None                         # datetime received
    reply: bytes | None = None
    t_out: float = 0.0
    calls: list[CallRecord] = field(default_factory=list)
    deal: Any = None                       # the DealRecord committed for it
    dead_letters: list[Any] = field(default_factory=list)
    framing_error: str | None = None
    refused: str | None = None             # "KIND: detail": the channel refused it before any route ran
    config_version: str | None = None      # the configuration version that served it
    extra: dict[str, Any] = field(default_factory=dict)
    clock_reads: list[Any] = field(default_factory=list)   # the instants now()/today() read (recording)

    def next_call_seq(self) -> int:
        return len(self.calls)

    def calls_to(self, channel: str) -> list[CallRecord]:
        return [c for c in self.calls if c.channel == channel]


def error_text(err: BaseException) -> str:
    kind = getattr(err, "kind", "failed")
    return f"{kind}: {err}"
