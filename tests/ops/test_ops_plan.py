"""The reload plan: a pure diff of two compiled Programs (real route files, real tables)."""
from __future__ import annotations

from pathlib import Path

from engine.ops.files import referenced_files, with_referenced_files
from engine.ops.plan import plan_reload
from opskit import compile_file

BASE = """
format Req = json
format Old = json
table codes = csv "codes.csv" key code
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
channel back = tcp connect {
    address = "127.0.0.1:9"
    framing = length4
}
route a {
    receive from front as Req when msg.kind == "a"
    reply Req { ref = msg.ref }
}
route b {
    receive from front as Req when msg.kind == "b"
    reply Req { ref = msg.ref  text = codes[msg.code].text }
}
"""


def _program(tmp_path: Path, text: str, name: str = "p.route"):
    path = tmp_path / name
    path.write_text(text)
    return with_referenced_files(compile_file(path))


def test_identical_programs_keep_everything(tmp_path: Path) -> None:
    (tmp_path / "codes.csv").write_text("code,text\n00,ok\n")
    old = _program(tmp_path, BASE)
    plan = plan_reload(old, _program(tmp_path, "\n\n" + BASE))       # positions moved: still kept
    assert plan.identical
    d = plan.as_dict()
    assert d["routes"]["kept"] == ["a", "b"] and d["channels"]["kept"] == ["front", "back"]
    assert plan.rebind == []


def test_added_changed_removed_with_reasons(tmp_path: Path) -> None:
    (tmp_path / "codes.csv").write_text("code,text\n00,ok\n")
    old = _program(tmp_path, BASE)
    new_text = (BASE.replace('tcp connect {\n    address = "127.0.0.1:9"', 'tcp connect {\n    address = "127.0.0.1:10"')
                .replace("format Old = json\n", "format New = json\n")
                .replace('reply Req { ref = msg.ref }', 'reply Req { ref = msg.ref  x = "1" }')
                + 'channel side = tcp listen {\n    address = "127.0.0.1:0"\n    framing = length2\n}\n'
                  'route c {\n    receive from side as Req\n    reply Req { ref = msg.ref }\n}\n')
    plan = plan_reload(old, _program(tmp_path, new_text))
    d = plan.as_dict()
    assert d["channels"] == {"added": ["side"], "changed": ["back"], "kept": ["front"], "removed": []}
    assert d["routes"] == {"added": ["c"], "changed": ["a"], "kept": ["b"], "removed": []}
    assert d["formats"] == {"added": ["New"], "changed": [], "kept": ["Req"], "removed": ["Old"]}
    assert "address" in d["why"]["channels"]["back"] and plan.rebind == ["back"]
    assert "routes changed: a" in plan.lines() and any("back: options changed (address)" in x for x in plan.lines())


def test_a_changed_table_file_is_a_change_and_a_new_version(tmp_path: Path) -> None:
    csv = tmp_path / "codes.csv"
    csv.write_text("code,text\n00,ok\n")
    old = _program(tmp_path, BASE)
    assert str(csv) in referenced_files(old) and str(csv) in old.sources
    csv.write_text("code,text\n00,fine\n")
    new = _program(tmp_path, BASE)
    assert new.version != old.version                 # same route text, different table: new version
    plan = plan_reload(old, new)
    assert plan.names("tables", "changed") == ["codes"] and plan.why["tables"]["codes"].endswith("changed")
    assert plan.names("routes", "changed") == []      # the route text did not change


def test_error_reply_only_keeps_the_socket(tmp_path: Path) -> None:
    (tmp_path / "codes.csv").write_text("code,text\n00,ok\n")
    old = _program(tmp_path, BASE)
    new = _program(tmp_path, BASE.replace("    framing = length2\n}",
                                          "    framing = length2\n    on error reply Req { code = error.code }\n}", 1))
    plan = plan_reload(old, new)
    assert plan.names("channels", "changed") == ["front"] and plan.rebind == []
    assert "socket and connections kept" in plan.why["channels"]["front"]


def test_overrides_apply_before_comparing(tmp_path: Path) -> None:
    (tmp_path / "codes.csv").write_text("code,text\n00,ok\n")
    old = _program(tmp_path, BASE)
    moved = _program(tmp_path, BASE.replace('"127.0.0.1:9"', '"127.0.0.1:11"'))
    same = {"back": {"address": "127.0.0.1:12"}}
    assert plan_reload(old, moved, same, same).rebind == []    # the deployment pins the address
    assert plan_reload(old, moved).rebind == ["back"]


def test_an_override_changed_in_the_deployment_file_changes_its_channel(tmp_path: Path) -> None:
    (tmp_path / "codes.csv").write_text("code,text\n00,ok\n")
    old = _program(tmp_path, BASE)
    same = _program(tmp_path, BASE)
    before, after = {"back": {"address": "127.0.0.1:12"}}, {"back": {"address": "127.0.0.1:13"}}
    plan = plan_reload(old, same, after, before)
    assert plan.rebind == ["back"] and plan.names("channels", "changed") == ["back"]
    assert "options changed (address)" in plan.why["channels"]["back"]
    assert plan_reload(old, same, {"back": {"timeout": "2s"}}, {}).rebind == ["back"]      # added
    assert plan_reload(old, same, {}, before).rebind == ["back"]                            # removed
    # a route-file edit to an option the old generation's override did not pin shows
    moved = _program(tmp_path, BASE.replace('"127.0.0.1:9"', '"127.0.0.1:11"'))
    assert plan_reload(old, moved, {}, {}).rebind == ["back"]


def test_first_load_adds_everything(tmp_path: Path) -> None:
    (tmp_path / "codes.csv").write_text("code,text\n00,ok\n")
    plan = plan_reload(None, _program(tmp_path, BASE))
    assert plan.names("routes", "added") == ["a", "b"] and plan.old_version is None


def test_the_files_a_file_channel_reads_and_writes_are_data_not_configuration(tmp_path: Path) -> None:
    """A batch file arriving in a file watch folder (or one a file write channel wrote) changes neither
    the configuration's version nor what `bsp run --watch` reloads on; a table file still does both."""
    from engine.ops.files import watched_paths
    (tmp_path / "codes.csv").write_text("code,text\n00,ok\n")
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    text = BASE + ('channel inbox = file watch {\n    dir = "in"\n}\n'
                   'channel outbox = file write {\n    dir = "out"\n}\n'
                   'route c {\n    receive from inbox as Req\n'
                   '    call w = outbox as Req reply Req { ref = msg.ref }\n}\n')
    before = _program(tmp_path, text)
    (tmp_path / "in" / "PAY-1.jsonl").write_text('{"ref": "A"}\n')
    (tmp_path / "out" / "20261126-000001.dat").write_text("{}")
    after = _program(tmp_path, text)
    assert after.version == before.version
    assert not any("PAY-1" in p or "20261126" in p for p in referenced_files(after))
    watched = {p.name for p in watched_paths(after)}
    assert "codes.csv" in watched and "PAY-1.jsonl" not in watched


def test_a_program_already_versioned_over_its_files_is_not_read_again(tmp_path) -> None:
    """bsp run versions the program before the engine starts; the engine's own call returns it as is."""
    route = tmp_path / "r.route"
    (tmp_path / "t.csv").write_text("k,v\na,1\n")
    route.write_text('table t = csv "t.csv" key k\nformat J = json\nchannel c = memory\n'
                     'route r {\n    receive from c as J\n    reply J { v = t["a"].v }\n}\n')
    once = with_referenced_files(compile_file(route))
    assert str(tmp_path / "t.csv") in once.sources
    assert with_referenced_files(once) is once
    (tmp_path / "t.csv").write_text("k,v\na,2\n")          # a fresh compile (a reload) reads it again
    assert with_referenced_files(compile_file(route)).version != once.version


def test_a_channel_error_reply_that_names_a_route_code_field_changes_the_route(tmp_path: Path) -> None:
    """A route without an error reply of its own takes its response-code field from its channel's (docs/ledger.md):
    a channel `on error reply` that fills `code` with error.code changes what route a's committed deals record."""
    (tmp_path / "codes.csv").write_text("code,text\n00,ok\n")
    base = BASE.replace('reply Req { ref = msg.ref }', 'reply Req { ref = msg.ref  code = "00" }')
    old = _program(tmp_path, base)
    new = _program(tmp_path, base.replace("    framing = length2\n}",
                                          "    framing = length2\n    on error reply Req { code = error.code }\n}", 1))
    assert [r.response_code for r in old.routes] == [None, None]
    assert [r.response_code for r in new.routes] == ["code", None]
    plan = plan_reload(old, new)
    assert plan.names("routes", "changed") == ["a"] and plan.names("routes", "kept") == ["b"]
    assert plan.why["routes"]["a"] == "response-code field changed (none -> code: the on error reply of channel front)"


TLS = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    cert    = "tls/server.pem"
    key     = "tls/server.key"
}
channel partner = http call {
    url              = "http://127.0.0.1:9/pay"
    auth_bearer_file = "tls/partner.token"
}
route a {
    receive from front as Req
    call p = partner as Req reply Req { ref = msg.ref }
    reply Req { ref = msg.ref }
}
"""


def test_a_rewritten_secret_file_changes_its_channel_without_showing_it(tmp_path: Path) -> None:
    """Secret files are compared by the digests the reload read (engine.ops.files.secret_digests): a TLS key
    alone renews the listening channel's context (socket kept); a token file rebuilds its channel."""
    from engine.ops.files import secret_digests
    (tmp_path / "tls").mkdir()
    for name, text in (("server.pem", "CERT\n"), ("server.key", "KEY-ONE\n"), ("partner.token", "TOK-ONE\n")):
        (tmp_path / "tls" / name).write_text(text)
    prog = _program(tmp_path, TLS)
    before = secret_digests(prog)
    assert set(before["channels"]) == {"front", "partner"} and "KEY-ONE" not in str(before)
    assert plan_reload(prog, prog, secrets=(before, secret_digests(prog))).identical
    (tmp_path / "tls" / "server.key").write_text("KEY-TWO\n")
    (tmp_path / "tls" / "partner.token").write_text("TOK-TWO\n")
    plan = plan_reload(prog, prog, secrets=(before, secret_digests(prog)))
    assert sorted(plan.names("channels", "changed")) == ["front", "partner"]
    assert plan.renew_tls == ["front"] and plan.rebind == ["partner"]
    assert plan.why["channels"]["front"].startswith("key file changed (key): new connections get them")
    assert plan.why["channels"]["partner"].startswith("secret file changed (auth_bearer_file)")
    assert plan.names("routes", "changed") == []          # a route's declaration and formats are the same
