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

This module holds the store's state, the owner's renewals and final states, and its keep loop; binding
the bucket and its names is in ``nats_keys_bucket``, claiming in ``nats_keys_claim``, the final states of
deals recovered on restart in ``nats_keys_recovered``.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import socket
from datetime import datetime, timezone
from typing import Any

import orjson
import trio

from engine.channels import nats_keys_bucket, nats_keys_claim, nats_keys_recovered, nats_keys_sweep
from engine.channels.nats_bridge import NatsLink
from engine.channels.nats_engine_id import Identity
from engine.channels.nats_keys_claim import Claim
from engine.channels.nats_keys_names import Names, sha256_name
from engine.channels.options import ChannelConfigError

log = logging.getLogger("bsp.channel.nats")
_BUCKET = re.compile(r"^[A-Za-z0-9_-]+$")
_UNKNOWN = object()       # a key whose state could not be read (nats_keys.SharedKeys._landed)


def _fresh_claim(raw: bytes | None, engine: str) -> bool:
    """A running claim in the bucket that is not a takeover of ``engine``'s claim."""
    try:
        have = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        return False
    return isinstance(have, dict) and have.get("state") == "running" and have.get("flagged") != engine


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
        self.ledger: Any = None                    # the dispatcher's ledger: its transaction log (sweep)
        self.names: Names | None = None            # how deal keys are named in the bucket (setup)
        self.marker_at = -1e9
        self.identity = Identity(self)             # this engine's heartbeat under its id
        self.kv: Any = None
        self.held: dict[str, tuple[int, dict[str, Any], int]] = {}   # bucket key -> (revision, claim, batch)
        self.pending: dict[str, dict[str, Any]] = {}   # final states not written yet (NATS was away)
        self.recovering: dict[str, tuple[str, dict[str, Any]]] = {}   # recovered: deal key -> (deal, end)
        self.seen: dict[str, tuple[int, float]] = {}  # another engine's claim: revision, first seen
        self.claims = self.duplicates = self.busy = self.flagged = self.taken_back = 0
        self.warned = -1e9
        self._busy: set[str] = set()                  # bucket keys with a write on its way
        self._round = trio.Event()                     # set when a write round ends

    @property
    def timeout(self) -> float:
        return max(self.link.connect_timeout, 1.0)

    def where(self) -> str:
        return f"shared key store {self.bucket} at {self.link.url}"
    def bind_ledger(self, ledger: Any) -> None:
        """Take from the dispatcher's ledger what the bucket needs: the key retention (the bucket keeps a key
        as long as the ledger's key store does), the field keyring (keyed bucket key names, sealed
        answers) and this engine's stable id (kept next to the ledger)."""
        from engine.txn.log import KEY_RETENTION
        from engine.txn.shared_keys import engine_id

        self.ledger = ledger
        self.retention = getattr(ledger, "key_retention", KEY_RETENTION)
        self.keyring = getattr(ledger, "keyring", None)
        if ledger is not None and self.keyring is None:
            log.warning("channel %s: no field keyring: the answers kept in key-value bucket %s (to answer a "
                        "repeat on any engine) are the reply bytes as sent, a card number or name in them "
                        "readable by whoever can read the bucket, and the deal keys are named there by their "
                        "unkeyed SHA-256 (a short reference or card number can be found by hashing guesses); "
                        "give the engines one field keyring (ledger.field_keys in platform.yaml, or "
                        "BSP_FIELD_KEYS(_FILE))", self.channel, self.bucket)
        if getattr(ledger, "path", None) is not None:     # the same engine after a restart
            self.identity.file = f"{ledger.path}.engine"
            try:
                self.engine = engine_id(ledger.path)
            except OSError as exc:
                log.error("channel %s: cannot keep this engine's id next to the ledger (%s): %s; using %s "
                          "for this run: after a restart its claims in %s are another engine's", self.channel,
                          ledger.path, exc, self.engine, self.bucket)

    async def setup(self) -> None:
        """Bind the bucket (engine.channels.nats_keys_bucket)."""
        await nats_keys_bucket.setup(self)

    def name(self, key: str) -> str:
        """The bucket key of deal key ``key``."""
        return (self.names or Names())(key)

    # -- claims -----------------------------------------------------------------    # -- claims -----------------------------------------------------------------
    def claim_value(self, deal: str, **more: Any) -> dict[str, Any]:
        """A bucket entry of this engine for ``deal``; ``run``: this process's run of the engine (its
        heartbeat's nonce), so that its next run tells the claims a crash left (nats_keys_sweep)."""
        return {"engine": self.engine, "deal": deal, "run": self.identity.nonce,
                "at": datetime.now(timezone.utc).isoformat(), **more}

    async def claim(self, items: list[tuple[str, str]], batch: int) -> list[Claim]:
        """Claim each ``(deal key, deal id)`` (engine.channels.nats_keys_claim)."""
        return await nats_keys_claim.claim(self, items, batch)

    async def peek(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The final states the bucket holds for these deal keys, read only (engine.channels.nats_keys_claim)."""
        return await nats_keys_claim.peek(self, keys)

    def recovered(self, items: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Final states of deals this engine's recovery resolved from its log, ``(deal key, deal id, end)``:
        written over this engine's old claims by ``write_recovered`` once the bucket is bound."""
        for key, deal, end in items:
            self.recovering[key] = (deal, end)
    async def sweep(self) -> None:
        """After a crash of this engine's previous run: settle the claims it left (nats_keys_sweep)."""
        start = self.identity.sweep_from
        if start is not None:
            self.identity.sweep_from = None
            await nats_keys_sweep.sweep(self, start)

    async def write_recovered(self) -> None:
        """Write the recovered final states (engine.channels.nats_keys_recovered)."""
        await nats_keys_recovered.write_recovered(self)

    async def finish(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        """Write the final state of deals this engine claimed (compare-and-set on the claim's revision), or
        delete the claim of one whose key is free (``{"freed": True}``: nothing of it reached a counterpart, it
        may run again anywhere).  What cannot be written now is retried by ``keep`` (the claim stays held)."""
        mine = []
        for key, end in items:
            bk = self.name(key)
            held = self.held.get(bk)
            if held is not None:
                self.pending[bk] = ({"deal": held[1]["deal"], "freed": True} if end.get("freed") else
                                    self.claim_value(held[1]["deal"], state="done", **end))
                mine.append(bk)
        while any(bk in self._busy for bk in mine):      # a renewal of one of them is on its way
            await self._round.wait()
        await self._write(mine, final=True)

    async def _write(self, bks: list[str], *, final: bool) -> None:
        """One pipelined round of compare-and-set updates: the final states (``final``) or renewed claims
        of ``bks``; keys with a write on its way are left out (each revision is written once)."""
        import asyncio

        from nats.js.errors import APIError, KeyWrongLastSequenceError

        held, busy = self.held, self._busy
        todo = [(bk, self.pending[bk] if final else held[bk][1], held[bk][0]) for bk in bks
                if bk in held and bk not in busy and (bk in self.pending) == final]
        kv = self.kv
        if not todo or kv is None or not self.link.connected:
            return

        async def delete(bk: str, rev: int) -> Any:
            try:
                return await kv.delete(bk, last=rev)
            except APIError as exc:       # nats-py raises the plain error for a delete (an update's is typed)
                if getattr(exc, "err_code", None) in (10071, 10164):
                    raise KeyWrongLastSequenceError(description=exc.description) from None
                raise

        def write(bk: str, v: dict[str, Any], rev: int) -> Any:
            if v.get("freed"):                # a deal whose key is free: its claim deleted (compare-and-set)
                return delete(bk, rev)
            return kv.update(bk, orjson.dumps(v), last=rev)

        async def all_of() -> list[Any]:
            return await asyncio.gather(*(write(bk, v, rev) for bk, v, rev in todo), return_exceptions=True)

        busy.update(bk for bk, _, _ in todo)
        try:
            with trio.move_on_after(self.timeout) as scope:
                try:
                    results = await self.link.aio(all_of)()
                except Exception as exc:
                    results = [exc] * len(todo)
            if scope.cancelled_caught:
                return                                   # not known: read again at the next round
            moved = [(bk, value) for (bk, value, _), res in zip(todo, results)
                     if isinstance(res, KeyWrongLastSequenceError)]
            landed = await self._landed(moved) if moved else {}
            for (bk, value, rev), res in zip(todo, results):
                h = held.get(bk)
                if h is None or h[0] != rev:
                    continue
                if bk in landed:
                    if landed[bk] is _UNKNOWN:
                        continue             # the bucket could not be read: the next round writes again
                    res = landed[bk]         # an earlier write of ours landed, its answer lost: done
                if isinstance(res, KeyWrongLastSequenceError):
                    if final:
                        log.error("channel %s: deal %s ended %s here, but another engine took its key over in "
                                  "%s meanwhile (this engine had not renewed its claim for key_lease %gs): that "
                                  "engine flagged its copy for an operator", self.channel, value["deal"],
                                  value.get("status") or "failed (its key free)", self.bucket, self.lease)
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

    async def _landed(self, moved: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        """Of the keys whose revision moved under this engine's write: those holding what it wrote (an earlier
        write of the same value landed while its answer was lost: a server frozen or killed past the write's
        timeout), with their revision; a freed claim found deleted counts too.  Another engine's takeover
        holds its own value.  Nothing when the bucket cannot be read now: the next round writes again."""
        import asyncio

        from nats.js.errors import KeyDeletedError, KeyNotFoundError

        kv = self.kv

        async def read(bk: str, value: dict[str, Any]) -> Any:
            try:
                entry = await kv.get(bk)
            except (KeyDeletedError, KeyNotFoundError):
                return 0 if value.get("freed") else None
            if value.get("freed"):
                # a claim running that is no takeover of ours (a takeover names this engine, ``flagged``): the
                # key was freed by our delete, then claimed afresh by another engine
                return 0 if _fresh_claim(entry.value, self.engine) else None
            return entry.revision if entry.value == orjson.dumps(value) else None

        async def all_of() -> list[Any]:
            return await asyncio.gather(*(read(bk, v) for bk, v in moved), return_exceptions=True)

        found: list[Any] = []
        with trio.move_on_after(self.timeout):
            try:
                found = await self.link.aio(all_of)()
            except Exception:
                found = []
        if len(found) != len(moved):
            return {bk: _UNKNOWN for bk, _ in moved}
        return {bk: (_UNKNOWN if isinstance(r, BaseException) else r) for (bk, _), r in zip(moved, found)
                if r is not None}

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
            await nats_keys_bucket.keep_marker(self)
            await self.write_recovered()
            await self._write(list(self.pending), final=True)
            await self._write(list(self.held), final=False)
