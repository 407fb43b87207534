"""Defaults and names the command line shows in its options and help, kept apart from the modules
that use them so that ``bsp --help`` (and every command's start) does not import DuckDB, Arrow, the
admin HTTP server, the route-language checker or the cryptography library (docs/cli.md).

Each stays importable from its home module as before (``engine.ledger.DEFAULT_LEDGER``,
``engine.deal.STATUSES``, ``engine.admin.app.DEFAULT_PORT``, ``engine.reports.FORMATS``, ...):
those modules take it from here.  This module imports nothing of bsp's and nothing heavy.
"""
from __future__ import annotations

from pathlib import Path

# engine.ledger / engine.deploy: the ledger file when none is given, relative to the working folder
DEFAULT_LEDGER = Path("var/bsp.duckdb")

# engine.deal: the states of a deal and of a dead letter
DEAL_STATUSES = ("committed", "rejected", "failed", "duplicate")   # duplicate: a repeated business key (engine/txn)
DEAD_STATUSES = ("new", "retrying", "retried", "purged")
# a dead letter's error_kind (`bsp dead list --kind`, GET /dead-letters?kind=): the failure kinds of
# engine.runtime.exchange (DEFAULT_CODES, error.kind in a route) and `unrecorded` (a deal row the ledger
# refused: engine.runtime.dispatch); tests/engine/test_dead_kind_filter.py holds the two lists together
DEAD_KINDS = ("unreachable", "timeout", "lost", "refused", "rejected", "malformed", "unrouted", "unauthenticated",
              "failed", "internal", "in_doubt", "recovered", "duplicate", "unrecorded",
              "key_conflict", "held", "refused_whole")

# engine.admin.app / engine.admin.auth: where the admin API listens by default, and its token's variable
ADMIN_HOST = "127.0.0.1"
ADMIN_PORT = 7080          # the port the shipped routes/platform.yaml serves (admin.listen); the clients default to it
ADMIN_TOKEN_ENV = "BSP_ADMIN_TOKEN"

# engine.audit: the ledger's audit key, from the environment
AUDIT_ENV_KEY = "BSP_AUDIT_KEY"
AUDIT_ENV_KEY_FILE = "BSP_AUDIT_KEY_FILE"

# engine.reports: the reports and the export formats (engine.reports.export.WRITERS has one writer each)
REPORTS = ("daily-summary", "rejections", "counterparty-statement", "statement-continuity", "operator-actions")
REPORT_FORMATS = ("csv", "parquet", "xlsx", "html", "json")

# engine.reconcile: the statement types
STATEMENT_TYPES = ("csv", "mt940", "camt053", "camt052")

# engine.codec_cli: format kinds bsp decode / encode know, and the module holding each kind's COMPONENT
CODEC_KINDS: dict[str, str] = {
    "copybook": "formats.copybook.component",
    "iso8583": "formats.iso8583.component",
    "swift": "formats.swift.component",
    "iso20022": "formats.iso20022.component",
    "csv": "formats.csv_codec",
    "json": "formats.json_codec",
    "xml": "formats.xml_codec",
    "fixed": "formats.fixed",
}
