"""What a business service's simulation is made of (data only, no I/O).

A ``Service`` names the route folder, the inbound channel a client drives,
the formats the client encodes requests and decodes replies with (taken from
the compiled route program, so simulators and routes cannot drift apart),
a request generator for each kind of request, the reply code each kind must
get, and the ``Counterpart`` systems the route calls.

Kinds: ``good`` (committed, code "00"), ``rejected`` (a validate rule,
ledger status ``rejected``) and ``failing`` (the counterpart refuses, ledger
status ``failed``).  A request is made to fail at the counterpart by ending its
reference with ``F``: every counterpart simulator refuses such references.

References are unique per run, not only within one: the routes declare deal keys
(docs/transactions.md), and the key store outlives a run (35 days), so a second
``bsp demo`` on the same ledger that sent the same references would get every
deal answered as a duplicate of the first run's.  ``make(kind, n, rng, run)``
puts the client's ``run_tag()`` into each reference.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

KINDS = ("good", "rejected", "failing")
DEFAULT_MIX = {"good": 80, "rejected": 12, "failing": 8}
STATUS_OF_KIND = {"good": "committed", "rejected": "rejected", "failing": "failed"}
FAIL_MARK = "F"


def refuses(reference: Any) -> bool:
    """The counterpart convention: a reference ending in ``F`` is refused."""
    return str(reference or "").rstrip().endswith(FAIL_MARK)


RUN_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
RUN_WIDTH = 5
RUN_EPOCH = 1_767_225_600            # 2026-01-01T00:00:00Z
_run_lock = threading.Lock()
_last_run = [-1]


def run_tag(now: float | None = None) -> str:
    """Five characters that set one run's references apart from any other run's: the tenths of a
    second since 2026-01-01 in base 36, which come round after 70 days (past the key store's 35-day
    retention).  A tag asked for again in the same tenth of a second by this process is the next one."""
    t = int(((time.time() if now is None else now) - RUN_EPOCH) * 10)
    with _run_lock:
        if now is None and t <= _last_run[0]:
            t = _last_run[0] + 1
        if now is None:
            _last_run[0] = t
    t %= len(RUN_DIGITS) ** RUN_WIDTH
    out = ""
    for _ in range(RUN_WIDTH):
        t, d = divmod(t, len(RUN_DIGITS))
        out = RUN_DIGITS[d] + out
    return out


def trace(prefix: str, n: int, kind: str, width: int = 16, run: str = "") -> str:
    """A reference unique per request: PREFIX + the run's tag + zero-padded number + kind letter (G, R or F)."""
    letter = {"good": "G", "rejected": "R", "failing": FAIL_MARK}[kind]
    digits = width - len(prefix) - len(run) - 1
    number = f"{n:0{digits}d}"
    if len(number) > digits:
        raise ValueError(f"reference {prefix}{run}...: request number {n} does not fit in {digits} digits "
                         f"({width} characters in all): send at most {10 ** digits - 1} requests per run")
    return f"{prefix}{run}{number}{letter}"


@dataclass(frozen=True)
class Counterpart:
    """A system a service route calls: ``channel`` is the route's tcp.connect channel."""
    channel: str
    request_format: str
    reply_format: str
    answer: Callable[[Any], Any]
    framing: str = "length4"
    # the deal's reference in a decoded request, so the simulator can count calls per reference (the
    # demo checks that none reached it twice: a repeated request must not be made again)
    ref: Callable[[Any], Any] | None = None
    # more request formats the routes send to this channel (fund consolidation's SWIFT gateway takes
    # MT101s and MT103s): a request is decoded with the first of request_format and these that reads it
    also: tuple[str, ...] = ()

    @property
    def request_formats(self) -> tuple[str, ...]:
        return (self.request_format, *self.also)


@dataclass(frozen=True)
class Request:
    kind: str
    values: Any
    expect_code: str            # reply code this request must get
    ref: str = ""               # the deal reference the ledger row will carry


@dataclass(frozen=True)
class Service:
    name: str                                   # routes/<name>/
    title: str
    inbound: str                                # the tcp.listen (or http.listen) channel the client drives
    request_format: str
    reply_format: str
    make: Callable[[str, int, random.Random, str], Request]     # (kind, n, rng, run tag)
    code_of: Callable[[Any], str]               # reply values -> reply code
    counterparts: tuple[Counterpart, ...] = ()
    framing: str = "length2"
    mix: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MIX))
    encode: Callable[[Any, Any], bytes] | None = None   # (codec, values) -> bytes, when not codec.encode
    # counterparts that are simulators of their own (e.g. engine.sim.iso_host.IsoHost): (channel, factory);
    # the factory returns an object with ``serve(task_status=...)``, ``port``, ``requests``, ``bad_requests``
    hosts: tuple[tuple[str, Callable[[], Any]], ...] = ()
    # "tcp": a ServiceClient drives ``inbound``; "http": an HttpServiceClient posts each request to
    # ``http_path`` of the http.listen channel ``inbound``; "file": batch files are dropped in the watched directory
    transport: str = "tcp"
    http_path: str = ""
    ack_channel: str = ""                       # transport "file": the file.write channel of the acknowledgements
    trailer: Callable[[list[Request]], bytes] | None = None   # transport "file": a batch file's trailer record
    # transport "file": a batch file's header line (b"" for none), which file a request goes in (default its
    # ``batch_id``), what identifies a record in a request's values and in an acknowledgement line alike
    # (default ``(batch_id, record_no)``), and whether each acknowledgement file starts with a header line
    # (a ``file write`` channel with ``mode = "append"`` and ``header``)
    file_header: bytes = b""
    # transport "file": a batch file's header record computed from its requests (a payroll file's company,
    # value date, count and control total), written instead of ``file_header``
    batch_header: Callable[[list[Request]], bytes] | None = None
    batch_of: Callable[[Any], str] | None = None
    record_key: Callable[[Any], tuple[Any, ...]] | None = None
    ack_header: bool = False
    # transport "file", a channel with all_or_nothing: the kinds of request the route's checks refuse, each put
    # in a file of its own (``batch_of``: named after its reference) that the channel refuses whole: answered
    # by the file's batch line, recorded by the file's end deal (found by the file's name), no deal of its own
    refused_whole: frozenset[str] = frozenset()
    # which good requests go to a route with a deal key (docs/transactions.md#idempotency): the demo's
    # client sends a share of those again (engine.sim.repeats); None: none (enquiries, batch files)
    keyed: Callable[[Any], bool] | None = None
    # awaited with the engine's ledger before a load (``Rig.load``): a generator that must know what the
    # ledger holds already, e.g. the drawings a ``limit`` total has counted (engine.sim.services.trade_receiving)
    prepare: Callable[[Any], Awaitable[None]] | None = None
