"""The reply of a deal run after its sender's exchange ended (a held deal released by a compliance officer,
engine/deal_hold.py): delivered to the channel when the channel has an address of its own for replies, else
nowhere (said so by the release).

Only a ``nats consume`` channel has one: its ``reply_subject`` (where replies go when a message has no
``Bsp-Reply-To`` header; the header of the held message is not kept with its dead letter).  A ``tcp listen`` /
``http listen`` channel answers on the request's own connection, which is gone: nothing to deliver to.  The
publish is confirmed by the server (a flush) within the channel's ``connect_timeout``; one that fails is said
(``delivered`` false, ``why``) and the reply stays on its deal.
"""
from __future__ import annotations

from typing import Any

import trio


async def deliver_late(sb: Any, channel: str, reply: bytes | None) -> dict[str, Any] | None:
    """Deliver ``reply`` to ``channel``'s own reply address: ``{"delivered": bool, "to", "why"}``; None when the
    channel has none (the reply went to no one)."""
    try:
        ch = sb.channel(channel)
    except Exception:       # noqa: BLE001 - no such channel now (a reload): nothing to deliver to
        return None
    subject = getattr(ch, "reply_subject", None)
    link = getattr(ch, "link", None)
    if not subject or link is None:
        return None
    to = f"NATS subject {subject} (channel {channel}'s reply_subject)"
    if reply is None:
        return {"delivered": False, "to": to, "why": "the run made no reply"}
    if getattr(link, "nc", None) is None:
        return {"delivered": False, "to": to, "why": f"channel {channel} is not connected to {link.url} now"}

    async def publish() -> None:
        await link.nc.publish(subject, reply)
        await link.nc.flush(timeout=link.connect_timeout)

    with trio.move_on_after(link.connect_timeout + 1) as scope:
        try:
            await link.aio(publish)()
        except Exception as exc:    # noqa: BLE001 - said, the reply stays on its deal
            return {"delivered": False, "to": to, "why": f"the publish failed: {type(exc).__name__}: {exc}"}
    if scope.cancelled_caught:
        return {"delivered": False, "to": to, "why": f"the server did not confirm the publish within "
                                                  f"{link.connect_timeout + 1:g}s"}
    return {"delivered": True, "to": to, "why": f"published to {to}"}
