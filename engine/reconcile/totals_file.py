"""The mainframe's end-of-day control totals (``bsp reconcile --type totals``): one row per business day,
transaction code (or product), currency (and optionally direction): a count and an amount.

Read either as a plain CSV with a header row (``date``, ``type``, ``currency``, ``count``, ``amount``,
optionally ``dc``; names without case, any order, the aliases below), or through a format declared in a
route file (``--route FILE --name FORMAT``: a COBOL copybook of fixed EBCDIC records, a CSV format ...),
decoded by the same codecs as ``bsp decode``.  ``--columns date=BUS_DATE,amount=TXN_AMOUNT`` names the
fields when they have other names.

The mapping from the mainframe's transaction codes to bsp deal types (``--codes FILE.csv``): columns
``code``, ``deal_type`` and optionally ``dc``; several codes may map to one deal type (their totals are
added before the comparison).
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

from engine.ledger_store import AMOUNT_MAX_INT_DIGITS
from engine.reconcile.statement_csv import amount_of, separator
from engine.reports.model import ReportError

ALIASES = {
    "date": ("date", "business_date", "bus_date", "eod_date", "posting_date", "booking_date"),
    "type": ("type", "txn_code", "tran_code", "transaction_code", "code", "product", "deal_type"),
    "currency": ("currency", "ccy", "curr"),
    "count": ("count", "txn_count", "item_count", "cnt", "number"),
    "amount": ("amount", "txn_amount", "total_amount", "amt", "total"),
    "dc": ("dc", "dr_cr", "debit_credit", "cdt_dbt", "direction"),
}
REQUIRED = ("date", "type", "currency", "count", "amount")
LEDGER_PLACES = Decimal("0.0001")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class TotalRow:
    where: str                  # "file:line" (CSV) or "file: record 3 (byte 62)"
    day: date
    code: str                   # the mainframe's transaction code (or product)
    currency: str
    count: int
    amount: Decimal             # as the file has it (a debit total may be signed): compared by absolute value
    dc: str = ""                # C / D, or "" when the file has no direction


def _key(name: str) -> str:
    return name.strip().casefold().replace("-", "_").replace(" ", "_")


def parse_columns(text: str | None) -> dict[str, str]:
    """``--columns date=BUS_DATE,amount=TXN_AMOUNT``: the file's field for each of our names."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        ours, eq, theirs = part.partition("=")
        ours = _key(ours)
        if not eq or ours not in ALIASES or not theirs.strip():
            raise ReportError(f"--columns {part.strip()!r}: expected NAME=FIELD with NAME one of "
                              f"{', '.join(ALIASES)} (e.g. --columns date=BUS_DATE,amount=TXN_AMOUNT)")
        out[ours] = _key(theirs)
    return out


def _where_fields(fields: list[str], columns: dict[str, str], where: str) -> dict[str, str]:
    """Our name -> the record's key, from ``--columns`` or the aliases; a required one missing: an error."""
    keys = {_key(f): f for f in fields}
    found: dict[str, str] = {}
    for ours, names in ALIASES.items():
        if ours in columns:
            if columns[ours] not in keys:
                raise ReportError(f"{where}: --columns {ours}={columns[ours]}: the record has no field "
                                  f"{columns[ours]} (it has: {', '.join(fields)})")
            found[ours] = keys[columns[ours]]
            continue
        hit = next((n for n in names if n in keys), None)
        if hit is not None:
            found[ours] = keys[hit]
    missing = [k for k in REQUIRED if k not in found]
    if missing:
        raise ReportError(f"{where}: no {', '.join(missing)} field (the record has: {', '.join(fields)}); "
                          f"expected {', '.join(REQUIRED)} (and optionally dc), or name them with "
                          f"--columns {missing[0]}=FIELD")
    return found


def _day(value: Any, where: str, field: str) -> date:
    if isinstance(value, date):
        return value
    text = str(value).strip() if value is not None else ""
    try:
        if _DIGITS.fullmatch(text) and len(text) == 8:          # PIC 9(8): YYYYMMDD
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        return date.fromisoformat(text)
    except ValueError:
        raise ReportError(f"{where}: field {field}: {text!r} is not a date; expected YYYY-MM-DD or "
                          f"YYYYMMDD") from None


def _count(value: Any, where: str, field: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value() and value >= 0:
        return int(value)
    text = str(value).strip() if isinstance(value, str) else ""
    if _DIGITS.fullmatch(text):
        return int(text)
    raise ReportError(f"{where}: field {field}: {value!r} is not a count; expected a whole number 0 or more")


def _amount(value: Any, where: str, field: str, sep: str = ",") -> Decimal:
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int) and not isinstance(value, bool):
        amount = Decimal(value)
    elif isinstance(value, str) and value.strip():
        amount = amount_of(value, sep, where)
    elif isinstance(value, str) or value is None:
        raise ReportError(f"{where}: field {field}: empty; every row needs its amount")
    else:      # a float (COMP-1/COMP-2) is never an amount: its digits are a guess
        raise ReportError(f"{where}: field {field}: {value!r} is not a decimal amount; declare the field as a "
                          f"decimal (PIC S9(13)V99 COMP-3, or a text field), not a floating point number")
    if not amount.is_finite():
        raise ReportError(f"{where}: field {field}: {amount}: not an amount")
    if amount and amount.adjusted() >= AMOUNT_MAX_INT_DIGITS:    # before quantize, whose 28 digits would fail
        raise ReportError(f"{where}: field {field}: {amount:f}: more than {AMOUNT_MAX_INT_DIGITS} digits before the "
                          f"decimal point; the ledger keeps DECIMAL(24,4)")
    if amount != amount.quantize(LEDGER_PLACES):
        raise ReportError(f"{where}: field {field}: {amount:f}: more than 4 decimal places; the ledger keeps 4")
    return amount


def _row(values: dict, fields: dict[str, str], where: str, sep: str = ",") -> TotalRow:
    def get(ours: str) -> Any:
        return values.get(fields[ours]) if ours in fields else None

    currency = str(get("currency") or "").strip().upper()
    if len(currency) != 3 or not currency.isalpha():
        raise ReportError(f"{where}: field {fields['currency']}: {currency!r}: expected an ISO 4217 code such as EUR")
    code = str(get("type") or "").strip()
    if not code:
        raise ReportError(f"{where}: field {fields['type']}: empty; every row needs its transaction code")
    dc = str(get("dc") or "").strip().upper()
    dc = {"DR": "D", "DBIT": "D", "DEBIT": "D", "CR": "C", "CRDT": "C", "CREDIT": "C"}.get(dc, dc)
    if dc not in ("", "C", "D"):
        raise ReportError(f"{where}: field {fields['dc']}: {dc!r}: expected C or D (CR/DR, CRDT/DBIT)")
    return TotalRow(where=where, day=_day(get("date"), where, fields["date"]), code=code, currency=currency,
                    count=_count(get("count"), where, fields["count"]),
                    amount=_amount(get("amount"), where, fields["amount"], sep), dc=dc)


def _flat(values: Any) -> dict:
    """A decoded record's leaves by name (a copybook's groups are flattened: their fields are the columns)."""
    out: dict = {}
    if isinstance(values, dict):
        for k, v in values.items():
            if isinstance(v, dict):
                out.update(_flat(v))
            else:
                out[k] = v
    return out


def load_totals_csv(path: Path, columns: dict[str, str]) -> list[TotalRow]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ReportError(f"{path}:{line}: byte {exc.start}: not UTF-8 text; an EBCDIC file is read through its "
                          f"copybook: give --route FILE --name FORMAT") from None
    sep = separator(text.split("\n", 1)[0])
    reader = csv.reader(io.StringIO(text), delimiter=sep, strict=True)
    rows: list[tuple[int, list[str]]] = []
    after = 0
    try:
        for row in reader:
            rows.append((after + 1, row))
            after = reader.line_num
    except csv.Error as exc:
        raise ReportError(f"{path}:{after + 1}: not readable as CSV ({exc}); check the quotes on this line") from None
    if not rows:
        raise ReportError(f"{path}:1: empty file; expected a header row with {', '.join(REQUIRED)}")
    header = rows[0][1]
    fields = _where_fields(header, columns, f"{path}:1")
    keys = [_key(h) for h in header]
    out = []
    for lineno, row in rows[1:]:
        if not any(c.strip() for c in row):
            continue
        values = {keys[i]: row[i] for i in range(min(len(keys), len(row)))}
        out.append(_row({fields[k]: values.get(_key(fields[k])) for k in fields}, fields, f"{path}:{lineno}", sep))
    return out


def _decoded(path: Path, route: Path, name: str) -> Iterator[tuple[str, dict]]:
    from engine.codec_cli import CodecArgs, UsageError, decode_records, make_setup
    from formats.errors import FormatError
    try:
        setup = make_setup(CodecArgs(route=route, name=name))
        if setup.kind not in ("copybook", "csv", "json"):
            setup.framing = "lines"         # one record a line (a fixed-width text file)
    except UsageError as exc:
        raise ReportError(str(exc)) from None
    with path.open("rb") as fh:
        for no, off, values in decode_records(setup, fh):
            if isinstance(values, FormatError):      # its text names the record, byte offset and field
                raise ReportError(f"{path}: not a {name} record: {values}") from None
            yield f"{path}: record {no} (byte {off})", _flat(values)


def load_totals(path: str | Path, *, route: str | Path | None = None, name: str | None = None,
                columns: dict[str, str] | None = None) -> list[TotalRow]:
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: no totals file here (--against)")
    columns = columns or {}
    if route is None and name is None:
        return load_totals_csv(path, columns)
    if route is None or name is None:
        raise ReportError("--route FILE and --name FORMAT go together: the route file that declares the totals "
                          "file's format, and the format's name")
    out: list[TotalRow] = []
    fields: dict[str, str] | None = None
    for where, values in _decoded(path, Path(route), name):
        if fields is None:
            fields = _where_fields(list(values), columns, where)
        out.append(_row(values, fields, where))
    return out


@dataclass(frozen=True)
class Codes:
    """Transaction code (and direction) -> bsp deal type, from ``--codes``; ``where`` per key for messages."""
    path: Path
    types: dict[tuple[str, str], str]           # (code without case, C / D / "") -> deal type
    shown: dict[tuple[str, str], str] = field(default_factory=dict)    # the code as the mapping writes it

    def deal_type(self, code: str, dc: str) -> str | None:
        return self.types.get((code.casefold(), dc)) or self.types.get((code.casefold(), ""))

    def deal_types(self) -> set[str]:
        return set(self.types.values())


def load_codes(path: str | Path) -> Codes:
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"--codes {path}: no such file; expected a CSV with columns code, deal_type (and "
                          f"optionally dc)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ReportError(f"--codes {path}: not UTF-8 text; save the mapping as UTF-8 CSV") from None
    rows = list(csv.reader(io.StringIO(text), delimiter=separator(text.split("\n", 1)[0])))
    header = [_key(h) for h in (rows[0] if rows else [])]
    if "code" not in header or "deal_type" not in header:
        raise ReportError(f"{path}:1: the header needs columns code and deal_type (it has: "
                          f"{', '.join(rows[0]) if rows else 'nothing'})")
    ci, ti = header.index("code"), header.index("deal_type")
    di = header.index("dc") if "dc" in header else None
    types: dict[tuple[str, str], str] = {}
    seen: dict[tuple[str, str], int] = {}
    shown: dict[tuple[str, str], str] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) <= max(ci, ti) or not row[ci].strip() or not row[ti].strip():
            raise ReportError(f"{path}:{lineno}: expected a code and a deal_type on every row")
        dc = (row[di].strip().upper()[:1] if di is not None and di < len(row) else "")
        key = (row[ci].strip().casefold(), dc)
        if key in seen:
            raise ReportError(f"{path}:{lineno}: code {row[ci].strip()}{' ' + dc if dc else ''} is mapped already on "
                              f"line {seen[key]}; give each code one deal type")
        seen[key] = lineno
        types[key] = row[ti].strip()
        shown[key] = row[ci].strip()
    return Codes(path, types, shown)


__all__ = ["ALIASES", "Codes", "TotalRow", "load_codes", "load_totals", "parse_columns"]
