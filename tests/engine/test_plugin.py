"""A third-party step kind arrives through the `bsp.plugins` entry point and runs in a route."""
from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from engine.registry import default_registry
from kit import REPO, Client, compile_text, deals, running

ROUTE = """
format Req = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route stamped {
    receive from front as Req
    stamp s { text = msg.ref }
    stamp t { text = msg.ref  prefix = "T:" }
    reply Req { ref = msg.ref  stamp = s  other = t }
}
"""


@pytest.fixture
def plugin_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "site"
    src = tmp_path / "plugin_src"           # build from a copy: the build leaves files behind
    shutil.copytree(REPO / "tests" / "plugin_pkg", src)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-build-isolation", "--target", str(target), str(src)],
        check=True, capture_output=True)
    monkeypatch.syspath_prepend(str(target))
    importlib.invalidate_caches()
    return target


async def test_plugin_step_registers_and_runs(plugin_on_path: Path, tmp_path: Path, nursery) -> None:
    reg = default_registry()
    assert reg.get("step", "stamp") is not None
    assert default_registry(plugins=False).get("step", "stamp") is None
    program = compile_text(tmp_path, ROUTE, registry=reg)
    ledger = tmp_path / "ledger.duckdb"
    async with running(program, ledger, registry=reg) as sb:
        c = await Client.open(sb.channel("front").port)
        await c.send(b'{"ref":"P1"}')
        with trio.fail_after(10):
            (r,) = await c.recv_json()
        await c.aclose()
    assert r == {"ref": "P1", "stamp": "STAMPED:P1", "other": "T:P1"}    # `s`: the default prefix
    assert [d["status"] for d in deals(ledger)] == ["committed"]
