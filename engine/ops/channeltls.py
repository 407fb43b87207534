"""A listening channel's certificate renewed at the same path: a new TLS context, the same socket.

    contexts = await read_renewed(gen, plan.renew_tls, now)   # {channel: new context}; raises TLSRenewRefused
    renew(gen, contexts)                                       # at the swap: new connections get them

A reload whose only change to a ``tcp listen`` or ``http listen`` channel is its ``cert`` or ``ca`` file
rewritten (engine/ops/plan.py ``renew_tls``) keeps the channel, its listening socket and its open
connections; the files are read into a new server context before the swap, and the connections the
channel accepts from then on get it.  Rebinding instead closed the port for a few milliseconds (connects
refused, connections waiting in the old socket's accept queue reset: measured in the commit that added
this module).  Files that cannot be used (missing, a key that does not belong to the certificate) or a
certificate already expired refuse the reload: the channel keeps serving the certificate it has.  The
files are read as the new configuration's version holds them (``formats.versioned``), not read again: a
certificate rewritten once more after the reload read the configuration waits for the next reload.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Iterable

import trio

from engine.certexpiry import OWN, expired_certs, expired_text
from formats.versioned import versioned

log = logging.getLogger("bsp.ops")


class TLSRenewRefused(Exception):
    """The rewritten certificate files of one or more channels cannot be used; ``lines``: one per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


async def read_renewed(gen: Any, names: Iterable[str], now: float | None = None) -> dict[str, Any]:
    """The new server context of each channel named (``gen``: the generation about to be swapped in, which
    holds the running channel objects and the certificates just read)."""
    now = time.time() if now is None else now
    out: dict[str, Any] = {}
    problems: list[str] = []
    sources = getattr(gen.program, "sources", None)
    for name in names:
        ch = gen.channels[name]
        try:
            out[name] = await trio.to_thread.run_sync(_read_versioned, ch, sources)
        except ValueError as exc:            # ChannelConfigError: names the channel and the file
            problems.append(f"{exc}; the channel keeps serving the certificate it has")
            continue
        problems += [f"channel {name}: " + expired_text(e, "counterparts would refuse it; the channel keeps "
                                                           "serving the certificate it has; write a valid "
                                                           "certificate and its key over the files, then reload")
                     for e in expired_certs(gen.certs, now, [name])]
    if problems:
        raise TLSRenewRefused(problems)
    return out


def _read_versioned(ch: Any, sources: Any) -> Any:
    """The channel's new context from its files as the generation's version holds them (engine/tls.py):
    a file rewritten after the reload read the configuration is not the one served."""
    with versioned(sources):
        return ch.read_tls()


def renew(gen: Any, contexts: dict[str, Any]) -> None:
    """Give each channel its new context (no await: part of the reload's swap)."""
    for name, context in contexts.items():
        gen.channels[name].renew_tls(context)
        own = [e for e in gen.certs if e.channel == name and e.role in OWN]
        what = (f"certificate {own[0].path} (subject {own[0].subject}, expires {own[0].date})" if own
                else "its certificate files")
        log.warning("reload: channel %s: %s read again; new connections get it, open ones keep theirs, the "
                    "listening socket stays open", name, what)
