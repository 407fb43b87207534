"""Every way a plugin goes wrong gives one clear error naming the plugin (distribution and entry point),
the kind and the fix, and never takes the engine down nor hides bsp's own kinds (docs/plugins.md).

tests/plugin_faulty (distribution bsp-wreck) has one entry point per fault; tests/plugin_kv (bsp-kvtools)
is a plugin that works, installed beside it."""
from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pytest
import trio
from typer.testing import CliRunner

from dsl.load import compile_paths
from engine.cli import app as bsp_app
from engine.commands.docs import render_components
from engine.registry import default_registry
from engine.runtime.binder import BindError
from engine.runtime.switchboard import Switchboard
from kit import Client, compile_text, deals, running
from pluginkit import on_path

BOTH = ("plugin_kv", "plugin_faulty")
WRECK = "plugin bsp-wreck 0.1.0 (entry point {} = {})"


@pytest.fixture
def both(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    return on_path(BOTH, tmp_path_factory, monkeypatch)


def _problems() -> dict[str, str]:
    reg = default_registry()
    return {p.plugin.split("entry point ")[1].split(" =")[0]: str(p) for p in reg.problems}


def test_each_broken_entry_point_is_left_out_alone_with_its_reason_and_fix(both: Path) -> None:
    reg = default_registry()
    assert reg.get("format", "json").doc != "A json of our own."          # a built-in is never replaced
    assert reg.get("format", "json") is default_registry(plugins=False).get("format", "json")
    for cat, name in [("format", "kv"), ("step", "checksum"), ("channel", "udp.listen"),   # bsp-kvtools
                      ("step", "explode"), ("channel", "flaky.listen")]:                # bsp-wreck's good one
        assert reg.get(cat, name) is not None, (cat, name)
    assert reg.origin("step", "checksum") == "plugin bsp-kvtools 0.1.0 (entry point kvtools = bsp_kvtools:register)"
    assert reg.origin("format", "json") is None
    problems = _problems()
    assert set(problems) == {"boom", "missing", "not_callable", "json", "kv", "bad_type", "bad_default"}
    expected = {
        "boom": ["importing bsp_wreck.boom raised RuntimeError: the wreck's configuration file is missing",
                 "bsp_wreck/boom.py:2)", "fix: fix the module (python -c 'import bsp_wreck.boom'"],
        "missing": ["bsp_wreck:no_such_register names nothing in bsp_wreck",
                    "fix: make the entry point name the module's register function"],
        "not_callable": ["is not a function register(registry) but an int"],
        "json": ["format kind 'json' is already built into bsp (replace=True does not replace it)",
                 "fix: give the kind a name of its own (e.g. a prefix: 'my_json'), and use it in your route files"],
        "kv": ["format kind 'kv' is already registered by plugin bsp-kvtools 0.1.0 (entry point kvtools = "
               "bsp_kvtools:register)", "or uninstall one of the two plugins"],
        "bad_type": ["its register() raised ValueError: option 'count': unknown type 'integer'",
                     "bsp_wreck/badspec.py:9)"],
        "bad_default": ["step kind 'fee': option 'rate': default 0.25 is a float; a decimal option's default is "
                        "a Decimal (Decimal(\"1.50\")): money is never a float",
                        "fix: give option 'rate' a default of its type (decimal)"],
    }
    for ep, parts in expected.items():
        assert problems[ep].startswith(f"plugin bsp-wreck 0.1.0 (entry point {ep} = "), problems[ep]
        for part in parts:
            assert part in problems[ep], (ep, problems[ep])
    assert "two plugins" not in problems["json"], problems["json"]     # the other is bsp's own (until 2026-11-27)
    assert reg.get("step", "fee") is None and reg.get("step", "counter") is None


def test_a_problem_is_logged_once_per_process(both: Path, caplog: pytest.LogCaptureFixture) -> None:
    from engine import registry as registry_module
    registry_module._TOLD.clear()
    with caplog.at_level(logging.WARNING, logger="bsp.plugins"):
        default_registry()
        default_registry()
    told = [r.getMessage() for r in caplog.records if r.name == "bsp.plugins"]
    assert len(told) == 7 and len(set(told)) == 7, told


def test_bsp_check_and_docs_say_which_plugin_was_left_out(both: Path, tmp_path: Path) -> None:
    route = tmp_path / "r.route"
    route.write_text('format J = json\nchannel front = tcp listen {\n    address = "127.0.0.1:0"\n'
                     '    framing = length2\n}\nroute r {\n    receive from front as J\n'
                     '    counter c { count = 1 }\n    reply J { ok = "y" }\n}\n')
    res = CliRunner().invoke(bsp_app, ["check", str(route)])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert "error[E042]: unknown statement or step kind `counter`" in res.output
    assert ("not loaded, so their kinds are missing: " + WRECK.format("bad_default", "bsp_wreck.badspec:"
                                                                       "register_bad_default")) in res.output
    text = render_components(default_registry())
    assert "## Plugins not loaded" in text
    assert "- " + WRECK.format("boom", "bsp_wreck.boom:register") + " not loaded: importing" in text
    assert "From plugin bsp-kvtools 0.1.0 (entry point kvtools = bsp_kvtools:register)." in text


ROUTE = """
format J = json
format C = crashy
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
channel side = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route bad_step {
    receive from front as J when msg.op == "explode"
    explode e { why = msg.op }
    reply J { ok = "never" }
}
route good {
    receive from front as J
    reply J { ok = "yes" }
}
route crashy {
    receive from side as C
    reply J { ok = "never" }
}
"""


def _dead_letters(ledger: Path) -> list[dict]:
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        cur = con.execute("SELECT route, channel, error_kind, reason FROM dead_letters ORDER BY \"at\"")
        return [dict(zip([d[0] for d in cur.description], row)) for row in cur.fetchall()]
    finally:
        con.close()


async def test_a_step_or_a_codec_that_raises_fails_its_deal_and_the_engine_goes_on(both: Path, tmp_path: Path) -> None:
    reg = default_registry()
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, ROUTE, registry=reg), ledger, registry=reg) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(b'{"op": "explode"}', b'{"op": "fine"}')
        with trio.fail_after(60):
            (r,) = await c.recv_json()          # the failed one has no `on error reply`: no answer
        assert r == {"ok": "yes"}
        s = await Client.open(sb.channel("side").port)
        await s.send(b"anything")
        with trio.fail_after(60):
            while sb.stats.total < 3:          # the crashy request is answered by nothing: wait for its deal
                await trio.sleep(0.01)
        await c.aclose()
        await s.aclose()
    by_route = {d["route"]: d for d in deals(ledger)}
    assert by_route["bad_step"]["status"] == "failed"
    # the reason names the exception, the step's kind and plugin (whom to ask) and its place in the route
    assert by_route["bad_step"]["reason"] == (
        "internal: RuntimeError: the ledger of the wreck is on fire (step kind explode, from plugin bsp-wreck "
        f"0.1.0 (entry point runtime = bsp_wreck.runtime:register)) (at {tmp_path / 'test.route'}:14:5)")
    assert by_route["(malformed)"]["status"] == "rejected"
    assert "KeyError: 'missing'" in by_route["(malformed)"]["reason"]
    letters = {d["error_kind"]: d for d in _dead_letters(ledger)}
    assert letters["internal"]["route"] == "bad_step" and "on fire" in letters["internal"]["reason"]
    assert letters["malformed"]["channel"] == "side" and "KeyError" in letters["malformed"]["reason"]


def test_bsp_check_names_the_plugin_whose_check_hook_raises(both: Path, tmp_path: Path) -> None:
    """A kind's check hook that raises (a bug in the plugin, not in the route) is reported at the declaration
    with the kind, its plugin, the exception and the hook's line; until 2026-11-26 a channel's said only
    "'address'" (a KeyError's text) and a format's did not name the plugin."""
    (tmp_path / "r.route").write_text('format F = fragile\nchannel c = touchy\nroute r {\n    receive from c as F\n'
                                      '    reply F { a = "1" }\n}\n')
    res = compile_paths([tmp_path / "r.route"], default_registry())
    got = {d.code: (d.pos.line, d.message) for d in res.errors}
    assert set(got) == {"E050", "E055"}, res.errors
    site = Path(__import__("bsp_wreck").__file__).parent
    plugin = WRECK.format("runtime", "bsp_wreck.runtime:register")
    line, text = got["E050"]
    assert line == 1 and text.startswith("format `F`: the fragile checker raised KeyError: 'schema' (at "
                                         f"{site / 'runtime.py'}:"), text
    assert text.endswith(f", format kind fragile, from {plugin}): a bug in the kind, not in the route; ask the "
                         "authors of plugin bsp-wreck 0.1.0 to fix it (a check hook returns a list of SpecError), "
                         "or run `bsp run` to see whether the kind builds"), text
    line, text = got["E055"]
    assert line == 2 and text.startswith("channel `c`: the touchy checker raised KeyError: 'address' (at "), text
    assert f"channel kind touchy, from {plugin}): a bug in the kind" in text, text


async def test_a_codec_whose_encode_raises_names_its_format_kind_and_plugin(both: Path, tmp_path: Path) -> None:
    """A plugin format's encode that raises (not a FormatError) fails the deal naming the format, its kind and
    plugin; until 2026-11-26 the reason was only "internal: KeyError: 'missing' (at ...)"."""
    text = ('format J = json\nformat K = clumsy\nchannel front = tcp listen {\n    address = "127.0.0.1:0"\n'
            '    framing = length2\n}\nchannel side = liar connect { mode = "echo" }\n'
            'route r {\n    receive from front as J when msg.op == "reply"\n    reply K { a = "1" }\n}\n'
            'route c {\n    receive from front as J\n    call post = side as K { a = "1" }\n    reply J { a = "1" }\n}\n')
    reg = default_registry()
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, text, registry=reg), ledger, registry=reg) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(b'{"op": "reply"}', b'{"op": "call"}')
        with trio.fail_after(60):
            while sb.stats.total < 2:
                await trio.sleep(0.01)
        await c.aclose()
    plugin = WRECK.format("runtime", "bsp_wreck.runtime:register")
    where = tmp_path / "test.route"
    assert sorted(d["reason"] for d in deals(ledger)) == [
        f"internal: call post: encode of K raised KeyError: 'missing' (format kind clumsy from {plugin}) "
        f"(at {where}:14:5)",
        f"internal: reply K: encode raised KeyError: 'missing' (format kind clumsy from {plugin}) (at {where}:10:5)"]


LIAR_ROUTE = """
format J = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply J { code = error.code  text = error.text }
}
channel raise = liar connect { mode = "raise" }
channel short = liar connect { mode = "short" }
channel text = liar connect { mode = "text" }
channel good = liar connect { mode = "echo" }
route r_raise {
    receive from front as J when msg.via == "raise"
    call post = raise as J { ref = msg.ref }
    reply J { code = "00" }
}
route r_short {
    receive from front as J when msg.via == "short"
    call post = short as J { ref = msg.ref }
    reply J { code = "00" }
}
route r_text {
    receive from front as J when msg.via == "text"
    call post = text as J { ref = msg.ref }
    reply J { code = "00" }
}
route r_good {
    receive from front as J
    call post = good as J { ref = msg.ref }
    reply J { code = "00" }
}
"""


async def test_a_call_channel_that_breaks_its_contract_leaves_its_deal_in_doubt_naming_the_plugin(
        both: Path, tmp_path: Path) -> None:
    """docs/plugins.md#when-a-plugin-goes-wrong: a connect channel's request_many that raises, returns fewer
    results than requests, or a str for a reply: the request may have left, so the deal fails in doubt
    (96, "outcome unknown"), naming the call's place, the channel, its kind and plugin; it is flagged and
    dead-lettered, and the engine goes on.  Until 2026-11-26 a short list committed the deal as answered."""
    reg = default_registry()
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, LIAR_ROUTE, registry=reg), ledger, registry=reg) as sb:
        c = await Client.open(sb.channel("front").port)
        answers = []
        for via in ("raise", "short", "text", "none"):
            await c.send(b'{"ref": "R-%s", "via": "%s"}' % (via.encode(), via.encode()))
            with trio.fail_after(60):
                answers += await c.recv_json()
        await c.aclose()
    assert answers == [{"code": "96", "text": "outcome unknown"}] * 3 + [{"code": "00"}]
    rows = deals(ledger)
    assert sorted(d["status"] for d in rows) == ["committed", "failed", "failed", "failed"]
    label = "channel {} (liar connect, from " + WRECK.format("runtime", "bsp_wreck.runtime:register") + ")"
    whys = {"raise": "raised RuntimeError: liar lost its socket table",
            "short": "request_many returned 0 result(s) for 1 request(s)",
            "text": "request_many returned a str for request 1 of 1, not bytes or a ChannelError"}
    failed = sorted((d for d in rows if d["status"] == "failed"), key=lambda d: d["reason"])
    for d in failed:
        via = next(v for v in whys if f"channel {v} " in d["reason"])
        line = {"raise": 14, "short": 19, "text": 24}[via]
        assert d["reason"].startswith(
            f"in_doubt: call post: {label.format(via)} {whys[via]}; the request may have left: its outcome is "
            f"unknown; this is a bug in the channel, not the counterpart's answer (at {tmp_path / 'test.route'}:"
            f"{line}:"), d["reason"]
        assert "flagged for an operator" in d["reason"], d["reason"]
    letters = _dead_letters(ledger)
    assert sorted(x["error_kind"] for x in letters) == ["in_doubt"] * 3


@pytest.mark.parametrize("decl, expected", [
    ('channel odd = fussy\n',
     "test.route:1:1: channel odd (channel kind fussy from plugin bsp-wreck 0.1.0 (entry point runtime = "
     "bsp_wreck.runtime:register)): cannot be built: KeyError: 'fussy wants an option nobody declared'"),
    ('route p {\n    receive from front as J\n    picky p { mode = "x" }\n    reply J { ok = "y" }\n}\n',
     "picky (step kind picky from plugin bsp-wreck 0.1.0 (entry point runtime = bsp_wreck.runtime:register)): "
     "RuntimeError: picky needs a mode it cannot find"),
])
async def test_a_constructor_that_raises_names_the_place_and_the_plugin(both: Path, tmp_path: Path, decl: str,
                                                                         expected: str) -> None:
    reg = default_registry()
    text = decl + 'format J = json\nchannel front = tcp listen {\n    address = "127.0.0.1:0"\n}\n'
    res = compile_paths([_write(tmp_path, text)], reg)
    assert res.program is not None, res.diagnostics
    with pytest.raises(BindError) as info:
        Switchboard(res.program, reg, ledger=None)
    assert expected in str(info.value)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "test.route"
    path.write_text(text)
    return path


FLAKY = """
format J = json
channel flaky = flaky listen
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route f {
    receive from flaky as J
    reply J { ok = "never" }
}
route r {
    receive from front as J
    reply J { ok = "yes" }
}
"""


async def test_a_channel_whose_serve_raises_after_start_stops_alone(both: Path, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    reg = default_registry()
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, FLAKY, registry=reg), ledger, registry=reg) as sb:
        udp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with udp:
            await udp.sendto(b"{}", ("127.0.0.1", sb.channel("flaky").port))
        with trio.fail_after(60):
            while not any("flaky lost its socket" in r.getMessage() for r in caplog.records):
                await trio.sleep(0.01)
        c = await Client.open(sb.channel("front").port)        # the other channel still serves
        await c.send(b'{"x": 1}')
        with trio.fail_after(60):
            assert await c.recv_json() == [{"ok": "yes"}]
        await c.aclose()
    (told,) = [r.getMessage() for r in caplog.records if "flaky lost its socket" in r.getMessage()]
    assert told.startswith("channel flaky (flaky listen, from plugin bsp-wreck 0.1.0 (entry point runtime = "
                           "bsp_wreck.runtime:register)) stopped: RuntimeError: flaky lost its socket; "), told


async def test_the_live_engine_reports_a_stopped_channel_in_status_and_readiness(
        both: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Under ``bsp run`` a channel that failed after it started is not only a log line: ``bsp status``
    shows it STOPPED with the reason and ``/ready`` answers not ready, naming it."""
    from rich.console import Console

    from engine.commands.top import render
    from engine.ledger import open_ledger
    from engine.metrics import Metrics
    from engine.ops.backend import EngineBackend
    from engine.ops.live import LiveEngine
    from engine.ops.observe import Observer

    reg = default_registry()
    route = tmp_path / "flaky.route"
    route.write_text(FLAKY)
    program = compile_text(tmp_path, FLAKY, registry=reg)
    async with open_ledger(tmp_path / "l.duckdb") as ledger:
        obs = Observer(Metrics())
        eng = LiveEngine(reg, ledger, load=lambda: ([route], {}), observer=obs, grace=5.0)
        async with trio.open_nursery() as n:
            await n.start(eng.run, program)
            backend = EngineBackend(eng, obs)
            assert (await backend.ready()).ready
            udp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            with udp:
                await udp.sendto(b"{}", ("127.0.0.1", eng.current.channels["flaky"].port))
            with trio.fail_after(60):
                while not any("flaky lost its socket" in r.getMessage() for r in caplog.records):
                    await trio.sleep(0.01)
            status = await backend.status()
            ready = await backend.ready()
            eng.drain()
    assert "flaky lost its socket" in status["channels"]["flaky"]["stopped"]
    assert "stopped" not in status["channels"]["front"]
    assert not ready.ready and ready.reason.startswith("channel flaky stopped: RuntimeError: flaky lost its socket")
    out = Console(width=200, record=True)
    out.print(render(status, None, 0, {}))
    assert "STOPPED" in out.export_text()


def test_bsp_run_names_a_channel_that_raises_before_it_started(both: Path, tmp_path: Path) -> None:
    route = _write(tmp_path, "format J = json\nchannel s = stubborn\n"
                             "route r {\n    receive from s as J\n    reply J { ok = \"y\" }\n}\n")
    res = CliRunner().invoke(bsp_app, ["run", str(route), "--ledger", str(tmp_path / "l.duckdb")])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert ("channel s (stubborn, from plugin bsp-wreck 0.1.0 (entry point runtime = bsp_wreck.runtime:register)): "
            "cannot start at nowhere: RuntimeError: stubborn will not start") in res.output


STRANGE_ROUTE = """
format S = strange
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply S { code = error.code  text = error.text }
}
route r {
    receive from front as S
    deal PAY { key = msg.ref  ref = msg.ref  amount = msg.amount  currency = "EUR" }
    reply S { code = "00"  text = msg.ref }
}
"""


async def test_a_codec_whose_decode_returns_a_value_with_no_json_form_rejects_that_request(
        both: Path, tmp_path: Path) -> None:
    """A plugin format's decode that returns what a message cannot hold (an object with no JSON form, a float
    where money is Decimal) is a bug in the codec: that request is malformed (code 30, answered, recorded,
    dead-lettered) with a reason naming the field, the type, the format kind and its plugin; the engine goes
    on.  Until 2026-11-27 the object reached the ledger, which refused the deal's row: no reply was sent and
    the reason said only "field request/response: Type is not JSON serializable: object"; the float reached
    the deal step ("amount must be a number, got a value")."""
    reg = default_registry()
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, STRANGE_ROUTE, registry=reg), ledger, registry=reg) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(b"object", b"float", b"P3")
        with trio.fail_after(60):
            replies = await c.recv(3)
        await c.aclose()
    assert replies == [b"30;malformed request", b"30;malformed request", b"00;P3"]
    plugin = WRECK.format("runtime", "bsp_wreck.runtime:register")
    reasons = sorted(d["reason"] for d in deals(ledger) if d["status"] == "rejected")
    assert len(reasons) == 2, deals(ledger)
    assert (f"not a valid S: decode returned a float at amount: money is never a float; return a Decimal "
            f"(format kind strange from {plugin})") in reasons[0], reasons
    assert (f"not a valid S: decode returned a value of type object at legs[1].handle, which a message cannot hold (it "
            f"has no JSON form); return dict, list, str, int, Decimal, bool, None, date or datetime "
            f"(format kind strange from {plugin})") in reasons[1], reasons
    letters = _dead_letters(ledger)
    assert [d["error_kind"] for d in letters] == ["malformed", "malformed"], letters


LEAK_ROUTE = """
format J = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
    on error reply J { code = error.code }
}
route r {
    receive from front as J
    deal PAY { key = msg.ref  ref = msg.ref  amount = msg.amount  currency = "EUR" }
    leak l { card = msg.card }
    reply J { code = "00" }
}
"""


async def test_a_plugin_step_exception_quoting_a_card_number_is_masked_in_the_ledger(
        both: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A plugin step's exception whose text quotes a card number the format did not classify (a field the
    route's format knows nothing about) is masked in the deal's reason and the dead letter, as the log's
    scrubber masks it (docs/security.md: failure texts of plugin code are masked like the engine's own).
    Until 2026-11-27 the log showed 411111******1111 while `bsp deals` and `bsp dead list` showed the whole
    number."""
    reg = default_registry()
    ledger = tmp_path / "l.duckdb"
    async with running(compile_text(tmp_path, LEAK_ROUTE, registry=reg), ledger, registry=reg) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(b'{"ref": "L1", "amount": 5, "card": "4111111111111111"}')
        with trio.fail_after(60):
            (r,) = await c.recv_json()
        await c.aclose()
    assert r == {"code": "96"}
    (deal,) = deals(ledger)
    assert deal["reason"].startswith("internal: RuntimeError: the core refused card 411111******1111 (step kind "
                                     "leak, from plugin bsp-wreck"), deal["reason"]
    (letter,) = _dead_letters(ledger)
    assert "4111111111111111" not in letter["reason"] and "411111******1111" in letter["reason"], letter
