"""Two listening channels on one address (E058): ``bsp run`` could bind only the first.

A channel kind whose name ends in ``.listen`` (``tcp listen``, ``http listen``)
binds its ``address`` ("host:port").  Two of them clash when the ports are
equal (and not 0, which asks for any free port) and the hosts are the same or
one of them is a wildcard (``0.0.0.0``, ``::``, empty), which takes the port
on every interface.
"""
from __future__ import annotations

from typing import Any, Callable

WILDCARDS = ("", "0.0.0.0", "::", "*", "[::]")
LOCALHOST = ("localhost", "127.0.0.1")


def _split(address: str) -> tuple[str, str] | None:
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) == 0:
        return None
    host = host.lower().strip("[]") if host not in ("[::]",) else "::"
    return ("127.0.0.1" if host in LOCALHOST else host), str(int(port))


def _clash(a: tuple[str, str], b: tuple[str, str]) -> bool:
    return a[1] == b[1] and (a[0] == b[0] or a[0] in WILDCARDS or b[0] in WILDCARDS)


def listen_clashes(channels: list[Any], options: dict[str, dict], error: Callable[..., None]) -> None:
    """``channels``: the ChannelAst of each declared channel, in order; ``options``: name -> the
    checked options.  Reports each channel that listens where an earlier one already does."""
    seen: list[tuple[Any, tuple[str, str], str]] = []
    for c in channels:
        address = options.get(c.name.name, {}).get("address")
        if not c.kind_name.endswith(".listen") or not isinstance(address, str):
            continue
        where = _split(address)
        if where is None:
            continue
        pos = next((o.value.pos for o in c.options if o.key.name == "address"), c.name.pos)
        first = next((s for s in seen if _clash(s[1], where)), None)
        if first is not None:
            other, _, other_addr = first
            error("E058", f"channels `{other.name.name}` and `{c.name.name}` both listen on {address}",
                  pos, f"`{other.name.name}` listens on {other_addr} ({other.name.pos}); "
                       "give each listening channel its own port")
            continue
        seen.append((c, where, address))
