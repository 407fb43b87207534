"""The bucket of a shared deal-key store (``nats consume`` with ``keys``): bound, and how it names keys.

``setup`` binds the JetStream key-value bucket (created when missing: history 1, file storage, max age
the ledger's key retention) and learns from its ``_bsp_names`` entry how deal keys are named in it
(``engine.channels.nats_keys_names``); ``keep_marker`` writes that entry again now and then, so that
the bucket's max age does not drop it.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import orjson
import trio

from engine.channels.nats_bridge import describe
from engine.channels.nats_keys_names import MARKER, Names, choose, follow, parse_marker, quoted
from engine.channels.options import ChannelConfigError

if TYPE_CHECKING:
    from engine.channels.nats_keys import SharedKeys

log = logging.getLogger("bsp.channel.nats")


async def setup(keys: SharedKeys) -> None:
    """Bind the bucket; create it (history 1, file storage, max age = the key retention) when missing."""
    from nats.js.api import KeyValueConfig, StorageType
    from nats.js.errors import BucketNotFoundError

    link = keys.link
    try:
        keys.kv = await link.aio(link.js.key_value)(keys.bucket)
    except BucketNotFoundError:
        if not keys.create:
            raise ChannelConfigError(
                f"channel {keys.channel}: key-value bucket {keys.bucket!r} (option keys) does not exist on "
                f"{link.url}; create it (nats kv create {keys.bucket} --history 1 --storage file) or set "
                f"create_stream = true") from None
        cfg = KeyValueConfig(bucket=keys.bucket, history=1, storage=StorageType.FILE,
                             ttl=keys.retention or None)
        keys.kv = await link.aio(link.js.create_key_value)(cfg)
        log.info("channel %s: created key-value bucket %s for the shared deal keys (max age %s)",
                 keys.channel, keys.bucket, _age(keys.retention) if keys.retention else "none")
        await bind_names(keys, fresh=True)
        await keys.write_recovered()
        return
    info = await link.aio(link.js.stream_info)(f"KV_{keys.bucket}")
    have = float(info.config.max_age or 0)
    if keys.retention and have and abs(have - keys.retention) > 1:
        log.warning("channel %s: key-value bucket %s keeps keys %gs, the ledger's key retention is %gs: a "
                    "repeat after the shorter of the two is not recognised across engines", keys.channel,
                    keys.bucket, have, keys.retention)
    await bind_names(keys, fresh=not info.state.messages)
    await keys.write_recovered()


async def bind_names(keys: SharedKeys, *, fresh: bool) -> None:
    """How deal keys are named in the bucket: as its ``_bsp_names`` entry says; when it says nothing,
    this engine's way (keyed with its keyring's current key) for a bucket without entries, unkeyed
    SHA-256 for one an older engine filled (engine.channels.nats_keys_names)."""
    from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

    link, kv = keys.link, keys.kv
    try:
        entry = await link.aio(kv.get)(MARKER)
    except KeyNotFoundError:
        entry = None
    if entry is None:
        mine = choose(keys.keyring) if fresh else Names()
        try:
            await link.aio(kv.create)(MARKER, orjson.dumps(mine.marker()))
        except KeyWrongLastSequenceError:          # another engine wrote it just now: follow it
            entry = await link.aio(kv.get)(MARKER)
        else:
            keys.names = mine
    if entry is not None:
        where = f"key-value bucket {keys.bucket} at {link.url}"
        keys.names = follow(parse_marker(entry.value, channel=keys.channel, where=where), keys.keyring,
                            channel=keys.channel, where=where)
    keys.marker_at = trio.current_time()
    if keys.names.mac is None and keys.keyring is not None:
        log.warning("channel %s: key-value bucket %s names its deal keys by their unkeyed SHA-256 (made "
                    "without a field keyring, or by an older bsp): a short reference or card number in a "
                    "deal key can be found by hashing guesses; to have them keyed with the field keyring, "
                    "move every engine to a new bucket (option keys)", keys.channel, keys.bucket)


async def keep_marker(keys: SharedKeys) -> None:
    """Write ``_bsp_names`` again now and then: the bucket's max age would drop it, and an engine
    starting then would choose on its own."""
    from nats.js.errors import KeyNotFoundError

    period = min(3600.0, (keys.retention or 3600.0) / 4)
    if keys.names is None or keys.kv is None or not keys.link.connected or \
            trio.current_time() - keys.marker_at < period:
        return
    with trio.move_on_after(keys.timeout):
        try:
            try:
                entry = await keys.link.aio(keys.kv.get)(MARKER)
            except KeyNotFoundError:
                entry = None
            if entry is None or _loads(entry.value) == keys.names.marker():
                await keys.link.aio(keys.kv.put)(MARKER, orjson.dumps(keys.names.marker()))
            else:
                log.error("channel %s: key-value bucket %s now says its deal keys are named otherwise "
                          "(%s) than this engine names them (%s): a repeat is not recognised across "
                          "engines; give every engine the same field keyring and restart them",
                          keys.channel, keys.bucket, quoted(entry.value or b""),
                          keys.names.describe())
            keys.marker_at = trio.current_time()
        except Exception as exc:
            log.debug("channel %s: %s entry of %s: %s", keys.channel, MARKER, keys.bucket, describe(exc))


def _loads(raw: bytes | None) -> object:
    """The entry's JSON, or None when it is not JSON (then it differs from this engine's: told, quoted)."""
    try:
        return orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        return None


def _age(seconds: float) -> str:
    """A max age as the ledger's key retention is written: ``35d``, ``12h``, ``90m``, else seconds."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
