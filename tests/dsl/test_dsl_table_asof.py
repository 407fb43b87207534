"""Effective-dated tables: ``table T = csv "f.csv" key K effective from valid_from`` holds several rows per
key, one per day it applies from; ``T[KEY at DATE]`` is the row in force on DATE and ``T[KEY]`` (``in``,
``lookup``) the one in force today; bad files name file:line; ``bsp check`` gives E148-E150."""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from dsl import ir
from dsl.clock import fixed
from dsl.compiler import EvalError, compile_expr
from dsl.functions import f_lookup
from dsl.load import compile_paths
from dsl.parser import parse
from dsl.tables import TableError, load_table

RATES = ("insurer,valid_from,commission_rate\n"
         "CLIC,2000-01-01,0.0200\n"
         "CLIC,2026-11-15,0.0150\n"
         "PICC,2026-01-01,0.0300\n")


def _decl(path, effective="valid_from"):
    return ir.TableDecl("insurers", "csv", str(path), "insurer", effective=effective)


@pytest.fixture
def table(tmp_path):
    p = tmp_path / "insurers.csv"
    p.write_text(RATES)
    return load_table(_decl(p))


def test_the_row_in_force_on_a_day_is_the_latest_dated_on_or_before_it(table):
    assert table.at("CLIC", date(2026, 11, 14))["commission_rate"] == "0.0200"
    assert table.at("CLIC", date(2026, 11, 15))["commission_rate"] == "0.0150"     # from its day on
    assert table.at("CLIC", date(2030, 1, 1))["commission_rate"] == "0.0150"
    assert table.at("CLIC", datetime(2026, 11, 10, 23, 0, tzinfo=timezone.utc))["commission_rate"] == "0.0200"
    assert table.rows["CLIC"]["commission_rate"] == "0.0150"                        # rows: the newest version


def test_a_day_before_the_first_row_fails_naming_the_table_the_key_and_the_day(table):
    with pytest.raises(EvalError) as info:
        table.at("PICC", date(2025, 12, 31))
    assert info.value.message == ("table insurers (insurers.csv) has no row with insurer = 'PICC' in force on "
                                  "2025-12-31: its first applies from 2026-01-01 (valid_from)")
    with pytest.raises(EvalError, match=r"has no row with insurer = 'XXXX'$"):
        table.at("XXXX", date(2026, 1, 1))
    with pytest.raises(EvalError, match="must be a date, got the string '2026-01-01'.*parse_date"):
        table.at("PICC", "2026-01-01")
    with pytest.raises(EvalError, match="must be a date, got null"):
        table.at("PICC", None)


def test_a_plain_read_in_and_lookup_take_the_row_in_force_today(table):
    with fixed(datetime(2026, 11, 10, 12, tzinfo=timezone.utc)):
        assert table["CLIC"]["commission_rate"] == "0.0200"
        assert f_lookup(table, "CLIC", "commission_rate") == "0.0200"
        assert "PICC" in table
    with fixed(datetime(2026, 11, 20, 12, tzinfo=timezone.utc)):
        assert table["CLIC"]["commission_rate"] == "0.0150"
        assert f_lookup(table, "CLIC", "commission_rate") == "0.0150"
    with fixed(datetime(2025, 6, 1, 12, tzinfo=timezone.utc)):
        assert "PICC" not in table and table.get("PICC") is None       # not in force yet
        assert f_lookup(table, "PICC", "commission_rate", "none") == "none"
        with pytest.raises(EvalError, match="in force on 2025-06-01"):
            table["PICC"]


@pytest.mark.parametrize("text, line, message", [
    ("insurer,valid_from,r\nA,2026-01-01,1\nB,2026-01-01,2\nA,2026-01-01,3\n", 4,
     "key 'A' has two rows in force from 2026-01-01 (first on line 2); one row per insurer and valid_from"),
    ("insurer,valid_from,r\nA,2026-1-1,1\n", 2, "valid_from '2026-1-1' is not a date: write it YYYY-MM-DD"),
    ("insurer,valid_from,r\nA,,1\n", 2, "valid_from '' is not a date"),
    ("insurer,from,r\nA,2026-01-01,1\n", 1, "effective-date column 'valid_from' is not in the header"),
])
def test_bad_effective_files_name_file_and_line(tmp_path, text, line, message):
    p = tmp_path / "insurers.csv"
    p.write_text(text)
    with pytest.raises(TableError) as info:
        load_table(_decl(p))
    assert info.value.line == line and message in info.value.message, info.value.message
    assert str(info.value).startswith(f"{p}:{line}: ")


def test_a_table_without_effective_dates_keeps_one_row_per_key(tmp_path):
    p = tmp_path / "insurers.csv"
    p.write_text(RATES)
    with pytest.raises(TableError, match="key 'CLIC' appears twice"):
        load_table(_decl(p, effective=None))


def test_the_parser_reads_the_declaration_and_the_as_of_index():
    m = parse('table t = csv "t.csv" key k effective from valid_from\n'
              'table u = csv "u.csv" key k\n'
              'route r { receive from c as F\n let x = t[msg.k at today()].rate\n let y = t[msg.k].rate }\n', "m.route")
    t, u, route = m.decls
    assert t.effective.name == "valid_from" and u.effective is None
    x, y = route.body[1].value, route.body[2].value
    assert isinstance(x.base.at, ir.Call) and x.base.at.func == "today"
    assert y.base.at is None
    assert "at" not in ir._dump(y.base)                   # a plain index dumps as before (versions unchanged)


def test_the_compiled_as_of_read(table):
    e = parse('route r { receive from c as F\n let x = t[msg.k at msg.d].commission_rate }', "m.route")
    fn = compile_expr(e.decls[0].body[1].value)
    assert fn({"t": table, "msg": {"k": "CLIC", "d": date(2026, 11, 14)}}) == "0.0200"
    assert fn({"t": table, "msg": {"k": "CLIC", "d": date(2026, 11, 15)}}) == "0.0150"
    with pytest.raises(EvalError) as info:
        fn({"t": table, "msg": {"k": "CLIC", "d": date(1999, 12, 31)}})
    assert info.value.pos is not None and "in force on 1999-12-31" in info.value.message
    with pytest.raises(EvalError, match=r"reads a row of an effective-dated table; t is a record"):
        fn({"t": {"CLIC": {}}, "msg": {"k": "CLIC", "d": date(2026, 1, 1)}})


HEAD = 'channel mf = memory\nformat Req = json\n'


def _check(tmp_path, registry, route_body, table_line, csv=RATES):
    (tmp_path / "insurers.csv").write_text(csv)
    (tmp_path / "main.route").write_text(HEAD + table_line + "\nroute r {\n    receive from mf as Req\n"
                                         + route_body + "\n    reply Req { code = \"00\" }\n}\n")
    return compile_paths([tmp_path / "main.route"], registry)


EFFECTIVE = 'table insurers = csv "insurers.csv" key insurer effective from valid_from'
PLAIN = 'table insurers = csv "insurers.csv" key insurer'


def test_check_accepts_an_as_of_read_with_a_date(tmp_path, registry):
    r = _check(tmp_path, registry, '    let rate = insurers[msg.insurer at parse_date(msg.paid, "%Y%m%d")]'
               '.commission_rate\n    let now_rate = insurers[msg.insurer].commission_rate', EFFECTIVE)
    assert not [d for d in r.diagnostics if d.is_error], r.diagnostics
    assert r.program.tables["insurers"].effective == "valid_from"


@pytest.mark.parametrize("body, table_line, code, text", [
    ('    let r = insurers[msg.insurer at today()].commission_rate', PLAIN, "E148",
     "table `insurers` has no effective dates"),
    ('    let r = msg.items[0 at today()]', EFFECTIVE, "E148", "msg.items is not a table"),
    ('    let r = insurers[msg.insurer at "2026-01-01"].commission_rate', EFFECTIVE, "E149",
     'the as-of date ("2026-01-01") must be a date, got a string'),
    ('    let r = insurers[msg.insurer at 20260101].commission_rate', EFFECTIVE, "E149", "got an integer"),
    ('    let r = insurers[msg.insurer at today()].commision_rate', EFFECTIVE, "E062",
     "has no column `commision_rate`"),
    ('    let r = insurers[msg.insurer].commission_rate', EFFECTIVE.replace("valid_from", "valid_to"), "E150",
     "effective-date column `valid_to` is not in the file"),
    ('    let r = insurers[msg.insurer].commission_rate', EFFECTIVE.replace("from valid_from", "from insurer"),
     "E150", "is the key column"),
])
def test_check_refuses_wrong_uses(tmp_path, registry, body, table_line, code, text):
    r = _check(tmp_path, registry, body, table_line)
    hits = [d for d in r.diagnostics if d.code == code]
    assert hits and text in hits[0].message, r.diagnostics
    assert r.program is None


def test_check_names_the_file_line_of_a_duplicate_key_and_date(tmp_path, registry):
    r = _check(tmp_path, registry, '    let r = insurers[msg.insurer].commission_rate', EFFECTIVE,
               csv=RATES + "CLIC,2026-11-15,0.0100\n")
    (d,) = [d for d in r.diagnostics if d.code == "E150"]
    assert d.pos.file.endswith("insurers.csv") and d.pos.line == 5
    assert "key 'CLIC' has two rows in force from 2026-11-15 (first on line 3)" in d.message


def test_money_stays_decimal(table):
    e = parse('route r { receive from c as F\n let x = round(msg.p * round(t[msg.k at msg.d].commission_rate, 4), 2) }',
              "m.route")
    got = compile_expr(e.decls[0].body[1].value)({"t": table, "msg": {"k": "CLIC", "p": Decimal("3000.00"),
                                                                     "d": date(2026, 11, 10)}})
    assert got == Decimal("60.00") and isinstance(got, Decimal)
