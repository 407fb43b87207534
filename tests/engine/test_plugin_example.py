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
    for kind in ("### `kv`", "### `checksum`", "### `udp.listen`"):
        part = res.output.split(kind)[1].split("### ")[0]
        assert "From plugin bsp-kvtools 0.1.0 (entry point kvtools = bsp_kvtools:register)." in part


def test_bsp_check_and_bsp_test_pass(kvtools: Path) -> None:
    res = CliRunner().invoke(bsp_app, ["check", str(ROUTES)])
    assert res.exit_code == 0, res.output
    result = run_paths([ROUTES], default_registry())
    assert result.summary() == "2 passed, 0 failed, 2 test(s) in 1 configuration(s)", result


def test_bsp_check_tells_a_bad_separator_at_the_format(kvtools: Path, tmp_path: Path) -> None:
    (tmp_path / "r.route").write_text('format Pay = kv separator "="\nchannel c = memory\n'
                                      'route r {\n    receive from c as Pay\n    reply Pay { a = "1" }\n}\n')
    res = compile_paths([tmp_path / "r.route"], default_registry())
    assert [(d.code, d.pos.line, d.message) for d in res.errors] == [
        ("E050", 1, "format `Pay`: format Pay: separator '=' must be one or more characters, not '='")]


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
                with trio.fail_after(10):
                    answers.append(await sock.recv(1000))
    assert answers == [b"ref=P1;code=00;account=79927398713;amount=10.25;",
                       b"code=14;text=invalid account number;",
                       b"code=30;text=malformed request;"]
    by_status = {}
    for d in deals(ledger):
        by_status.setdefault(d["status"], []).append(d)
    (paid,) = by_status["committed"]
    assert (paid["reference"], paid["amount"], paid["deal_type"]) == ("P1", Decimal("10.25"), "PAYMENT")
    assert sorted(d["response_code"] for d in by_status["rejected"]) == ["14", "30"]


def test_docs_components_without_plugins_is_bsps_own_reference(kvtools: Path) -> None:
    """`make docs` with a plugin installed in the developer's environment still writes bsp's own kinds."""
    res = CliRunner().invoke(bsp_app, ["docs", "components", "--no-plugins"])
    assert res.exit_code == 0, res.output
    assert res.output == (REPO / "docs" / "components.md").read_text(encoding="utf-8")
    assert "### `kv`" not in res.output
