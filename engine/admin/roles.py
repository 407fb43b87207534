"""The admin API's roles: what a named token may do (docs/admin-api.md#roles).

    monitor   GET /ready, /status, /metrics, /openapi.json       (a Prometheus scraper, a dashboard)
    read      GET /deals, /deals/{id}, /dead-letters, /dead-letters/{id} (its message withheld);
              POST /deals/{id}/reveals, /dead-letters/{id}/reveals (record a client's reveal)
    raw       with read: a dead letter's stored message (raw_base64) in GET /dead-letters/{id}; under four eyes
              (dead.reveal) a dead letter's reveal request and its fetch (POST /approvals/{id}/reveal)
    operate   POST /reload, /dead-letters/{id}/retry, /deals/{id}/resolve
    snapshot  POST /ledger/snapshot (a copy of the whole ledger)

``GET /health`` needs no token.  The single-token setup (``--admin-token-file``, ``admin.token``,
``$BSP_ADMIN_TOKEN``) is one token named ``admin`` with every role.
"""
from __future__ import annotations

ROLES: tuple[str, ...] = ("monitor", "read", "raw", "operate", "snapshot")
ALL_ROLES: frozenset[str] = frozenset(ROLES)
LEGACY_NAME = "admin"          # the name of the token given alone (--admin-token-file, admin.token, $BSP_ADMIN_TOKEN)
RAW_ROLE = "raw"

__all__ = ["ALL_ROLES", "LEGACY_NAME", "RAW_ROLE", "ROLES"]
