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
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

KINDS = ("good", "rejected", "failing")
DEFAULT_MIX = {"good": 80, "rejected": 12, "failing": 8}
STATUS_OF_KIND = {"good": "committed", "rejected": "rejected", "failing": "failed"}
FAIL_MARK = "F"


def refuses(reference: Any) -> bool:
    """The counterpart convention: a reference ending in ``F`` is refused."""
    return str(reference or "").rstrip().endswith(FAIL_MARK)


def trace(prefix: str, n: int, kind: str, width: int = 16) -> str:
    """A reference unique per request: PREFIX + zero-padded number + kind letter (G, R or F)."""
    letter = {"good": "G", "rejected": "R", "failing": FAIL_MARK}[kind]
    return f"{prefix}{n:0{width - len(prefix) - 1}d}{letter}"


@dataclass(frozen=True)
class Counterpart:
    """A system a service route calls: ``channel`` is the route's tcp.connect channel."""
    channel: str
    request_format: str
    reply_format: str
    answer: Callable[[Any], Any]
    framing: str = "length4"


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
    inbound: str                                # the tcp.listen channel the client drives
    request_format: str
    reply_format: str
    make: Callable[[str, int, random.Random], Request]
    code_of: Callable[[Any], str]               # reply values -> reply code
    counterparts: tuple[Counterpart, ...] = ()
    framing: str = "length2"
    mix: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MIX))
    encode: Callable[[Any, Any], bytes] | None = None   # (codec, values) -> bytes, when not codec.encode
    # counterparts that are simulators of their own (e.g. engine.sim.iso_host.IsoHost): (channel, factory);
    # the factory returns an object with ``serve(task_status=...)``, ``port``, ``requests``, ``bad_requests``
    hosts: tuple[tuple[str, Callable[[], Any]], ...] = ()
    # "tcp": a ServiceClient drives ``inbound``; "file": batch files are dropped in the watched directory
    transport: str = "tcp"
    ack_channel: str = ""                       # transport "file": the file.write channel of the acknowledgements
    trailer: Callable[[list[Request]], bytes] | None = None   # transport "file": a batch file's trailer record
