"""SWIFT MT (FIN): blocks, typed block 4 fields, per-message checks, RJE batches, MT940/942 files.

    SwiftCodec("mt103").decode(bytes) / .encode(values)
    parse_fin(text) -> (values, end); write_fin(values) -> text; parse_many(text); split_rje(text)
    parse_statements(text) -> list of block-4 field lists (lenient reader for bank .sta exports and FIN
        MT940 / MT942 / MT950 messages; anything else refused saying what it is: statement_kind)
    iter_statements(text) -> (offset, fields | FormatError) per statement
    check_statement(fields) (mandatory tags, C27), check_balances(fields) (opening + entries = closing)
    statement_view(fields) -> statement + transactions (MT940/942 view; :NS: split by parse_ns)
    parse_86(text) -> the German structured :86: breakdown ("details" beside field 86's text), or None
    SwiftAmount: a Decimal that keeps non-canonical wire text ("00,12") for a byte-exact rewrite
"""
from formats.swift.codec import SwiftCodec
from formats.swift.details86 import parse_86
from formats.swift.fields import SwiftAmount
from formats.swift.fin import parse_fin, parse_many, split_rje, write_fin
from formats.swift.messages import MESSAGES, validate
from formats.swift.statement import (check_balances, check_statement, iter_statements, parse_ns, parse_statements,
                                    statement_view)

__all__ = ["MESSAGES", "SwiftAmount", "SwiftCodec", "check_balances", "check_statement", "iter_statements",
           "parse_86", "parse_fin", "parse_many", "parse_ns", "parse_statements", "split_rje", "statement_view", "validate",
           "write_fin"]
