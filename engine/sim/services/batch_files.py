"""The ERP side of a batch-file service: drops batch files in a watched folder and reads the acknowledgements.

    client = BatchFileClient(service, request_codec, reply_codec, inbox=..., outbox=...)
    result = await client.run(total=400)          # a LoadResult like ServiceClient's

Requests come from the service's generator (``Service.make``) and are grouped
into files by their ``batch_id``, ended by the service's trailer record (control
totals) when it has one; each file is written as ``.NAME.part`` and
renamed into place (the file watch channel takes complete files only), after
the service's header line when it has one (``file_header``, or ``batch_header``
computed from the file's requests: a payroll file's count and control total).  The route writes one
acknowledgement file per record (``file write``), or appends a line per record
to one file (``mode = "append"``, read as it grows, its header line skipped);
a request is answered when an acknowledgement line with its record key
(``Service.record_key``: by default ``batch_id`` and ``record_no``) has
appeared.  Latency is from the file's drop to its last
acknowledgement's arrival as seen by polling (every 20 ms).
"""
from __future__ import annotations

import math
import os
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import trio

from engine.sim.services.driver import LoadResult, Outcome
from engine.sim.services.model import Request, Service, run_tag

POLL = 0.02


class BatchFileClient:
    def __init__(self, service: Service, request_codec: Any, reply_codec: Any, *, inbox: Path, outbox: Path,
                 seed: int = 7, start: int = 1, run: str | None = None) -> None:
        self.service = service
        self.request_codec = request_codec
        self.reply_codec = reply_codec
        self.inbox = Path(inbox)
        self.outbox = Path(outbox)
        self.rng = random.Random(f"{service.name}:{seed}")
        self.kinds = [k for k in service.mix for _ in range(service.mix[k])]
        self.n = start - 1
        self.run_tag = run_tag() if run is None else run       # in every batch id: unique per run
        self.result = LoadResult(service.name)
        self.files: list[str] = []
        self._read: dict[str, int] = {}             # acknowledgement file -> bytes of it read
        self._acks: dict[tuple[Any, ...], Any] = {}

    def requests(self, total: int, kinds: list[str] | None = None) -> list[Request]:
        out = []
        for kind in (kinds if kinds is not None else [None] * total):
            self.n += 1
            out.append(self.service.make(kind or self.rng.choice(self.kinds), self.n, self.rng, self.run_tag))
        return out

    def write_file(self, name: str, reqs: list[Request], trailer: bytes | None = None) -> Path:
        """Write ``reqs`` as a batch file, ended by ``trailer`` or else the service's own trailer record."""
        head = self.service.batch_header(reqs) if self.service.batch_header else self.service.file_header
        data = head + b"".join(self.request_codec.encode(r.values).rstrip(b"\r\n") + b"\n" for r in reqs)
        if trailer is None and self.service.trailer is not None:
            trailer = self.service.trailer(reqs)
        data += trailer or b""
        tmp = self.inbox / f".{name}.part"
        tmp.write_bytes(data)
        final = self.inbox / name
        os.replace(tmp, final)
        self.files.append(name)
        return final

    def collect(self) -> int:
        """Read acknowledgement files not read yet; returns how many lines were new."""
        new = 0
        for p in sorted(self.outbox.iterdir()):
            if p.name.startswith(".") or not p.is_file():
                continue
            done = self._read.get(p.name)
            if done is not None and not self.service.ack_header:
                continue                            # a file per record: complete once it has its name
            data = p.read_bytes()
            start = done or 0
            end = data.rfind(b"\n", start) + 1 if self.service.ack_header else len(data)
            if end <= start:
                continue                            # no complete line appended since the last look
            lines = data[start:end].splitlines()
            if done is None and self.service.ack_header:
                lines = lines[1:]                   # the file's header line
            self._read[p.name] = end
            for line in lines:
                if line.strip():
                    v = self.reply_codec.decode(line)
                    self._acks[self.key(v)] = v
                    new += 1
        return new

    def key(self, values: Any) -> tuple[Any, ...]:
        """What identifies a record, in a request's values and in an acknowledgement line alike."""
        if self.service.record_key is not None:
            return tuple(self.service.record_key(values))
        return (str(values["batch_id"]), int(values["record_no"]))

    def batch(self, values: Any) -> str:
        return self.service.batch_of(values) if self.service.batch_of else str(values["batch_id"])

    async def run(self, *, total: int, kinds: list[str] | None = None,
                  progress: Callable[[int], None] | None = None, deadline: float = 30.0,
                  stall: float | None = None) -> LoadResult:
        """Drop the batch files and wait for their acknowledgements: ``deadline`` seconds at most, or with
        ``stall`` for as long as acknowledgements keep coming (none for ``stall`` seconds: the rest unanswered)."""
        reqs = self.requests(total, kinds)
        batches: dict[str, list[Request]] = defaultdict(list)
        for r in reqs:
            batches[self.batch(r.values)].append(r)
        t0 = time.perf_counter()
        dropped: dict[str, float] = {}
        for batch, rs in batches.items():
            self.write_file(f"{batch}.csv", rs)
            dropped[batch] = time.perf_counter()
        answered: dict[tuple[Any, ...], float] = {}
        wanted = {self.key(r.values) for r in reqs}
        moved = trio.current_time()            # the engine's clock (a test's MockClock too)
        with trio.move_on_after(deadline if stall is None else math.inf):
            while len(answered) < len(wanted):
                if self.collect():
                    now = time.perf_counter()
                    fresh = [k for k in self._acks if k in wanted and k not in answered]
                    for k in fresh:
                        answered[k] = now
                    if fresh:
                        moved = trio.current_time()
                    if progress:
                        progress(len(fresh))
                if stall is not None and trio.current_time() - moved > stall:
                    break
                if len(answered) < len(wanted):
                    await trio.sleep(POLL)
        for r in reqs:
            key = self.key(r.values)
            ack = self._acks.get(key)
            at = answered.get(key)
            self.result.outcomes.append(Outcome(
                r.kind, r.expect_code, r.ref, self.service.code_of(ack) if ack is not None else None, ack,
                (at - dropped[self.batch(r.values)]) * 1000 if at is not None else None))
        self.result.elapsed = time.perf_counter() - t0
        return self.result

    def settled(self) -> dict[str, list[str]]:
        """Where each batch file went: {"done": [...], "error": [...], "pending": [...]}."""
        out: dict[str, list[str]] = {"done": [], "error": [], "pending": []}
        for name in self.files:
            where = ("done" if (self.inbox / "done" / name).exists() else
                     "error" if (self.inbox / "error" / name).exists() else "pending")
            out[where].append(name)
        return out

    async def wait_settled(self, deadline: float = 10.0) -> dict[str, list[str]]:
        """``settled()`` once no file is pending (the channel moves a file after its last record), or at the deadline."""
        with trio.move_on_after(deadline):
            while self.settled()["pending"]:
                await trio.sleep(POLL)
        return self.settled()
