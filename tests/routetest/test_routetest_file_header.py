"""`given ... sends ... file { header.company = "ACME" }`: a route test of a route whose `file watch` channel
reads a header record (`header = FORMAT`) gives that header's fields, which the route reads as
`file.header.FIELD`; misuse is told at check time (E141 on a channel without a header, E060 for a field its
format lacks, with did you mean)."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths
from engine.registry import default_registry
from engine.routetest.runner import run_paths

ROUTE = '''format Line = csv header false {
    ref     string
    amount  decimal(2)
}
format Head = csv header false {
    company     string
    value_date  date("%Y%m%d")
    count       integer
}
format Out = json
channel batch_in = file watch {
    dir          = "inbox"
    pattern      = "*.csv"
    record       = "csv"
    skip_header  = 1
    header       = Head
    header_count = "count"
}
channel plain_in = file watch {
    dir     = "plain"
    pattern = "*.csv"
}
channel audit = tcp connect { address = "127.0.0.1:1" }
route take_line {
    receive from batch_in as Line
    deal PAY { ref = msg.ref  amount = msg.amount  key = file.header.company + "/" + msg.ref }
    call logged = audit as Out {
        ref = msg.ref  company = file.header.company  value_date = format_date(file.header.value_date, "%Y-%m-%d")
    }
}
route take_plain {
    receive from plain_in as Line
    deal PLAIN { ref = msg.ref  amount = msg.amount  key = msg.ref }
    call logged = audit as Out { ref = msg.ref }
}
'''


def _write(tmp_path: Path, test: str) -> None:
    for d in ("inbox", "plain"):
        (tmp_path / d).mkdir(exist_ok=True)
    (tmp_path / "r.route").write_text(ROUTE)
    (tmp_path / "r_test.route").write_text('use "r.route"\n' + test)


def test_the_route_reads_the_header_fields_the_test_gives(tmp_path: Path) -> None:
    _write(tmp_path, '''test "header given" {
    given batch_in sends Line { ref = "R1"  amount = 1.00 } file { name = "PAY.csv"  line = 2
                                                                  header.company = "ACME"
                                                                  header.value_date = parse_date("20261130", "%Y%m%d") }
    given audit answers { ok = true }
    expect call audit { ref = "R1"  company = "ACME"  value_date = "2026-11-30" }
    expect deal PAY { status = "committed" }
}
''')
    res = run_paths([tmp_path], default_registry())
    assert not res.broken, [d.message for b in res.broken for d in b.diagnostics]
    [out] = res.outcomes
    assert out.passed, out.failures


def test_a_header_field_on_the_wrong_channel_or_misspelt_is_told(tmp_path: Path) -> None:
    _write(tmp_path, '''test "misspelt" {
    given batch_in sends Line { ref = "R1"  amount = 1.00 } file { header.compnay = "ACME" }
    given audit answers { ok = true }
    expect call audit { ref = "R1" }
}
test "no header there" {
    given plain_in sends Line { ref = "R2"  amount = 1.00 } file { header.company = "ACME" }
    given audit answers { ok = true }
    expect call audit { ref = "R2" }
}
''')
    res = compile_paths(sorted(tmp_path.glob("*.route")), default_registry())
    said = [f"{d.code} {d.message} ({d.help})" for d in res.diagnostics if d.severity == "error"]
    assert said == [
        "E060 the header's format `Head` has no field `compnay` (did you mean `company`?)",
        "E141 channel `plain_in` reads no header record: its routes read `file.header` as null (remove it, or give "
        "the channel `header = FORMAT` (the format of the file's first record) and `skip_header = 1`)"], said


def test_a_route_reading_a_header_field_is_checked_against_the_header_format(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "plain").mkdir()
    (tmp_path / "r.route").write_text(ROUTE.replace("company = file.header.company", "company = file.header.compny")
                                      .replace("ref = msg.ref }\n}", "ref = msg.ref  b = file.header.batch }\n}"))
    res = compile_paths(sorted(tmp_path.glob("*.route")), default_registry())
    said = [f"{d.pos.line}:{d.pos.col} {d.code} {d.message}" for d in res.diagnostics if d.severity == "error"]
    assert said == ["28:34 E060 the header's format `Head` has no field `compny`",
                    "34:53 E141 channel `plain_in` reads no header record: `file.header.batch` is always null"], said
