"""The durable consumer of a ``nats consume`` channel on the server: set up, checked, set up again.

Set-up makes sure of the stream (created when missing, with ``create_stream``), applies the channel's
consumer settings to an existing durable consumer that holds others (a warning names each change),
binds the shared key store (``keys``) and subscribes; a server that is down is retried in the background
(``until_set_up``).  While fetches bring nothing, the fetch loop asks whether the consumer (or stream)
is gone from the server, and sets it up again: from after the last acknowledged stream sequence when
the stream is the same one.
"""
from __future__ import annotations

import logging
from typing import Any

import trio

from engine.channels.nats_bridge import describe, ensure_stream, until_set_up

log = logging.getLogger("bsp.channel.nats")


def consumer_config(ch: Any, start_seq: int = 0) -> Any:
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    cfg = ConsumerConfig(
        durable_name=ch.durable, filter_subject=ch.subject, ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL, ack_wait=ch.ack_wait,
        max_ack_pending=ch.max_ack_pending, max_deliver=ch.max_deliver)
    if start_seq > 1:
        cfg.deliver_policy, cfg.opt_start_seq = DeliverPolicy.BY_START_SEQUENCE, start_seq
    return cfg


def differences(ch: Any, have: Any) -> list[str]:
    """The channel's consumer settings that the server's consumer ``have`` does not hold."""
    want = (("subject", have.filter_subject, ch.subject),
            ("ack_wait", have.ack_wait, ch.ack_wait),
            ("max_deliver", have.max_deliver if have.max_deliver not in (None, 0) else -1, ch.max_deliver),
            ("max_ack_pending", have.max_ack_pending, ch.max_ack_pending))
    return [f"{name} {old!r} -> {new!r}" for name, old, new in want
            if (abs(float(old or 0) - float(new)) > 1e-3 if name == "ack_wait" else old != new)]


async def subscribe(ch: Any, start_seq: int = 0) -> Any:
    from nats.js.errors import NotFoundError

    async def attempt() -> Any:
        link = ch.link
        await ensure_stream(link, ch.stream, [ch.subject], create=ch.create_stream)
        info = await link.aio(link.js.stream_info)(ch.stream)
        ch.stream_created = info.created
        cfg = consumer_config(ch, start_seq)
        try:
            have = await link.aio(link.js.consumer_info)(ch.stream, ch.durable)
        except NotFoundError:
            have = None
        if have is not None:
            changed = differences(ch, have.config)
            if changed:
                # an existing durable consumer keeps its own settings unless told: a changed
                # subject, ack_wait, max_deliver or max_ack_pending is applied to it (server update)
                cfg.deliver_policy, cfg.opt_start_seq = have.config.deliver_policy, have.config.opt_start_seq
                await link.aio(link.js.add_consumer)(ch.stream, config=cfg)
                log.warning("channel %s: consumer %s on stream %s updated to the channel's settings: %s",
                            ch.name, ch.durable, ch.stream, ", ".join(changed))
        if ch.keys is not None:
            await ch.keys.setup()
        return await link.aio(link.js.pull_subscribe)(
            ch.subject, durable=ch.durable, stream=ch.stream, config=cfg)

    def report(text: str) -> None:
        ch.setup_error = text

    sub = await until_set_up(
        attempt, lambda exc: (f"channel {ch.name}: cannot set up consumer {ch.durable} on stream "
                              f"{ch.stream} at {ch.link.url}: {describe(exc)} (is JetStream enabled: "
                              f"nats-server -js?)"), report)
    ch.ready.set()
    log.info("channel %s consuming %s", ch.name, ch.address)
    return sub


async def vanished(ch: Any) -> int | None:
    """None while the consumer exists (or the server cannot tell now); else the stream sequence
    to start a new consumer at (0: from the stream's first message)."""
    from nats.js.errors import NotFoundError

    link = ch.link
    if not link.connected:
        return None
    try:
        with trio.move_on_after(max(link.connect_timeout, 1)):
            info = await link.aio(link.js.consumer_info)(ch.stream, ch.durable)
            ch.ack_floor = max(ch.ack_floor, int(info.ack_floor.stream_seq or 0))
        return None
    except NotFoundError:
        pass
    except Exception as exc:       # not connected / JetStream busy: ask again next time
        log.debug("channel %s: consumer check: %s", ch.name, describe(exc))
        return None
    try:
        sinfo = await link.aio(link.js.stream_info)(ch.stream)
    except Exception:              # the stream is gone too: set-up creates it (or says why not)
        sinfo = None
    same = sinfo is not None and sinfo.created == ch.stream_created
    log.error("channel %s: %s %s is gone from %s (deleted?); setting it up again%s", ch.name,
              "consumer" if sinfo is not None else "stream", f"{ch.stream}/{ch.durable}"
              if sinfo is not None else ch.stream, link.url,
              f", from stream sequence {ch.ack_floor + 1} (after the last acknowledged)"
              if same and ch.ack_floor else "")
    return ch.ack_floor + 1 if same and ch.ack_floor else 0


async def unsubscribe(ch: Any, sub: Any) -> None:
    try:
        with trio.move_on_after(1):
            await ch.link.aio(sub.unsubscribe)()
    except Exception as exc:      # the old inbox: nothing of value left on it
        log.debug("channel %s: unsubscribe: %s", ch.name, describe(exc))
