"""`given CHANNEL sends file "NAME.csv" [twice]`: a route test sends a whole file through its `file watch`
channel (engine/routetest/sendfile.py): the channel's control totals, a file dropped again (`twice`,
run_once) and its end-of-file message (`end_message = true`) are tested in the language; misuse is told by
`bsp check` (E102 on another channel kind, E047 for a file that is not there)."""
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
    company  string
    count    integer
    total    decimal(2)
}
format Out = json
channel batch_in = file watch {
    dir           = "inbox"
    pattern       = "*.csv"
    record        = "csv"
    skip_header   = 1
    header        = Head
    header_count  = "count"
    header_total  = "total"
    total_field   = "amount"
    total_format  = Line
    end_message   = true
}
channel host = tcp connect { address = "127.0.0.1:1" }
route take_line {
    receive from batch_in as Line
    deal PAY { ref = msg.ref  amount = msg.amount  key = file.header.company + "/" + msg.ref }
    validate {
        msg.amount > 0 else reject "13" "invalid amount"
    }
    call sent = host as Out { ref = msg.ref  line = file.line }
}
route batch_end {
    receive from batch_in when file.end
    call told = host as Out {
        file = file.name  status = file.status  committed = file.committed  rejected = file.rejected
        reason = file.reason
    }
}
'''


def _write(tmp_path: Path, test: str) -> None:
    (tmp_path / "inbox").mkdir(exist_ok=True)
    (tmp_path / "r.route").write_text(ROUTE)
    (tmp_path / "GOOD.csv").write_text("ACME,3,4.75\nA1,1.50\nA2,0.00\nA3,3.25\n")
    (tmp_path / "BAD.csv").write_text("ACME,2,4.70\nB1,1.50\nB2,3.25\n")
    (tmp_path / "r_test.route").write_text('use "r.route"\n' + test)


def test_a_whole_file_runs_its_records_and_its_end_message(tmp_path: Path) -> None:
    _write(tmp_path, '''test "a good file" {
    given batch_in sends file "GOOD.csv"
    given host answers { ok = true }
    given host answers { ok = true }
    given host answers { ok = true }
    expect call host 3 times
    expect call host { ref = "A1"  line = 2 }
    expect call host { ref = "A3"  line = 4 }
    expect call host { file = "GOOD.csv"  status = "done"  committed = 2  rejected = 1 }
    expect deal PAY { status = "rejected"  ref = "A2"  response_code = "13" }
    expect deal batch_end { status = "committed" }
}
test "a file refused for its control total, then one dropped twice" {
    given batch_in sends file "BAD.csv" twice
    given host answers { ok = true }
    given host answers { ok = true }
    expect call host twice
    expect call host { file = "BAD.csv"  status = "refused"  reason ~ "the control totals do not match" }
    expect call host { file = "BAD.csv"  status = "refused"  reason ~ "the same bytes as file BAD.csv" }
}
''')
    res = run_paths([tmp_path], default_registry())
    assert not res.broken, [d.message for b in res.broken for d in b.diagnostics]
    assert [(o.name, o.passed, o.failures) for o in res.outcomes] == [
        ("a good file", True, []), ("a file refused for its control total, then one dropped twice", True, [])]


def test_a_wrong_expectation_of_a_file_fails_with_what_happened(tmp_path: Path) -> None:
    _write(tmp_path, '''test "a good file" {
    given batch_in sends file "GOOD.csv"
    given host answers { ok = true }
    given host answers { ok = true }
    given host answers { ok = true }
    expect call host { file = "GOOD.csv"  status = "done"  committed = 3 }
}
''')
    [out] = run_paths([tmp_path], default_registry()).outcomes
    assert not out.passed and any("committed" in f for f in out.failures), out.failures


def test_a_file_sent_to_another_channel_or_not_there_is_told(tmp_path: Path) -> None:
    _write(tmp_path, '''test "not a file channel" {
    given host sends file "GOOD.csv"
    expect no call host
}
test "no such file" {
    given batch_in sends file "MISSING.csv"
    expect no call host
}
''')
    res = compile_paths(sorted(tmp_path.glob("*.route")), default_registry())
    said = [(d.code, d.message) for d in res.diagnostics if d.severity == "error"]
    assert said[0][0] == "E102" and "does not take files" in said[0][1]
    assert said[1][0] == "E047" and said[1][1].startswith('file not found: "MISSING.csv"')
