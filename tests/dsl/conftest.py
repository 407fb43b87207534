"""A small registry for the language tests: the channel and format kinds the
route language needs, described by real ComponentSpecs (no builders: the
checker only reads specs and calls the pure check/fields hooks)."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.steps import limit as limit_component
from engine.steps import continuity as continuity_component
from engine.steps import record as record_component
from engine.steps import screen as screen_component

from engine.channels import file_watch, file_write
from engine.registry import Registry
from formats import json_codec
from formats.copybook import component as copybook_component
from formats.iso8583 import component as iso8583_component
from formats.component import ComponentSpec, OptionSpec
from formats.errors import SpecError
from formats.framing import check_framing

REPO = Path(__file__).resolve().parents[2]
BILL_PAYMENT = REPO / "routes" / "bill_payment" / "bill_payment.route"

_CHANNEL_OPTIONS = (
    OptionSpec("address", "string", "host:port to listen on or connect to", required=True),
    OptionSpec("framing", "ident", "length prefix of each frame", default="length2",
               choices=("length2", "length4")),
    OptionSpec("max_frame", "int", "largest frame accepted, in bytes", default=65536),
    OptionSpec("timeout", "duration", "how long to wait for a reply"),
    OptionSpec("header_size", "int", "a fixed header before each message", default=0),
    OptionSpec("header", "string", "hex of the header a calling channel sends"),
)


def _fixed_check(decl, base_dir):
    """A fixed record needs every width (the real fixed module does the same)."""
    return [SpecError(f"field `{f.name}` of a fixed record needs a width, e.g. {f.type}(10)",
                      path=f.pos.file if f.pos else None, line=f.pos.line if f.pos else None,
                      col=f.pos.col if f.pos else None, hint="write the width in parentheses")
            for f in decl.fields if f.width is None]


def _fields_of(decl, base_dir):
    return [f.name for f in decl.fields] if decl.fields else None


def build_test_registry() -> Registry:
    reg = Registry()
    reg.register(ComponentSpec("channel", "tcp.listen", "accept TCP connections", _CHANNEL_OPTIONS,
                               check=check_framing))
    reg.register(ComponentSpec("channel", "tcp.connect", "connect to a TCP server", _CHANNEL_OPTIONS))
    reg.register(ComponentSpec("channel", "memory", "in-process channel for tests", (
        OptionSpec("capacity", "int", "buffered messages", default=0),
    )))
    reg.register(ComponentSpec("format", "json", "JSON documents", (
        OptionSpec("schema", "path", "JSON Schema file validating each message"),
        OptionSpec("classify", "list", 'classified fields: ["card.number:pan"]'),
    ), positional="schema", required=json_codec.required))   # the real hook: a schema's required fields
    reg.register(ComponentSpec("format", "fixed", "fixed-width text records", (
        OptionSpec("encoding", "ident", "text encoding", default="ascii",
                   choices=("ascii", "cp037", "cp500", "latin1", "utf8")),
    ), check=_fixed_check, fields=_fields_of, accepts_fields=True))
    reg.register(ComponentSpec("format", "csv", "comma separated records", (
        OptionSpec("delimiter", "string", "field separator", default=","),
        OptionSpec("header", "bool", "first line names the columns", default=True),
    ), fields=_fields_of, accepts_fields=True))
    reg.register(file_watch.COMPONENT)        # the real kind: its check and check_receive hooks
    reg.register(file_write.COMPONENT)        # the real kind: its name fields a call gives (call_names)
    reg.register(iso8583_component.COMPONENT)  # the real kind (pure, in formats/): its network specs
    reg.register(copybook_component.COMPONENT)  # the real kind (pure, in formats/): its field tree (E061, E112)
    reg.register(limit_component.COMPONENT)   # the real kind: a running total (dsl/limits.py checks it)
    reg.register(continuity_component.COMPONENT)   # the real kind: a statement chain (dsl/continuity.py)
    reg.register(record_component.COMPONENT)   # the real kind: any field names (dsl/records.py checks it)
    reg.register(screen_component.COMPONENT)  # the real kind: its check hook (E122)
    reg.register(ComponentSpec("step", "audit", "writes an audit line", (
        OptionSpec("text", "expr", "what to write", required=True),
        OptionSpec("level", "expr", "info or warning"),
    )))
    return reg


@pytest.fixture(scope="session")
def registry() -> Registry:
    return build_test_registry()


@pytest.fixture
def fresh_registry() -> Registry:
    """A registry of this test's own, for a test that registers more kinds into it."""
    return build_test_registry()
