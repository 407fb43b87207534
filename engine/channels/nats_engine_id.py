"""One live engine per engine id in a shared deal-key store (``nats consume`` with ``keys``).

An engine's id is kept next to its ledger (``<ledger>.engine``), so that after a restart the claims its
previous run left in the bucket are its own (``engine.txn.shared_keys.engine_id``).  A ledger copied to
start a *second* engine brings that file along: two engines with one id would take each other's claims
for their own (take them back and run the deal again).  So each engine keeps a heartbeat under its id in
the bucket, ``engine_<id>`` = ``{engine, nonce, host, pid, at, prev}`` with a nonce of its process and
the revision it replaced (``prev``), renewed every third of ``key_lease`` and deleted when it stops:

    absent, or this process's own           written: the engine serves
    another nonce, left by a process of     a crash of this engine's previous run: written over
      this host that is gone (pid check)
    another nonce, revision moves within    another live engine has this id: ``EngineIdInUse``, the channel
      key_lease                             stops (the error names ``<ledger>.engine`` and how to fix it)
    another nonce, still for key_lease      the previous run died (on another host): written over

A heartbeat of this engine's own crashed run also says where the claims that run held are in the
bucket (written after its ``prev``): the channel settles them (``engine.channels.nats_keys_sweep``).

The wait (a key_lease at most) happens only when a heartbeat of another process is found that the pid
check cannot settle: after a crash on another host, or a real copy.
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

from engine.channels.nats_bridge import describe

log = logging.getLogger("bsp.channel.nats")


class EngineIdInUse(RuntimeError):
    """Another live engine has this engine's id: its ledger was copied with its ``.engine`` file."""


def heartbeat_key(engine: str) -> str:
    return "engine_" + re.sub(r"[^A-Za-z0-9_-]", "_", engine)


def _gone(have: dict[str, Any]) -> bool:
    """True when ``have`` was written by a process of this host that no longer runs."""
    if have.get("host") != socket.gethostname() or not isinstance(have.get("pid"), int):
        return False
    pid = have["pid"]
    if pid == os.getpid():
        return False                  # this process: another engine in it (tests), or the same one
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


class Identity:
    def __init__(self, keys: Any) -> None:
        self.keys = keys                 # the SharedKeys: its kv, link, engine id, lease, channel, bucket
        self.nonce = secrets.token_hex(8)
        self.revision: int | None = None
        self.file = ""                   # where the id is kept (<ledger>.engine), for the error
        self.lost = False
        self.sweep_from: int | None = None   # a crashed previous run's claims are from this sequence on

    def _value(self) -> bytes:
        return orjson.dumps({"engine": self.keys.engine, "nonce": self.nonce, "host": socket.gethostname(),
                             "pid": os.getpid(), "at": datetime.now(timezone.utc).isoformat(),
                             "prev": self.revision})

    async def hold(self) -> None:
        """Write this engine's heartbeat; raises ``EngineIdInUse`` when another live engine has its id.
        Waits (a key_lease at most) while a heartbeat of another process may still be alive; retries
        (logged) while NATS cannot tell."""
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        k = self.keys
        key = heartbeat_key(k.engine)
        seen: tuple[int, float] | None = None
        pause = 0.2
        while True:
            try:
                with trio.fail_after(k.timeout):
                    try:
                        entry = await k.link.aio(k.kv.get)(key)
                    except KeyNotFoundError:
                        entry = None
                if entry is None:
                    with trio.fail_after(k.timeout):
                        self.revision = await k.link.aio(k.kv.create)(key, self._value())
                    return
                have = orjson.loads(entry.value) if entry.value else {}
                now = trio.current_time()
                stale = False
                if have.get("nonce") == self.nonce or _gone(have):
                    stale = True
                elif seen is None or seen[0] != entry.revision:
                    if seen is not None:         # it moved: another engine renews it
                        raise EngineIdInUse(self._in_use(have))
                    seen = (entry.revision, now)
                    log.info("channel %s: engine id %s has a heartbeat in %s from another process (host %s, "
                             "pid %s); waiting up to key_lease %gs to see whether it is alive", k.channel,
                             k.engine, k.bucket, have.get("host"), have.get("pid"), k.lease)
                elif now - seen[1] >= k.lease:
                    stale = True                  # not renewed for key_lease: that process is gone
                if stale:
                    if have.get("nonce") != self.nonce and have.get("engine", k.engine) == k.engine:
                        # a crashed run of this engine: every claim it held was written after its
                        # heartbeat but one (renewed in the same rounds), which nats_keys_sweep reads
                        prev = have.get("prev")
                        self.sweep_from = prev + 1 if isinstance(prev, int) else entry.revision
                    with trio.fail_after(k.timeout):
                        self.revision = await k.link.aio(k.kv.update)(key, self._value(), last=entry.revision)
                    return
                await trio.sleep(max(min(k.lease / 6, 1.0), 0.05))
                continue
            except EngineIdInUse:
                raise
            except KeyWrongLastSequenceError:
                seen = None                      # written in between: read it again
                continue
            except Exception as exc:             # NATS away, slow: it cannot tell yet
                log.warning("channel %s: cannot check engine id %s in %s: %s; trying again", k.channel,
                            k.engine, k.where(), describe(exc))
            await trio.sleep(pause)
            pause = min(pause * 2, 5.0)

    def _in_use(self, have: dict[str, Any]) -> str:
        k = self.keys
        file = self.file or "the <ledger>.engine file"
        return (f"channel {k.channel}: engine id {k.engine} (kept in {file}) is in use "
                f"by another running engine (host {have.get('host', '?')}, pid {have.get('pid', '?')}: its "
                f"heartbeat in key-value bucket {k.bucket} at {k.link.url} was renewed while this engine "
                f"watched it); was this ledger copied from that engine's? Two engines with one id would take "
                f"each other's deal-key claims for their own. Stop this engine, delete {file} (a new id is made "
                f"at its next start) and start it again")

    async def renew(self) -> None:
        """From ``SharedKeys.keep``: a new revision of the heartbeat (compare-and-set on the last one)."""
        from nats.js.errors import KeyWrongLastSequenceError

        k = self.keys
        if self.revision is None or k.kv is None or not k.link.connected:
            return
        try:
            with trio.fail_after(k.timeout):
                self.revision = await k.link.aio(k.kv.update)(heartbeat_key(k.engine), self._value(),
                                                              last=self.revision)
            self.lost = False
        except KeyWrongLastSequenceError:
            mine = await self._mine()
            if mine is not None:            # our own earlier renewal landed while its answer was lost (a server
                self.revision, self.lost = mine, False      # frozen or killed past the timeout): not a copy
                return
            if not self.lost:
                log.error("channel %s: the heartbeat of engine id %s in %s was written by another process (this "
                          "engine was cut off for longer than key_lease %gs, or its ledger was copied with "
                          "%s): two engines may have one id; stop the copy and delete its <ledger>.engine file",
                          k.channel, k.engine, k.bucket, k.lease, self.file or "<ledger>.engine")
            self.lost = True
        except Exception as exc:
            log.debug("channel %s: heartbeat of engine id %s: %s", k.channel, k.engine, describe(exc))

    async def _mine(self) -> int | None:
        """The heartbeat's revision when this process wrote it (its nonce), else None (or not readable now)."""
        k = self.keys
        try:
            with trio.fail_after(k.timeout):
                entry = await k.link.aio(k.kv.get)(heartbeat_key(k.engine))
            return entry.revision if orjson.loads(entry.value or b"{}").get("nonce") == self.nonce else None
        except Exception:
            return None

    async def release(self) -> None:
        """The engine stops: delete its heartbeat (so that its next start need not wait)."""
        k = self.keys
        if self.revision is None or self.lost or k.kv is None or not k.link.connected:
            return
        with trio.move_on_after(k.timeout):
            try:
                await k.link.aio(k.kv.delete)(heartbeat_key(k.engine), last=self.revision)
            except Exception as exc:
                log.debug("channel %s: heartbeat of engine id %s not deleted: %s", k.channel, k.engine,
                          describe(exc))
        self.revision = None
