"""Access lists: who may talk to a listening channel or the admin API.

Written as a list of strings, each ``kind:value``:

    cn:MAINFRAME01               client certificate subject common name
    san:dns:biller.example       client certificate SAN, DNS name (``*.example`` matches one label)
    san:email:ops@bank.example   client certificate SAN, e-mail
    san:uri:spiffe://bank/mf     client certificate SAN, URI
    san:ip:10.1.2.3              client certificate SAN, IP address
    ip:127.0.0.0/8               source address (IPv4 or IPv6, CIDR or single address)

Rules of one group are alternatives; the groups combine: a peer is allowed
when (there are no ``ip:`` rules, or its address matches one) and (there are
no certificate rules, or its verified certificate matches one).  An empty
list allows everyone.  Certificate rules need a verified client certificate
(``client_cert = "required"`` or ``"optional"`` on the TLS side).
"""
from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from engine.tls import peer_identity

_SAN_KINDS = ("dns", "email", "uri", "ip")
SYNTAX = ('"cn:NAME", "san:dns:HOST", "san:email:ADDR", "san:uri:URI", "san:ip:ADDR", '
          '"ip:CIDR" (e.g. "ip:127.0.0.0/8")')

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Refusal(str):
    """Why an access list refused a peer, in full (the rules it matched none of: the log's text), and
    ``told``: the same without the rules, for the refused client itself. A peer the list keeps out
    learns what of it was refused (its address, its certificate's names), never the addresses and
    names that would be let in."""

    told: str

    def __new__(cls, full: str, told: str) -> "Refusal":
        self = super().__new__(cls, full)
        self.told = told
        return self


class AccessListError(ValueError):
    """An entry of an access list that cannot be parsed; names its index and text."""

    def __init__(self, message: str, *, index: int, entry: Any) -> None:
        self.index = index
        self.entry = entry
        super().__init__(f"access list entry {index + 1} ({entry!r}): {message}; expected one of {SYNTAX}")


@dataclass(frozen=True)
class Rule:
    kind: str            # "cn", "dns", "email", "uri", "ip" (SAN) or "addr" (source address)
    value: str
    text: str            # as written
    network: Network | None = None

    def matches_identity(self, ident: dict[str, list[str]]) -> bool:
        if self.kind == "cn":
            return self.value in ident["cn"]
        if self.kind == "dns":
            return any(_dns_match(self.value, name) for name in ident["dns"])
        if self.kind == "email":
            return any(self.value.lower() == e.lower() for e in ident["email"])
        if self.kind == "ip":
            return any(_same_ip(self.value, a) for a in ident["ip"])
        return self.value in ident[self.kind]


def _dns_match(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return fnmatch.fnmatchcase(name, pattern) if "*" in pattern else name == pattern


def _same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def _parse(index: int, entry: Any) -> Rule:
    if not isinstance(entry, str):
        raise AccessListError(f"expected a string, got {type(entry).__name__}", index=index, entry=entry)
    kind, sep, rest = entry.strip().partition(":")
    kind = kind.lower()
    if not sep or not rest:
        raise AccessListError("missing \"kind:\" prefix or value", index=index, entry=entry)
    if kind == "cn":
        return Rule("cn", rest, entry)
    if kind == "san":
        sub, sep, value = rest.partition(":")
        sub = sub.lower()
        if not sep or not value:
            raise AccessListError("a SAN rule is san:KIND:VALUE", index=index, entry=entry)
        if sub not in _SAN_KINDS:
            raise AccessListError(f"unknown SAN kind {sub!r} (known: {', '.join(_SAN_KINDS)})",
                                  index=index, entry=entry)
        if sub == "ip":
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise AccessListError(f"{value!r} is not an IP address", index=index, entry=entry) from None
        return Rule(sub, value, entry)
    if kind == "ip":
        try:
            net = ipaddress.ip_network(rest, strict=False)
        except ValueError:
            raise AccessListError(f"{rest!r} is not an IPv4/IPv6 address or CIDR network",
                                  index=index, entry=entry) from None
        return Rule("addr", str(net), entry, net)
    raise AccessListError(f"unknown kind {kind!r}", index=index, entry=entry)


def _peer_ip(peer_addr: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``("1.2.3.4", 5)``, ``("::1", 5, 0, 0)``, ``"1.2.3.4:5"``, ``"[::1]:5"`` or ``"1.2.3.4"``."""
    host: Any = peer_addr
    if isinstance(peer_addr, (tuple, list)) and peer_addr:
        host = peer_addr[0]
    elif isinstance(peer_addr, str):
        try:
            return ipaddress.ip_address(peer_addr)
        except ValueError:
            pass
        host = peer_addr.rpartition(":")[0].strip("[]") if ":" in peer_addr else peer_addr
    if not isinstance(host, str):
        return None
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class AccessList:
    """Parsed access rules; ``check(peer_addr, peercert) -> (allowed, reason)``."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        rules = tuple(rules)
        self.address_rules = tuple(r for r in rules if r.kind == "addr")
        self.identity_rules = tuple(r for r in rules if r.kind != "addr")

    @classmethod
    def parse(cls, entries: Sequence[str] | None) -> "AccessList":
        """Every entry is checked; the first bad one raises ``AccessListError``."""
        if entries is None:
            return cls()
        if isinstance(entries, str):
            raise AccessListError("expected a list of strings, got one string", index=0, entry=entries)
        return cls(_parse(i, e) for i, e in enumerate(entries))

    @property
    def open(self) -> bool:
        return not (self.address_rules or self.identity_rules)

    @property
    def needs_client_cert(self) -> bool:
        return bool(self.identity_rules)

    def check(self, peer_addr: Any, peercert: dict[str, Any] | None) -> tuple[bool, str]:
        """``(allowed, reason)``; a refusal's reason is a :class:`Refusal`: the full text (with the rules) for
        the log, ``.told`` for the refused client."""
        reasons = []
        if self.address_rules:
            ip = _peer_ip(peer_addr)
            hit = next((r for r in self.address_rules if ip is not None and ip in r.network), None)  # type: ignore[operator]
            if hit is None:
                allowed = ", ".join(r.text for r in self.address_rules)
                shown = str(ip) if ip is not None else repr(peer_addr)
                return False, Refusal(f"source address {shown} matches none of {allowed}",
                                      f"source address {shown} is not allowed")
            reasons.append(f"address {ip} matches {hit.text}")
        if self.identity_rules:
            ident = peer_identity(peercert)
            allowed = ", ".join(r.text for r in self.identity_rules)
            if not peercert:
                return False, Refusal(f"no verified client certificate; one matching {allowed} is required",
                                      "no verified client certificate; one is required")
            hit = next((r for r in self.identity_rules if r.matches_identity(ident)), None)
            if hit is None:
                seen = "; ".join(f"{k} {', '.join(v)}" for k, v in ident.items() if v) or "no CN or SAN"
                return False, Refusal(f"client certificate ({seen}) matches none of {allowed}",
                                      f"client certificate ({seen}) is not allowed")
            reasons.append(f"certificate matches {hit.text}")
        return True, "; ".join(reasons) or "no access rules"
