"""docs/plugins.md's example plugin (tests/plugin_kv, distribution bsp-kvtools) works as the page says:
installed with pip, its format, step and channel kinds are listed, checked, tested and served.  The page
quotes the package's files whole, so its code is this code."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import trio
from typer.testing import CliRunner

from dsl.load import compile_paths
from engine.cli import app as bsp_app
from engine.registry import default_registry
from engine.routetest.runner import run_paths
from kit import REPO, deals, running
from pluginkit import on_path

PKG = REPO / "tests" / "plugin_kv"
ROUTES = PKG / "routes"
PAGE = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")


@pytest.fixture
def kvtools(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    return on_path(("plugin_kv",), tmp_path_factory, monkeypatch)


@pytest.mark.parametrize("path", sorted(p for p in PKG.rglob("*") if p.is_file() and p.suffix in
                                        (".py", ".toml", ".route") and "__pycache__" not in p.parts),
                         ids=lambda p: str(p.relative_to(PKG)))
def test_the_page_quotes_each_file_of_the_example_whole(path: Path) -> None:
    assert "\n" + path.read_text(encoding="utf-8") in PAGE, f"docs/plugins.md must quote {path.relative_to(REPO)}"


def test_the_kinds_are_listed_with_their_plugin(kvtools: Path) -> None:
    res = CliRunner().invoke(bsp_app, ["docs", "components"])
    assert res.exit_code == 0, res.output
    for kind in ("### `kv`", "### `checksum`", "### `hold`", "### `udp.listen`"):
        part = res.output.split(kind)[1].split("### ")[0]
        assert "From plugin bsp-kvtools 0.1.0 (entry point kvtools = bsp_kvtools:register)." in part


def test_bsp_check_and_bsp_test_pass(kvtools: Path) -> None:
    res = CliRunner().invoke(bsp_app, ["check", str(ROUTES)])
    assert res.exit_code == 0, res.output
    result = run_paths([ROUTES], default_registry())
    assert result.summary() == "3 passed, 0 failed, 3 test(s) in 1 configuration(s)", result


def test_bsp_check_tells_a_bad_separator_at_the_format(kvtools: Path, tmp_path: Path) -> None:
    (tmp_path / "r.route").write_text('format Pay = kv separator "="\nchannel c = memory\n'
                                      'route r {\n    receive from c as Pay\n    reply Pay { a = "1" }\n}\n')
    res = compile_paths([tmp_path / "r.route"], default_registry())
    assert [(d.code, d.pos.line, d.pos.col, d.message, d.help) for d in res.errors] == [
        ("E050", 1, 17, "format `Pay`: separator '=' must be one or more characters, not '='",
         'e.g. separator ";" or separator "|"')]


async def test_the_route_serves_datagrams(kvtools: Path, tmp_path: Path) -> None:
    reg = default_registry()
    res = compile_paths([ROUTES / "pay.route"], reg)
    assert res.program is not None, res.diagnostics
    ledger = tmp_path / "l.duckdb"
    async with running(res.program, ledger, registry=reg, overrides={"teller": {"address": "127.0.0.1:0"}}) as sb:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            await sock.connect(("127.0.0.1", sb.channel("teller").port))
            answers = []
            for datagram in (b"ref=P1;account=7992739871;amount=10.25;", b"ref=P2;account=12X;amount=1;",
                             b"ref=P3;amount=ten;"):
                await sock.send(datagram)
                with trio.fail_after(60):
                    answers.append(await sock.recv(1000))
    assert answers == [b"ref=P1;code=00;account=79927398713;amount=10.25;hold=H-P1;",
                       b"code=14;text=invalid account number;",
                       b"code=30;text=malformed request;"]
    by_status = {}
    for d in deals(ledger):
        by_status.setdefault(d["status"], []).append(d)
    (paid,) = by_status["committed"]
    assert (paid["reference"], paid["amount"], paid["deal_type"]) == ("P1", Decimal("10.25"), "PAYMENT")
    assert sorted(d["response_code"] for d in by_status["rejected"]) == ["14", "30"]


async def test_a_hold_whose_answer_is_lost_fails_in_doubt_and_is_released(kvtools: Path, tmp_path: Path) -> None:
    """docs/plugins.md#refuse-or-fail-in-doubt: the hold system takes the hold and the answer is lost; the
    step raises StepFailure(..., in_doubt=True): the deal fails (96), its reason says the hold may be there,
    and the step's compensation releases it.  A refusal (amount 0) placed nothing and is only rejected."""
    import duckdb
    from bsp_kvtools.hold import BOOK

    reg = default_registry()
    res = compile_paths([ROUTES / "pay.route"], reg)
    ledger = tmp_path / "l.duckdb"
    BOOK.holds.clear()
    async with running(res.program, ledger, registry=reg, overrides={"teller": {"address": "127.0.0.1:0"}}) as sb:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            await sock.connect(("127.0.0.1", sb.channel("teller").port))
            answers = []
            BOOK.drop_answers = 1
            for datagram in (b"ref=P4;account=7992739871;amount=5;", b"ref=P5;account=7992739871;amount=0;"):
                await sock.send(datagram)
                with trio.fail_after(60):
                    answers.append(await sock.recv(1000))
    assert answers == [b"code=96;text=internal error;", b"code=13;text=invalid amount;"]
    assert BOOK.holds == {}                                   # P4 was placed, then released; P5 never placed
    by_ref = {d["reference"]: d for d in deals(ledger)}
    p4, p5 = by_ref["P4"], by_ref["P5"]
    assert p4["status"] == "failed" and "may have done its work" in p4["reason"], p4["reason"]
    assert p4["reason"] == (
        "internal: hold P4: the hold system closed the connection before it answered (step kind hold, from plugin "
        "bsp-kvtools 0.1.0 (entry point kvtools = bsp_kvtools:register): it acts outside bsp and may have done its "
        f"work before it failed) (at {ROUTES / 'pay.route'}:16:5)")
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        events = [r[0] for r in con.execute("SELECT to_state FROM deal_events WHERE deal_id = ? ORDER BY seq",
                                            [p4["deal_id"]]).fetchall()]
    finally:
        con.close()
    assert "compensated 3:hold" in events and "flagged" not in events
    assert p5["status"] == "rejected" and p5["reason"].startswith("rejected: hold: amount 0 is not a positive decimal")


def test_docs_components_without_plugins_is_bsps_own_reference(kvtools: Path) -> None:
    """`make docs` with a plugin installed in the developer's environment still writes bsp's own kinds."""
    res = CliRunner().invoke(bsp_app, ["docs", "components", "--no-plugins"])
    assert res.exit_code == 0, res.output
    assert res.output == (REPO / "docs" / "components.md").read_text(encoding="utf-8")
    assert "### `kv`" not in res.output


def test_a_kinds_own_check_errors_point_at_the_option_with_a_help_line(kvtools: Path, tmp_path: Path) -> None:
    """What a format's `check` hook (E050) or a channel's constructor (E055) refuses is told at the option its
    message names, with a help line: the kind's hint (``SpecError(hint=...)``, ``ChannelConfigError(hint=...)``)
    or else the option's description.  Until 2026-11-27 E050 pointed at the declaration's start and neither
    had a help line unless the kind gave a hint, which ``built_check`` dropped."""
    from engine.channels.options import ChannelConfigError, built_check
    from formats.component import ComponentSpec, OptionSpec

    class Picky:
        role = "listen"

        def __init__(self, name, options):
            if options.get("poll") == 0:
                raise ChannelConfigError(f"channel {name}: option poll must be more than 0", hint="poll = 1 or more")

    reg = default_registry()
    reg.register(ComponentSpec(category="channel", name="picky", doc="x", build=lambda decl: None,
                               options=(OptionSpec("poll", "int", "How often."),), check=built_check(Picky)))
    (tmp_path / "r.route").write_text('format Pay = kv separator "="\nchannel c = udp listen {\n    address = '
                                      '"nowhere"\n}\nchannel p = picky {\n    poll = 0\n}\nroute r {\n    receive '
                                      'from c as Pay\n    reply Pay { a = "1" }\n}\nroute q {\n    receive from p as '
                                      'Pay\n    reply Pay { a = "1" }\n}\n')
    res = compile_paths([tmp_path / "r.route"], reg)
    assert sorted((d.code, d.pos.line, d.pos.col, d.help) for d in res.errors) == [
        ("E050", 1, 17, 'e.g. separator ";" or separator "|"'),
        ("E055", 3, 5, "address: host:port to listen on (port 0: any free port)."),
        ("E055", 6, 5, "poll = 1 or more")], res.errors


def test_bsp_decode_and_encode_run_a_plugin_format_of_a_route_file(kvtools: Path) -> None:
    """docs/plugins.md: a format is sans-IO, so `bsp decode` / `bsp encode` can use it.  Until 2026-11-27 they
    refused every plugin kind ("format Pay is of kind 'kv', which bsp decode/encode cannot run")."""
    route = str(ROUTES / "pay.route")
    res = CliRunner().invoke(bsp_app, ["decode", "--route", route, "--name", "Pay", "--framing", "lines", "-"],
                             input="ref=P1;account=7992739871;amount=10.25;\nref=P2;amount=ten;\n")
    assert res.exit_code == 1, res.output
    assert res.stdout.splitlines()[0] == '{"ref":"P1","account":"7992739871","amount":10.25}', res.output
    assert "record 2, byte 47, field amount: 'ten' is not an amount" in res.output, res.output
    res = CliRunner().invoke(bsp_app, ["encode", "--route", route, "--name", "Pay", "-"],
                             input='{"ref":"P1","amount":10.25}\n')
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("ref=P1;amount=10.25;"), res.output
