"""Which call a queued ISO 8583 reversal goes by in the running configuration (engine/txn/saf.py).

A reversal is owed to the counterpart its original went to: the outbound channel, by name
(``Item.target``, ``o`` in its ``rev`` entry).  ``Resolver`` finds the running configuration's ISO 8583
call on that channel (the same route's call of the same name first, else any route's); none means the
reversal is stranded (kept queued, not sent) until a reload brings one back.  ``strand_warnings`` are the
reload's (and ``bsp reload --dry-run``'s) warnings about the reversals a configuration would strand.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable


def target_of(runner: Any) -> str | None:
    """The name of the outbound channel a call step goes to."""
    if runner is None:
        return None
    name = getattr(runner, "channel_name", None) or getattr(getattr(runner, "channel", None), "name", None)
    return str(name) if name is not None else None


def label(item: Any) -> str:
    return item.target or f"(route {item.route} call {item.step})"


def stranded_why(item: Any) -> str:
    if item.target is None:     # a log entry written before reversals named their channel
        return (f"route {item.route} (channel {item.channel}) has no ISO 8583 call {item.step} in the running "
                f"configuration; reversal kept queued, not sent, until a reload brings it back")
    return (f"no call for channel {item.target} in the running configuration; reversal kept queued, not sent, "
            f"until a reload brings an ISO 8583 call on channel {item.target} back")


class Resolver:
    """Find a queued reversal's call in the running configuration, by the counterpart it is owed to (its
    outbound channel, by name): the same route's call of the same name, among the dispatchers of the
    channel the deal came in on, while it calls that channel; else any route's ISO 8583 call on it.  An
    item without a channel (a log entry older than ``o``) is found by route and call name alone.

    The index is built once per set of dispatchers; ``forget`` drops it (a reload: it holds the calls of
    the configuration it was built from)."""

    def __init__(self, dispatchers: Callable[[], Iterable[Any]]) -> None:
        self.dispatchers = dispatchers
        self._key: tuple[int, ...] | None = None
        self._calls: dict[tuple[str, str, str], Any] = {}
        self._by_channel: dict[str, Any] = {}

    def forget(self) -> None:
        self._key, self._calls, self._by_channel = None, {}, {}

    def _index(self) -> None:
        from engine.txn.plan import plan_of
        ds = list(self.dispatchers())
        key = tuple(id(d) for d in ds)
        if key == self._key:
            return
        calls: dict[tuple[str, str, str], Any] = {}
        by_channel: dict[str, Any] = {}
        for disp in ds:
            for br in disp.routes:
                for call in plan_of(br).calls.values():
                    if not call.iso:
                        continue
                    calls.setdefault((disp.channel, br.name, call.name), call.runner)
                    target = target_of(call.runner)
                    if target is not None:
                        by_channel.setdefault(target, call.runner)
        self._key, self._calls, self._by_channel = key, calls, by_channel

    def __call__(self, item: Any) -> Any:
        self._index()
        own = self._calls.get((item.channel, item.route, item.step))
        if own is not None and (item.target is None or target_of(own) == item.target):
            return own
        return self._by_channel.get(item.target) if item.target is not None else None


def strand_warnings(queues: Iterable[Any], dispatchers: Callable[[], Iterable[Any]], *, dry_run: bool) -> list[str]:
    """The reload's warnings: per channel, the reversals owed to it that the new configuration (these
    dispatchers) has no call for, kept queued and not sent until a reload brings one back."""
    counts: dict[str, int] = {}
    for q in queues:
        for name, n in q.would_strand(dispatchers).items():
            counts[name] = counts.get(name, 0) + n
    verb = "would be" if dry_run else "is"
    return [f"channel {name}: {n} ISO 8583 reversal{'s' if n != 1 else ''} owed to it not acknowledged, and the new "
            f"configuration has no call on channel {name}: {'they' if n != 1 else 'it'} {verb} kept queued "
            f"(stranded: in the transaction log, not sent) until a reload brings an ISO 8583 call on channel "
            f"{name} back; to let {'them' if n != 1 else 'it'} through first, keep the channel until `bsp status` "
            f"shows no reversal pending on it" for name, n in sorted(counts.items())]
