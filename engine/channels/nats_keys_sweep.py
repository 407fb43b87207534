"""Claims a crashed run of this engine left in a shared deal-key store, settled by its next run.

An engine killed between claiming a deal key and logging the deal leaves a claim ``running`` that its
log knows nothing of (no call was made).  When the message comes back to this engine, the claim is taken
back (``nats_keys_claim.take_back``); when it goes to **another** engine, that engine used to wait for
``key_lease`` and then flag the deal (96, "gone"), although the owner had restarted at once.  Likewise a
deal whose final state never reached the bucket (NATS slow or away when it ended, then the kill) left a
claim ``running`` that another engine flagged: a second deal for a key that had been answered.

So at start, when the engine finds the heartbeat of its own previous run (a crash: a clean stop deletes
it), it reads the bucket's entries written since that run's last heartbeat but one (its held claims are
renewed every third of ``key_lease``, so every one of them is there) and settles each claim of that run
still ``running`` (each claim names its run, ``run``):

    its deal is in this engine's log, finished       the final state, as logged (a repeat: a duplicate)
    its deal is being resolved by recovery            left to recovery (``nats_keys_recovered``)
    its deal is not in the log                        deleted: no call was made; whoever gets the
                                                      message claims the key and runs it

Each write is a compare-and-set on the revision read: a claim that moved meanwhile (taken back here,
taken over by another engine) is left as it is.  Claims older than that window (a renewal that failed
before the crash) are not found: another engine flags them after ``key_lease``, as before.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson
import trio

from engine.channels.nats_bridge import describe

if TYPE_CHECKING:
    from engine.channels.nats_keys import SharedKeys

log = logging.getLogger("bsp.channel.nats")

_FETCH = 256


def _log_of(keys: SharedKeys) -> Any:
    """This engine's transaction log (recovery has run: deals left in flight are resolved), or None."""
    from engine.txn.manager import existing_manager

    m = existing_manager(keys.ledger) if keys.ledger is not None else None
    if m is None or not m.log_exists():
        return None
    return m.log


async def _scan(keys: SharedKeys, start: int) -> list[tuple[str, int, dict[str, Any]]]:
    """(bucket key, revision, value) of the claims ``running`` of this engine's earlier runs written at or
    after stream sequence ``start``, read through an ephemeral consumer on the bucket's stream."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    link, me, run = keys.link, keys.engine, keys.identity.nonce
    stream, prefix = f"KV_{keys.bucket}", f"$KV.{keys.bucket}."

    async def scan() -> list[tuple[str, int, dict[str, Any]]]:
        js = link.js
        info = await js.stream_info(stream)
        last = int(info.state.last_seq)
        if last < start:
            return []
        name = f"bsp-sweep-{run}"
        await js.add_consumer(stream, config=ConsumerConfig(
            name=name, filter_subject=prefix + ">", deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start, ack_policy=AckPolicy.NONE, inactive_threshold=60.0, mem_storage=True))
        found = []
        try:
            sub = await js.pull_subscribe_bind(stream=stream, name=name)
            seq = start - 1
            while seq < last:
                try:
                    msgs = await sub.fetch(_FETCH, timeout=max(keys.timeout, 1.0))
                except Exception:           # nothing more (purged meanwhile): done
                    break
                for m in msgs:
                    seq = int(m.metadata.sequence.stream)
                    if (m.headers or {}).get("KV-Operation") or not m.data:
                        continue            # a delete or purge marker
                    try:
                        v = orjson.loads(m.data)
                    except Exception:
                        continue
                    if isinstance(v, dict) and v.get("engine") == me and v.get("state") == "running" \
                            and v.get("run") != run:
                        found.append((m.subject[len(prefix):], seq, v))
            await sub.unsubscribe()
        finally:
            try:
                await js.delete_consumer(stream, name)
            except Exception:
                pass
        return found

    return await link.aio(scan)()


async def sweep(keys: SharedKeys, start: int) -> None:
    """Settle the claims of this engine's crashed previous run (the module's docstring says how)."""
    from nats.js.errors import KeyWrongLastSequenceError

    txlog = _log_of(keys)
    if txlog is None or keys.kv is None:
        return
    try:
        with trio.fail_after(keys.timeout * 5):
            found = [f for f in await _scan(keys, start) if f[0] not in keys.held]
    except Exception as exc:
        log.warning("channel %s: the claims this engine's previous run left in %s could not be read (%s); "
                    "another engine flags such a deal after key_lease", keys.channel, keys.where(), describe(exc))
        return
    if not found:
        return
    recovering = {deal for deal, _ in keys.recovering.values()}
    by_id = getattr(txlog.ends, "by_id", None)
    ends = None if by_id is not None else {e.get("id"): e for e in txlog.ends.values()}
    pending = set(txlog.pending)
    kv = keys.kv
    released = finished = 0
    for bk, rev, v in found:
        deal = v.get("deal")
        if deal in recovering or deal in pending:
            continue
        end = by_id(deal) if ends is None else ends.get(deal)     # the log, then the answers files (indexed)
        try:
            with trio.fail_after(keys.timeout):
                if end is None:
                    await keys.link.aio(kv.delete)(bk, last=rev)
                    released += 1
                elif end.get("status") not in (None, "recorded"):
                    final = keys.claim_value(deal, state="done", status=end.get("status"), code=end.get("code"),
                                             reply=end.get("reply"))
                    await keys.link.aio(kv.update)(bk, orjson.dumps(final), last=rev)
                    finished += 1
        except KeyWrongLastSequenceError:
            continue                        # moved meanwhile: taken back here or over by another engine
        except Exception as exc:
            log.warning("channel %s: claim of deal %s left in %s by this engine's previous run not settled: %s; "
                        "another engine flags it after key_lease", keys.channel, deal, keys.bucket, describe(exc))
    if released or finished:
        log.warning("channel %s: settled %d claim(s) this engine's previous run left in %s when it stopped "
                    "(a crash): %d released (claimed, never logged: no call made; the deal runs on whichever "
                    "engine gets its message), %d given the final state its log holds", keys.channel,
                    released + finished, keys.bucket, released, finished)
