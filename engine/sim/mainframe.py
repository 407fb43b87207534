"""A bank mainframe simulator: bill payment requests (fixed-width records) over
several pipelined connections, a mix of good, rejected, unrouted and malformed.

Uses the route's own ``BillPayReq`` codec to build requests, so the simulator
and the route cannot drift apart.  Every request is kept in
``result.requests`` (kind, trace number, the reply code it must get, the code
it got, client latency): replies on a connection come back in order, so each
is matched to the oldest request still waiting on that connection.

Trace numbers are unique per run, as a mainframe's are per business day: the
value date is the day the simulator starts, and a trace number is that start's
second of the day (5 digits) followed by the request's number (7 digits).  The
route's deal key is biller + trace number + value date, and the key store
outlives a run (35 days), so a second run on the same ledger must not send
the first one's traces (it would get every payment answered as a duplicate).

``run(..., repeats=0.02)`` sends that share of the good payments again, byte for
byte, after the original's reply has come back, as a mainframe does after a
time-out (engine.sim.repeats); a repeat is a ``SentRequest`` of its own with
``repeat_of`` set, must get the original's reply bytes, and is not counted in
``by_kind``.  The number sent is ``total`` either way.
"""
from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

import trio

from engine.sim.framed import pipelined, split
from engine.sim.pacing import Pacer
from engine.sim.repeats import Send, plan_sends

BILLERS = ("EL0001", "WA0001", "GA0001", "TE0001")
KINDS = ("good", "enquiry", "over_limit", "unknown_biller", "bad_currency", "unrouted", "malformed")
DEFAULT_MIX = {"good": 70, "enquiry": 8, "over_limit": 5, "unknown_biller": 5, "bad_currency": 3,
               "unrouted": 4, "malformed": 5}


# reply code each kind must get; a good payment whose trace number ends in a
# digit the biller refuses (BillerSim.refuse_digits, "7") fails with "05".
EXPECT = {"good": "00", "enquiry": "00", "over_limit": "61", "unknown_biller": "12", "bad_currency": "14",
          "unrouted": "12", "malformed": "30"}


_start_lock = threading.Lock()
_last_start: list[dt.datetime] = []


def run_start(now: dt.datetime | None = None) -> dt.datetime:
    """When a simulator starts, to the second; a start asked for again within the same second by this
    process is the next second (two simulators of one process never share a trace number)."""
    t = (now or dt.datetime.now()).replace(microsecond=0)
    with _start_lock:
        if _last_start and t <= _last_start[0]:
            t = _last_start[0] + dt.timedelta(seconds=1)
        _last_start[:] = [t]
    return t


def expected_code(kind: str, trace: str, refuse_digits: str = "7") -> str:
    if kind == "good" and trace[-1:] in refuse_digits:
        return "05"
    return EXPECT[kind]


@dataclass
class SentRequest:
    kind: str
    trace: str
    expect_code: str
    code: str | None = None          # None: no reply
    latency_ms: float | None = None
    raw: bytes | None = None         # the reply's bytes
    repeat_of: "SentRequest | None" = None   # a repeat: the original it was sent again for

    @property
    def repeat_differs(self) -> bool:
        return self.repeat_of is not None and (self.raw is None or self.raw != self.repeat_of.raw)


@dataclass
class MainframeResult:
    sent: int = 0
    replies: int = 0
    by_code: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    requests: list[SentRequest] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)   # per connection that stopped early: framed.CLOSED/TIMED_OUT

    @property
    def unexpected(self) -> list[SentRequest]:
        return [r for r in self.requests if r.code != r.expect_code]

    @property
    def repeats(self) -> list[SentRequest]:
        return [r for r in self.requests if r.repeat_of is not None]


class MainframeSim:
    def __init__(self, codec: Any, *, framing: str = "length2", seed: int = 7,
                 mix: dict[str, int] | None = None, start: dt.datetime | None = None) -> None:
        self.codec = codec
        self.framing = framing
        self.rng = random.Random(seed)
        self.repeat_rng = random.Random(f"mainframe:{seed}:repeats")
        mix = mix or DEFAULT_MIX
        self.kinds = [k for k in mix for _ in range(mix[k])]
        self.result = MainframeResult()
        self._trace = 0
        started = start if start is not None else run_start()
        self.value_date = started.date()                 # the business day the run's payments are for
        self._trace_base = (started.hour * 3600 + started.minute * 60 + started.second) * 10**7

    def request(self) -> tuple[str, bytes]:
        return self.next_request()[1:]

    def next_request(self) -> tuple[str, str, bytes]:
        """(trace number, kind, payload) of the next request."""
        kind = self.rng.choice(self.kinds)
        self._trace += 1
        trace = f"{self._trace_base + self._trace:012d}"
        return (trace, *self._build(kind, trace))

    def _build(self, kind: str, trace: str) -> tuple[str, bytes]:
        values = {
            "txn_code": "BP01", "trace_no": trace, "biller_id": self.rng.choice(BILLERS),
            "account": f"ACC{self.rng.randrange(10**9):09d}",
            "amount": Decimal(self.rng.randrange(100, 500000)) / 100, "currency": "CNY",
            "value_date": self.value_date,
        }
        if kind == "enquiry":
            values["txn_code"] = "BQ01"
        elif kind == "over_limit":
            values["amount"] = Decimal("75000.00")
        elif kind == "unknown_biller":
            values["biller_id"] = "ZZ9999"
        elif kind == "bad_currency":
            values["currency"] = "EUR"
        elif kind == "unrouted":
            values["txn_code"] = "XX99"
        if kind == "malformed":
            return kind, b"GARBAGE" + trace.encode()
        return kind, self.codec.encode(values)

    async def run(self, port: int, *, total: int, connections: int = 4, window: int = 32,
                  host: str = "127.0.0.1", progress: Callable[[int], None] | None = None,
                  repeats: float = 0.0, deadline: float = 30, reply_timeout: float | None = None,
                  tls: Any = None, server_name: str | None = None,
                  rate: float | None = None) -> MainframeResult:
        """Send ``total`` requests over ``connections`` connections, ``window`` in flight on each;
        ``repeats`` of the good ones (a share) are sent again within ``total``.  A connection stops
        sending after ``deadline`` seconds, and as soon as the engine closes it or leaves its requests
        unanswered for ``reply_timeout`` seconds (``result.stopped`` says which).  ``tls``: an
        ``ssl.SSLContext`` for TLS connections (engine.sim.framed.connect), ``server_name`` the name the
        engine's certificate must carry (default ``host``).  ``rate``: at most that many requests a
        second across all the connections (engine.sim.pacing); None: as fast as the windows allow.
        The replies to the requests sent when the deadline ends the sending are still waited for."""
        res = self.result
        pace = Pacer(rate).take if rate is not None else None
        if repeats > 0:
            plans: list[Any] = plan_sends(split(total, connections), self.next_request, lambda t: t[1] == "good",
                                          self.repeat_rng, repeats, window)
        else:       # built as they leave: a --duration run's cap can be far more than it sends
            plans = [_Lazy(n, self.next_request) for n in split(total, connections)]
        start = trio.current_time()

        async def one(plan: list[Any]) -> None:
            waiting: deque[tuple[SentRequest, float]] = deque()
            mine: list[SentRequest] = []

            def payloads(sent: int, count: int) -> list[bytes]:
                now, out = time.perf_counter(), []
                for step in plan[sent:sent + count]:
                    trace, kind, payload = step.item
                    req = SentRequest(kind, trace, expected_code(kind, trace))
                    if step.repeat_of is not None:
                        req.repeat_of = mine[step.repeat_of]
                    else:
                        res.by_kind[kind] = res.by_kind.get(kind, 0) + 1
                    mine.append(req)
                    res.requests.append(req)
                    waiting.append((req, now))
                    out.append(payload)
                res.sent += count
                return out

            def on_reply(reply: bytes, now: float) -> None:
                res.replies += 1
                code = _resp_code(reply)
                if waiting:
                    req, t_sent = waiting.popleft()
                    req.code, req.latency_ms, req.raw = code, (now - t_sent) * 1000.0, bytes(reply)
                res.by_code[code] = res.by_code.get(code, 0) + 1
                if progress is not None:
                    progress(1)

            why = await pipelined(host, port, self.framing, len(plan), window, payloads=payloads,
                                  on_reply=on_reply, deadline=deadline, drain_deadline=10,
                                  reply_timeout=reply_timeout, tls=tls, server_name=server_name, pace=pace)
            if why is not None:
                res.stopped.append(why)

        async with trio.open_nursery() as nursery:
            for plan in plans:
                nursery.start_soon(one, plan)
        res.elapsed = trio.current_time() - start
        return res


class _Lazy:
    """A connection's plan without repeats: ``n`` sends, each request built when it is about to leave."""

    def __init__(self, n: int, make_next: Callable[[], Any]) -> None:
        self.n = n
        self.make_next = make_next

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, where: slice) -> list[Send[Any]]:
        return [Send(self.make_next()) for _ in range(*where.indices(self.n))]


def _resp_code(reply: bytes) -> str:
    # BillPayRsp: trace_no(12) resp_code(2) ...
    return reply[12:14].decode("ascii", "replace") if len(reply) >= 14 else "??"
