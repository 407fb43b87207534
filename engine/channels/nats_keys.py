"""A deal-key store shared by the engines of one ``nats consume`` consumer: a JetStream key-value bucket.

Engines sharing a durable consumer each keep their deal keys in their own
transaction log; a message redelivered to *another* engine (its ack was lost)
would run there again.  With ``keys = "BUCKET"`` on the channel, the
transaction manager (``engine.txn.shared_keys``) also claims each deal key in
the bucket before the first call:

    kv.create(key, running)        succeeds: this engine owns the key; the deal runs
                                   fails (the key is there): read it
        done                       a duplicate: the stored answer is repeated, nothing runs
        running, revision moving   another engine runs it: not run here (deferred: tried again later)
        running, revision still    the owner is gone: taken over by compare-and-set and flagged
          for ``key_lease``         (failed, 96, "in flight on engine X"), never run again
    NATS unreachable / slow        not claimed, not run (deferred)

The owner renews its running claims every third of ``key_lease`` (a new
revision), and once the deal is committed writes the final state (status,
code, reply bytes sealed as in the transaction log) with compare-and-set on
its claim's revision, before the message is acknowledged.  Whether a claim is
stale is judged by the reader's own monotonic clock ("this revision has not
moved for ``key_lease``"), so the engines' clocks need not agree.

An engine's id is stable per ledger (``engine.txn.shared_keys.engine_id``), so after a restart the
claims its previous run left are its own: the final states of the deals its recovery resolved are
written over them (``recovered``, once the bucket is bound), and an old claim of its own that its log
knows nothing of (the previous run died after claiming, before logging the deal: no call was made) is
taken back and run, not waited for and flagged.

Bucket keys are an HMAC-SHA256 of the deal key under a key derived from the field keyring, or its
unkeyed SHA-256 without a keyring (``engine.channels.nats_keys_names``: the bucket says which, so that
every engine names a key alike).  Each engine keeps a heartbeat under its id in the bucket, so that a
copied ledger (two engines with one id) is refused (``engine.channels.nats_engine_id``).
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
import trio

from engine.channels.nats_bridge import NatsLink, describe
from engine.channels.nats_engine_id import Identity
from engine.channels.nats_keys_names import MARKER, Names, choose, follow, sha256_name
from engine.channels.options import ChannelConfigError

log = logging.getLogger("bsp.channel.nats")
_BUCKET = re.compile(r"^[A-Za-z0-9_-]+$")


def bucket_option(channel: str, options: dict[str, Any]) -> str | None:
    value = options.get("keys")
    if value is None:
        return None
    if not isinstance(value, str) or not _BUCKET.match(value):
        raise ChannelConfigError(f"channel {channel}: option keys: expected a key-value bucket name such as "
                                 f"\"BSP_KEYS\" (letters, digits, - and _), got {value!r}")
    return value


def bucket_key(key: str) -> str:
    """The name of ``key`` in a bucket without a keyring (unkeyed SHA-256)."""
    return sha256_name(key)


@dataclass
class Claim:
    """What claiming one deal key found: ``claimed`` (run it), ``done`` (a duplicate: ``value`` holds the
    stored answer), ``busy`` (not run here now: ``text`` says why) or ``flag`` (taken over from an engine
    that is gone: fail it for an operator, ``text`` names the engine and its deal)."""

    outcome: str
    value: dict[str, Any] | None = None
    text: str = ""


class SharedKeys:
    def __init__(self, channel: str, link: NatsLink, bucket: str, lease: float, *, create: bool) -> None:
        self.channel = channel
        self.link = link
        self.bucket = bucket
        self.lease = lease
        self.create = create
        # set to the ledger's stable id when the channel serves (engine.txn.shared_keys.engine_id)
        self.engine = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.retention: float | None = None       # the ledger's key retention: the bucket's max age
        self.keyring: Any = None                   # the ledger's field keyring: keyed bucket key names
        self.names: Names | None = None            # how deal keys are named in the bucket (setup)
        self._marker_at = -1e9
        self.identity = Identity(self)             # this engine's heartbeat under its id
        self.kv: Any = None
        self.held: dict[str, tuple[int, dict[str, Any], int]] = {}   # bucket key -> (revision, claim, batch)
        self.pending: dict[str, dict[str, Any]] = {}   # final states not written yet (NATS was away)
        self.recovering: dict[str, tuple[str, dict[str, Any]]] = {}   # recovered: deal key -> (deal, end)
        self._seen: dict[str, tuple[int, float]] = {}  # another engine's claim: revision, first seen
        self.claims = self.duplicates = self.busy = self.flagged = self.taken_back = 0
        self._warned = -1e9
        self._busy: set[str] = set()                  # bucket keys with a write on its way
        self._round = trio.Event()                     # set when a write round ends

    @property
    def timeout(self) -> float:
        return max(self.link.connect_timeout, 1.0)

    def where(self) -> str:
        return f"shared key store {self.bucket} at {self.link.url}"

    async def setup(self) -> None:
        """Bind the bucket; create it (history 1, file storage, max age = the key retention) when missing."""
        from nats.js.api import KeyValueConfig, StorageType
        from nats.js.errors import BucketNotFoundError

        link = self.link
        try:
            self.kv = await link.aio(link.js.key_value)(self.bucket)
        except BucketNotFoundError:
            if not self.create:
                raise ChannelConfigError(
                    f"channel {self.channel}: key-value bucket {self.bucket!r} (option keys) does not exist on "
                    f"{link.url}; create it (nats kv create {self.bucket} --history 1 --storage file) or set "
                    f"create_stream = true") from None
            cfg = KeyValueConfig(bucket=self.bucket, history=1, storage=StorageType.FILE,
                                 ttl=self.retention or None)
            self.kv = await link.aio(link.js.create_key_value)(cfg)
            log.info("channel %s: created key-value bucket %s for the shared deal keys (max age %s)",
                     self.channel, self.bucket, f"{self.retention:g}s" if self.retention else "none")
            await self._bind_names(fresh=True)
            await self.write_recovered()
            return
        info = await link.aio(link.js.stream_info)(f"KV_{self.bucket}")
        have = float(info.config.max_age or 0)
        if self.retention and have and abs(have - self.retention) > 1:
            log.warning("channel %s: key-value bucket %s keeps keys %gs, the ledger's key retention is %gs: a "
                        "repeat after the shorter of the two is not recognised across engines", self.channel,
                        self.bucket, have, self.retention)
        await self._bind_names(fresh=not info.state.messages)
        await self.write_recovered()

    async def _bind_names(self, *, fresh: bool) -> None:
        """How deal keys are named in the bucket: as its ``_bsp_names`` entry says; when it says nothing,
        this engine's way (keyed with its keyring's current key) for a bucket without entries, unkeyed
        SHA-256 for one an older engine filled (engine.channels.nats_keys_names)."""
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        link, kv = self.link, self.kv
        try:
            entry = await link.aio(kv.get)(MARKER)
        except KeyNotFoundError:
            entry = None
        if entry is None:
            mine = choose(self.keyring) if fresh else Names()
            try:
                await link.aio(kv.create)(MARKER, orjson.dumps(mine.marker()))
            except KeyWrongLastSequenceError:          # another engine wrote it just now: follow it
                entry = await link.aio(kv.get)(MARKER)
            else:
                self.names = mine
        if entry is not None:
            self.names = follow(orjson.loads(entry.value or b"{}"), self.keyring, channel=self.channel,
                                where=f"key-value bucket {self.bucket} at {link.url}")
        self._marker_at = trio.current_time()
        if self.names.mac is None and self.keyring is not None:
            log.warning("channel %s: key-value bucket %s names its deal keys by their unkeyed SHA-256 (made "
                        "without a field keyring, or by an older bsp): a short reference or card number in a "
                        "deal key can be found by hashing guesses; to have them keyed with the field keyring, "
                        "move every engine to a new bucket (option keys)", self.channel, self.bucket)

    async def _keep_marker(self) -> None:
        """Write ``_bsp_names`` again now and then: the bucket's max age would drop it, and an engine
        starting then would choose on its own."""
        from nats.js.errors import KeyNotFoundError

        period = min(3600.0, (self.retention or 3600.0) / 4)
        if self.names is None or self.kv is None or not self.link.connected or \
                trio.current_time() - self._marker_at < period:
            return
        with trio.move_on_after(self.timeout):
            try:
                try:
                    entry = await self.link.aio(self.kv.get)(MARKER)
                except KeyNotFoundError:
                    entry = None
                if entry is None or orjson.loads(entry.value or b"{}") == self.names.marker():
                    await self.link.aio(self.kv.put)(MARKER, orjson.dumps(self.names.marker()))
                else:
                    log.error("channel %s: key-value bucket %s now says its deal keys are named otherwise "
                              "(%s) than this engine names them (%s): a repeat is not recognised across "
                              "engines; give every engine the same field keyring and restart them",
                              self.channel, self.bucket, entry.value.decode(errors="replace"),
                              self.names.describe())
                self._marker_at = trio.current_time()
            except Exception as exc:
                log.debug("channel %s: %s entry of %s: %s", self.channel, MARKER, self.bucket, describe(exc))

    def name(self, key: str) -> str:
        """The bucket key of deal key ``key``."""
        return (self.names or Names())(key)

    # -- claims -----------------------------------------------------------------
    def _value(self, deal: str, **more: Any) -> dict[str, Any]:
        return {"engine": self.engine, "deal": deal, "at": datetime.now(timezone.utc).isoformat(), **more}

    async def claim(self, items: list[tuple[str, str]], batch: int) -> list[Claim]:
        """Claim each ``(deal key, deal id)``; one round trip for all of them (pipelined)."""
        import asyncio

        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        kv = self.kv
        wanted = [(self.name(k), self._value(d, state="running")) for k, d in items]

        async def one(bk: str, value: dict[str, Any]) -> Any:
            try:
                return await kv.create(bk, orjson.dumps(value))
            except KeyWrongLastSequenceError:
                pass
            try:
                return await kv.get(bk)
            except KeyNotFoundError:            # gone in between (aged out): claim it again
                return await kv.create(bk, orjson.dumps(value))

        async def all_of() -> list[Any]:
            return await asyncio.gather(*(one(bk, v) for bk, v in wanted), return_exceptions=True)

        found: list[Any] = []
        if kv is None or not self.link.connected:
            down = ConnectionError(self.link.last_error or "not connected")
            return [await self._judge(bk, v, down, batch) for bk, v in wanted]
        with trio.move_on_after(self.timeout) as scope:
            try:
                found = await self.link.aio(all_of)()
            except Exception as exc:
                found = [exc] * len(items)
        if scope.cancelled_caught:
            found = [TimeoutError(f"no answer in {self.timeout:g}s")] * len(items)
        out = []
        for (bk, value), res in zip(wanted, found):
            out.append(await self._judge(bk, value, res, batch))
        return out

    async def _judge(self, bk: str, value: dict[str, Any], res: Any, batch: int) -> Claim:
        if isinstance(res, int):
            self.held[bk] = (res, value, batch)
            self.claims += 1
            return Claim("claimed")
        if isinstance(res, BaseException):
            self.busy += 1
            text = f"{self.where()} unavailable: {describe(res)}"
            now = trio.current_time()
            if now - self._warned >= 10:           # once per 10 s at most: an outage hands back every message
                self._warned = now
                log.warning("channel %s: deal key not claimed, message deferred: kept and tried again (not run): %s",
                            self.channel, text)
            return Claim("busy", text=text)
        try:
            have = orjson.loads(res.value)
        except Exception:
            have = {}
        if have.get("state") == "done":
            self._seen.pop(bk, None)
            self.duplicates += 1
            return Claim("done", have)
        owner = f"engine {have.get('engine', '?')} (deal {have.get('deal', '?')}, since {have.get('at', '?')})"
        if have.get("engine") == self.engine and bk not in self.held:
            return await self._take_back(bk, value, res.revision, have, batch)
        now = trio.current_time()
        rev, first = self._seen.get(bk, (None, now))
        if rev != res.revision:
            self._seen[bk] = (res.revision, now)
            first = now
        if now - first < self.lease:
            self.busy += 1
            return Claim("busy", text=f"in flight on {owner}; not run here")
        # the owner has not renewed its claim for key_lease: it is gone; take the key over (compare-and-set
        # on the revision seen: an owner that renewed meanwhile wins) and flag the deal, never run it again
        taken = self._value(value["deal"], state="running", flagged=have.get("engine"))
        try:
            with trio.fail_after(self.timeout):
                new = await self.link.aio(self.kv.update)(bk, orjson.dumps(taken), last=res.revision)
        except Exception as exc:
            self.busy += 1
            return Claim("busy", text=f"in flight on {owner}; not taken over: {describe(exc)}")
        self._seen.pop(bk, None)
        self.held[bk] = (new, taken, batch)
        self.flagged += 1
        return Claim("flag", text=f"in flight on {owner}, which has not renewed its claim for {self.lease:g}s "
                                  f"(key_lease): gone; not run again, flagged for an operator")

    async def _take_back(self, bk: str, value: dict[str, Any], revision: int, have: dict[str, Any],
                         batch: int) -> Claim:
        """A claim of this engine's previous run (same ledger, same id) that its log knows nothing of: the
        engine checks its own log before the bucket, and recovery resolved (and wrote here) every deal
        the log had in flight, so that run died between the claim and logging the deal, before any call.
        Claimed again (compare-and-set on the revision seen) and run here."""
        pending = {self.name(k): deal for k, (deal, _) in self.recovering.items()}
        if bk in pending:                 # recovery's final state for it is still to be written
            self.busy += 1
            return Claim("busy", text=f"the final state of deal {pending[bk]} recovered on this engine "
                                      f"is not written to {self.where()} yet")
        try:
            with trio.fail_after(self.timeout):
                new = await self.link.aio(self.kv.update)(bk, orjson.dumps(value), last=revision)
        except Exception as exc:
            self.busy += 1
            return Claim("busy", text=f"this engine's own claim from before a restart (deal {have.get('deal')}) "
                                      f"not taken back: {describe(exc)}")
        self._seen.pop(bk, None)
        self.held[bk] = (new, value, batch)
        self.claims += 1
        self.taken_back += 1
        log.info("channel %s: took back its own claim on a deal key in %s, left by its previous run (deal %s, "
                 "since %s, never logged: no call made); the deal runs as %s", self.channel, self.bucket,
                 have.get("deal"), have.get("at"), value["deal"])
        return Claim("claimed")

    def recovered(self, items: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Final states of deals this engine's recovery resolved from its log, ``(deal key, deal id, end)``:
        written over this engine's old claims by ``write_recovered`` once the bucket is bound."""
        for key, deal, end in items:
            self.recovering[key] = (deal, end)

    async def write_recovered(self) -> None:
        """Write the recovered final states (from ``setup`` and ``keep``; what fails is tried again).  A key
        still claimed by this engine (its previous run) or absent gets the final state; one finished
        already is left as it is; one another engine took over meanwhile (this engine was gone for longer
        than key_lease) is two deals for an operator, logged."""
        import asyncio

        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        kv = self.kv
        if not self.recovering or kv is None or self.names is None or not self.link.connected:
            return
        todo = [(key, self.name(key), rec) for key, rec in self.recovering.items()]

        async def one(bk: str, deal: str, end: dict[str, Any]) -> str:
            final = orjson.dumps(self._value(deal, state="done", **end))
            try:
                entry = await kv.get(bk)
            except KeyNotFoundError:
                await kv.create(bk, final)
                return "written"
            have = orjson.loads(entry.value) if entry.value else {}
            if have.get("state") == "done":
                return "done"
            if have.get("engine") != self.engine:
                return f"engine {have.get('engine', '?')} (deal {have.get('deal', '?')})"
            await kv.update(bk, final, last=entry.revision)
            return "written"

        async def all_of() -> list[Any]:
            return await asyncio.gather(*(one(bk, d, e) for _, bk, (d, e) in todo), return_exceptions=True)

        with trio.move_on_after(self.timeout * 2) as scope:
            try:
                results = await self.link.aio(all_of)()
            except Exception as exc:
                results = [exc] * len(todo)
        if scope.cancelled_caught:
            return
        written = 0
        for (key, bk, (deal, end)), res in zip(todo, results):
            if isinstance(res, KeyWrongLastSequenceError):
                continue                         # moved in between: read again at the next round
            if isinstance(res, BaseException):
                log.debug("channel %s: recovered final state of deal %s: %s", self.channel, deal, describe(res))
                continue
            del self.recovering[key]
            if res == "written":
                written += 1
            elif res != "done":
                log.error("channel %s: deal %s, resolved on restart from this engine's log (%s), had been taken "
                          "over in %s by %s while this engine was gone (longer than key_lease %gs): that engine "
                          "flagged its copy; two deals for one key for an operator to reconcile", self.channel,
                          deal, end.get("status"), self.bucket, res, self.lease)
        if written:
            log.info("channel %s: wrote the final state of %d deal(s) resolved on restart to %s", self.channel,
                     written, self.bucket)

    async def finish(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        """Write the final state of deals this engine claimed (compare-and-set on the claim's revision).
        What cannot be written now is retried by ``keep`` (the claim stays held)."""
        mine = []
        for key, end in items:
            bk = self.name(key)
            held = self.held.get(bk)
            if held is not None:
                self.pending[bk] = self._value(held[1]["deal"], state="done", **end)
                mine.append(bk)
        while any(bk in self._busy for bk in mine):      # a renewal of one of them is on its way
            await self._round.wait()
        await self._write(mine, final=True)

    async def _write(self, bks: list[str], *, final: bool) -> None:
        """One pipelined round of compare-and-set updates: the final states (``final``) or renewed claims
        of ``bks``; keys with a write on its way are left out (each revision is written once)."""
        import asyncio

        from nats.js.errors import KeyWrongLastSequenceError

        held, busy = self.held, self._busy
        todo = [(bk, self.pending[bk] if final else held[bk][1], held[bk][0]) for bk in bks
                if bk in held and bk not in busy and (bk in self.pending) == final]
        kv = self.kv
        if not todo or kv is None or not self.link.connected:
            return

        async def all_of() -> list[Any]:
            return await asyncio.gather(*(kv.update(bk, orjson.dumps(v), last=rev) for bk, v, rev in todo),
                                        return_exceptions=True)

        busy.update(bk for bk, _, _ in todo)
        try:
            with trio.move_on_after(self.timeout) as scope:
                try:
                    results = await self.link.aio(all_of)()
                except Exception as exc:
                    results = [exc] * len(todo)
            if scope.cancelled_caught:
                return                                   # not known: read again at the next round
            for (bk, value, rev), res in zip(todo, results):
                h = held.get(bk)
                if h is None or h[0] != rev:
                    continue
                if isinstance(res, KeyWrongLastSequenceError):
                    if final:
                        log.error("channel %s: deal %s ended %s here, but another engine took its key over in "
                                  "%s meanwhile (this engine had not renewed its claim for key_lease %gs): that "
                                  "engine flagged its copy for an operator", self.channel, value["deal"],
                                  value.get("status"), self.bucket, self.lease)
                    else:
                        log.error("channel %s: the claim of deal %s in %s was taken over by another engine "
                                  "(not renewed for key_lease %gs); it flags its copy for an operator",
                                  self.channel, value["deal"], self.bucket, self.lease)
                elif isinstance(res, BaseException):
                    continue                             # NATS away: kept, tried again by keep()
                elif not final:
                    held[bk] = (res, value, h[2])
                    continue
                self.pending.pop(bk, None)
                del held[bk]
        finally:
            busy.difference_update(bk for bk, _, _ in todo)
            self._round.set()
            self._round = trio.Event()

    def forget_batch(self, batch: int) -> None:
        """A batch is settled: claims of it still held (its deals were not recorded: the handler failed)
        are no longer renewed, so that they go stale and another engine flags the deal after key_lease."""
        left = [bk for bk, (_, _, b) in self.held.items() if b == batch and bk not in self.pending]
        for bk in left:
            del self.held[bk]
        if left:
            log.warning("channel %s: %d deal key claim(s) in %s left unfinished (the batch was not recorded); "
                        "another engine flags such a deal after key_lease", self.channel, len(left), self.bucket)

    async def keep(self) -> None:
        """Every third of ``key_lease``: write the final states not written yet, renew the other claims."""
        while True:
            await trio.sleep(max(self.lease / 3, 0.05))
            await self.identity.renew()
            await self._keep_marker()
            await self.write_recovered()
            await self._write(list(self.pending), final=True)
            await self._write(list(self.held), final=False)
