"""The admin API: health, readiness, status, reload, deals, dead letters, ledger snapshots, metrics, OpenAPI.

The engine plugs in through ``AdminBackend`` (engine/admin/backend.py).
"""
from engine.admin.app import DEFAULT_HOST, DEFAULT_PORT, AdminApp, serve_admin
from engine.admin.auth import TOKEN_ENV, AdminConfigError, NamedToken, TokenAuth, load_token, write_token
from engine.admin.backend import AdminBackend, DeadLetterQuery, DealQuery, Readiness, ReloadResult
from engine.admin.openapi import build_openapi

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "TOKEN_ENV", "AdminApp", "AdminBackend", "AdminConfigError",
           "DeadLetterQuery", "DealQuery", "NamedToken", "Readiness", "ReloadResult", "TokenAuth", "build_openapi",
           "load_token", "serve_admin", "write_token"]
