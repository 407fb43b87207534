"""`bsp check` and a file watch channel's end-of-file message (dsl/fileend.py): the route that takes it
(`when file.end`) reads the summary's fields, is not told W012 (one message per file, made once by the
channel), and the checks E146 / E147 / W029 (their places: the catalogue, tests/dsl/test_dsl_catalogue.py)."""
from __future__ import annotations

from dsl.load import compile_source

HEAD = ('format Req = json\nformat Line = csv header false {\n    ref  string\n}\n'
        'channel inbox = file watch {\n    dir = "."\n    end_message = true\n}\n')
RECORDS = 'route pay {\n    receive from inbox as Line\n    deal PAY { ref = msg.ref  amount = 1  key = msg.ref }\n}\n'
END = ('route ended {\n    receive from inbox when file.end\n'
       '    audit e { text = file.name + " " + file.status + " " + file.reason + " " + file.archived }\n}\n')


def _compile(tmp_path, registry, src):
    return compile_source(src, registry, tmp_path / "main.route")


def test_an_end_route_reads_the_summary_and_is_not_told_to_key_its_deal(tmp_path, registry):
    r = _compile(tmp_path, registry, HEAD + RECORDS + END)
    assert not r.errors, r.errors
    assert [d.code for d in r.diagnostics if d.code in ("W012", "W029", "E146", "E147")] == []


def test_a_misspelt_summary_field_is_told_with_the_end_fields(tmp_path, registry):
    r = _compile(tmp_path, registry, HEAD + RECORDS + END.replace("file.status", "file.statsu"))
    [d] = r.errors
    assert (d.code, d.message) == ("E060", "`file` has no field `statsu`")
    assert d.help.startswith("did you mean `status`?") and "file.committed" in d.help


def test_an_end_message_nobody_takes_and_a_route_that_never_gets_one(tmp_path, registry):
    r = _compile(tmp_path, registry, HEAD + RECORDS)
    assert [d.code for d in r.errors] == ["E146"]
    r = _compile(tmp_path, registry, HEAD.replace("    end_message = true\n", "") + RECORDS + END)
    assert not r.errors and [d.code for d in r.warnings if d.code != "W001"] == ["W029"]


def test_a_route_test_gives_the_end_message_with_typed_fields(tmp_path, registry):
    test = ('test "t" {\n    given inbox sends Req { } file { end = "yes"  status = "done"  records = 3 }\n'
            '    expect no call inbox\n}\n')
    r = _compile(tmp_path, registry, HEAD + RECORDS + END + test)
    assert [(d.code, d.message) for d in r.errors if d.code == "E102"] == [
        ("E102", '`file.end` is a bool: it cannot take a string ("yes")')]
