"""The lines `bsp run` prints once it serves: one per channel (role, address, and whether it speaks TLS or
mutual TLS) and the admin API's URL with its scheme (pasteable into ``BSP_ADMIN_URL``)."""
from __future__ import annotations

import ssl
from typing import Any


def channel_security(ch: Any) -> str:
    """``"mutual TLS"``, ``"TLS"`` (``"TLS, client certificate optional"``) or ``""`` (plain)."""
    gate = getattr(ch, "gate", None)                 # tcp listen (engine/channels/tcp_tls.Gate)
    ctx = gate.ssl_context if gate is not None else getattr(ch, "ssl_context", None)
    if ctx is None:
        return "TLS" if str(getattr(ch, "url", "") or "").startswith("https:") else ""
    if getattr(ch, "role", "") == "listen":
        mode = getattr(ctx, "verify_mode", ssl.CERT_NONE)
        return {ssl.CERT_REQUIRED: "mutual TLS", ssl.CERT_OPTIONAL: "TLS, client certificate optional"}.get(mode, "TLS")
    return "mutual TLS" if getattr(ctx, "has_cert", False) else "TLS"


def channel_line(name: str, ch: Any) -> str:
    security = channel_security(ch)
    return (f"channel {name}: {ch.role} {getattr(ch, 'address', '')}".rstrip()
            + (f" ({security})" if security else " (plain TCP)" if hasattr(ch, "gate") else ""))


def admin_url(opts: Any, port: int) -> str:
    """``https://HOST:PORT`` under TLS, else ``http://HOST:PORT``."""
    scheme = "https" if getattr(opts, "ssl_context", None) is not None else "http"
    host = opts.host_port()[0]
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
